"""Systems beside the trained losses: scoring folders of decoded audio, codec baselines, the bitrate axis,
and listening tests that mix a codec with a loss."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.benchmark.evaluate.align import estimate_delay, remove_delay
from earshot.benchmark.evaluate.codecs import CODECS, CodecError, check_installed, parse_spec, parse_specs, round_trip
from earshot.benchmark.evaluate.score import score_folders, score_into
from earshot.benchmark.evaluate.systems import AddSystemError, add_codecs
from earshot.results.rundir import RunDir
from tests.helpers import RATE, tone_mix, write_folder

runner = CliRunner()
ALBUM = {"speech": [2.0, 1.5], "music": [2.0]}


def _decoded(reference: Path, out: Path, delay: int = 0, rate: int = RATE, suffix: str = ".wav",
             gain: float = 0.9) -> Path:
    """Every reference file under ``reference``, delayed by ``delay`` samples, scaled and resampled to ``rate``,
    written under ``out`` with the same relative name and ``suffix``."""
    for path in sorted(reference.rglob("*.wav")):
        audio, file_rate = sf.read(path, dtype="float32")
        shifted = np.concatenate([np.zeros(max(delay, 0), np.float32), audio[max(-delay, 0):]])[:audio.size]
        target = out / path.relative_to(reference).with_suffix(suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, soxr.resample(shifted * gain, file_rate, rate) if rate != file_rate else shifted * gain, rate)
    return out


def _codecs_missing(*names: str) -> list[str]:
    parse_spec("opus@6k")  # loads the codec modules
    return [t for n in names for t in CODECS[n].missing_tools()]


needs_codecs = pytest.mark.skipif(bool(_codecs_missing("opus", "mp3", "codec2")),
                                  reason="needs the Debian packages opus-tools, lame and codec2")


# --- alignment ------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0, 37, -23, 1102])
def test_a_known_delay_is_recovered_to_the_sample(delay):
    pairs = []
    for seed in range(3):
        reference = tone_mix(1.5, seed=seed)
        decoded = remove_delay(reference, -delay)[:reference.size]  # reference delayed by `delay`
        pairs.append((reference, 0.5 * decoded))
    assert estimate_delay(pairs, max_lag=1103) == delay


# --- earshot score --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A run scored from an album and two systems: one resampled to 16 kHz, delayed 37 samples and saved
    as FLAC; one an exact copy."""
    root = tmp_path_factory.mktemp("score")
    album = write_folder(root / "album", ALBUM)
    flac = _decoded(album, root / "flac16k", delay=37, rate=16000, suffix=".flac")
    copy = Path(shutil.copytree(album, root / "copy"))
    done = score_folders(album, {"flac16k": flac, "copy": copy}, root / "runs" / "scored", workers=1,
                         log=lambda m: None)
    return root, {s.name: s for s in done}


def test_scoring_resamples_removes_the_delay_and_writes_the_run_contract(scored):
    root, done = scored
    run = RunDir(root / "runs" / "scored")
    assert done["flac16k"].delay_samples == 37 and done["copy"].delay_samples == 0
    excerpts = run.read_excerpts()
    assert {e["item"] for e in excerpts} == {"speech/speech clip 0", "speech/speech clip 1", "music/music clip 0"}
    assert {e["category"] for e in excerpts} == {"speech", "music"}
    assert run.reconstructed_jobs() == ["copy", "flac16k"]
    for e in excerpts:  # one length per item for the reference and every system, at the references' rate
        info = sf.info(run.reference_wav(e["item"]))
        assert info.samplerate == RATE and info.frames == e["samples"]
        for system in ("copy", "flac16k"):
            assert sf.info(run.recon_wav(system, e["item"])).frames == e["samples"]
    metrics = run.read_metrics()
    si_sdr = metrics[metrics["metric"] == "si_sdr"].groupby("loss")["value"].mean()
    assert si_sdr["copy"] > 60  # the copy is the reference, to 16-bit precision
    assert si_sdr["flac16k"] > 25  # delay removed and resampled back: near-identical, not 0 dB
    assert set(metrics["seed"]) == {0} and set(metrics["job"]) == {"copy", "flac16k"}
    systems = run.read_systems()
    assert systems["flac16k"]["kind"] == "scored" and systems["flac16k"]["delay_samples"] == 37


def test_a_scored_run_takes_report_and_listen_prepare_unchanged(scored, tmp_path):
    from earshot.listening_app.prepare import prepare_test
    from earshot.results.report import write_report

    root, _ = scored
    run = Path(shutil.copytree(root / "runs" / "scored", tmp_path / "scored"))
    html = write_report(run).read_text()
    assert "flac16k" in html and "Quality vs bitrate" in html
    made = prepare_test(run, f"sqlite:///{tmp_path / 'l.sqlite'}", items=2, conditions=["flac16k", "copy"],
                        seconds=1.0, name="scored")
    assert made.conditions == ["flac16k", "copy"]


def test_a_missing_an_extra_and_a_renamed_file_are_named_and_partial_scores_the_rest(tmp_path):
    album = write_folder(tmp_path / "album", ALBUM)
    decoded = _decoded(album, tmp_path / "decoded", suffix=".flac")  # renamed extensions match
    (decoded / "speech" / "speech clip 1.flac").unlink()
    shutil.copy(decoded / "music" / "music clip 0.flac", decoded / "music" / "bonus.flac")
    result = runner.invoke(app, ["score", "--reference", str(album), "--system", f"codec={decoded}",
                                 "--out", str(tmp_path / "runs" / "x")])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "no decoded file for 1 reference(s): speech/speech clip 1" in message
    assert "1 decoded file(s) without a reference: music/bonus.flac" in message and "--partial" in message
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "runs" / "x").exists()  # nothing written

    done = score_folders(album, {"codec": decoded}, tmp_path / "runs" / "y", partial=True, workers=1,
                         log=lambda m: None)
    assert done[0].items == 2
    assert {e["item"] for e in RunDir(tmp_path / "runs" / "y").read_excerpts()} == {"speech/speech clip 0",
                                                                                    "music/music clip 0"}


def test_bad_files_in_a_system_folder_are_named_in_one_line_each(tmp_path):
    album = write_folder(tmp_path / "album", ALBUM)
    decoded = _decoded(album, tmp_path / "decoded")
    (decoded / "speech" / "speech clip 1.wav").write_bytes(b"not audio at all")
    args = ["score", "--reference", str(album), "--system", f"broken={decoded}", "--out"]
    result = runner.invoke(app, [*args, str(tmp_path / "runs" / "a")])
    assert result.exit_code == 2 and "Traceback" not in result.output + result.stderr
    assert "broken: skipped speech/speech clip 1.wav: not readable as audio" in " ".join(result.output.split())
    assert "no decoded file for 1 reference(s): speech/speech clip 1" in " ".join(result.stderr.split())

    result = runner.invoke(app, [*args, str(tmp_path / "runs" / "b"), "--partial", "--workers", "1"])
    assert result.exit_code == 0, result.output + result.stderr
    table = RunDir(tmp_path / "runs" / "b").read_systems()["broken"]
    assert table["skipped"][0][0] == "speech/speech clip 1.wav" and table["items"] == 2


def test_references_at_two_rates_ask_for_rate(tmp_path):
    album = write_folder(tmp_path / "album", {"speech": [1.0]})
    sf.write(tmp_path / "album" / "speech" / "other.wav", tone_mix(1.0, 16000), 16000)
    result = runner.invoke(app, ["score", "--reference", str(album), "--system", f"x={album}",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "references at 11025 Hz, 16000 Hz; give --rate" in " ".join(result.stderr.split())


def test_scoring_into_a_trained_run_puts_the_system_next_to_its_losses(tiny_run_copy, tmp_path):
    from earshot.benchmark.evaluate.reconstruct import evaluate_run

    run = RunDir(tiny_run_copy)
    decoded = _decoded(run.reference_dir, tmp_path / "neural", delay=12, rate=16000, suffix=".flac")
    before = run.read_metrics()
    done = score_into(run.path, {"neural": decoded}, bitrates={"neural": 6.0}, workers=1, log=lambda m: None)
    assert done[0].delay_samples == 12 and done[0].items == len(run.read_excerpts())
    metrics = run.read_metrics()
    added = metrics[metrics["loss"] == "neural"]
    assert set(added["item"]) == set(before["item"])  # the run's own excerpts
    assert len(added) == len(before[before["job"] == "mse-seed0"])  # the same metrics per item as a loss
    pd.testing.assert_frame_equal(metrics[metrics["loss"] != "neural"].reset_index(drop=True),
                                  before.reset_index(drop=True))  # nothing of the losses changed
    assert added.loc[added["metric"] == "si_sdr", "value"].min() > 20

    logs = []
    again = evaluate_run(run.path, device="cpu", workers=1, log=logs.append)  # a re-evaluation keeps it, cached
    assert "neural" in set(again["loss"]) and any("neural" in line and "unchanged" in line for line in logs)


def test_into_a_run_a_system_named_as_a_loss_is_refused(tiny_run_copy, tmp_path):
    decoded = _decoded(RunDir(tiny_run_copy).reference_dir, tmp_path / "d")
    with pytest.raises(AddSystemError, match="'mse' is a loss or job of the run"):
        score_into(tiny_run_copy, {"mse": decoded}, log=lambda m: None)


# --- codecs ---------------------------------------------------------------------------------------


@needs_codecs
@pytest.mark.parametrize("spec", ["opus@6k", "opus@12k", "mp3@32k", "codec2@3200"])
def test_each_codec_round_trip_keeps_rate_and_length_at_the_asked_bitrate(spec):
    audio = tone_mix(8.0)
    parsed = parse_spec(spec)
    result = round_trip(parsed, audio, RATE)
    assert result.decoded.dtype == np.float32 and result.decoded.shape == audio.shape
    measured = result.bits / 8.0
    assert abs(measured - parsed.bps) <= 0.10 * parsed.bps, f"{spec}: {measured:.0f} bits/s"
    assert np.abs(result.decoded).max() > 0.05  # sound came back
    assert result.commands and all("$TMP" in c for c in result.commands)


def test_a_bad_spec_and_a_missing_codec_are_one_line(monkeypatch):
    with pytest.raises(CodecError, match="CODEC@BITRATE"):
        parse_specs("opus")
    with pytest.raises(CodecError, match="unknown codec 'aac'"):
        parse_specs("aac@64k")
    with pytest.raises(CodecError, match="LAME's constant bitrates"):
        parse_specs("mp3@33k")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CodecError) as caught:
        check_installed(parse_specs("opus@6k,codec2@3200"))
    assert "apt-get install opus-tools codec2" in str(caught.value)


@needs_codecs
def test_codec_baselines_join_a_run_and_a_listening_test_mixes_them_with_a_loss_blind(tiny_run_copy, tmp_path):
    from earshot.listening_app import store
    from earshot.listening_app.prepare import prepare_test
    from earshot.listening_app.trial import make_view, next_trial
    from earshot.results.report import write_report

    run = RunDir(tiny_run_copy)
    result = runner.invoke(app, ["baselines", str(run.path), "--codecs", "opus@12k,codec2@3200", "--workers", "1"])
    assert result.exit_code == 0, result.output + result.stderr
    entry = run.read_systems()["opus@12k"]
    assert entry["kind"] == "codec" and "opusenc" in entry["commands"][0]
    assert any("libopus" in v for v in entry["versions"].values())
    metrics = run.read_metrics()
    assert {"opus@12k", "codec2@3200"} <= set(metrics["loss"])

    url = f"sqlite:///{tmp_path / 'listen.sqlite'}"
    made = prepare_test(run.path, url, items=2, conditions=["mse", "opus@12k"], seconds=1.0, name="mixed")
    assert made.conditions == ["mse-seed0", "opus@12k"]
    store.set_status(url, "mixed", "open")
    test = store.get_test(url, "mixed")
    rater = store.add_rater(url, "mixed")
    item, _, _ = next_trial(url, rater, test)
    view = make_view(url, rater, test, item, now=0.0)
    args = dict(view.component_args, reference="", stimuli=[dict(s, audio="") for s in view.component_args["stimuli"]])
    text = json.dumps(args)
    for name in ("opus", "12k", "codec", "mse", "seed0"):
        assert name not in text

    html = write_report(run.path, latent_bits=4).read_text()
    assert "Quality vs bitrate" in html and "nominal (4 bits per latent)" in html


def test_the_bitrate_table_sorts_systems_and_states_how_each_bitrate_was_found():
    from earshot.results import present
    from earshot.results.aggregate import ALL
    from earshot.results.bitrate import system_bitrates

    systems = {"mse": {"kind": "autoencoder", "latents_per_s": 1000.0},
               "opus@6k": {"kind": "codec", "bitrate_kbps": 6.02, "bitrate": "measured"},
               "neural": {"kind": "scored", "bitrate_kbps": None}}
    frame = system_bitrates(systems, ["opus@6k", "neural", "mse"], latent_bits=8)
    assert list(frame["system"]) == ["opus@6k", "mse", "neural"]  # 6.02 < 8.00, unknown last
    summary = pd.DataFrame([{"metric": "si_sdr", "category": ALL, "loss": "mse", "seeds": 1, "items": 3, "n": 3,
                             "mean": 1.5, "ci_low": 1.0, "ci_high": 2.0}])
    table = present.bitrate_table(frame, summary, {"si_sdr": {"unit": "dB", "higher_is_better": True}}, ALL, 8)
    assert table.rows[1][:4] == ["mse", "autoencoder", "8.00", "nominal (8 bits per latent)"]
    assert table.rows[1][4] == "1.50 [1.00, 2.00]" and table.rows[0][4] == "–"
    assert table.rows[2][2] == "–"


def test_the_quality_vs_bitrate_figure_has_a_point_per_system_with_a_bitrate():
    from earshot.results.aggregate import ALL
    from earshot.results.bitrate import system_bitrates
    from earshot.results.plots import quality_vs_bitrate

    frame = system_bitrates({"a": {"kind": "codec", "bitrate_kbps": 6.0}, "b": {"kind": "codec", "bitrate_kbps": 12.0},
                             "c": {"kind": "scored"}}, ["a", "b", "c"])
    summary = pd.DataFrame([{"metric": "si_sdr", "category": ALL, "loss": name, "mean": m, "ci_low": m - 1,
                             "ci_high": m + 1} for name, m in (("a", 3.0), ("b", 9.0), ("c", 5.0))])
    figure = quality_vs_bitrate(summary, frame, ["si_sdr"], {"si_sdr": {"unit": "dB"}}, ALL)
    ax = figure.axes[0]
    points = sorted((float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in ax.get_lines()
                    if len(line.get_xdata()) == 1 and line.get_marker() == "o")
    assert points == [(6.0, 3.0), (12.0, 9.0)] and ax.get_xscale() == "log"


def test_into_a_run_every_excerpt_needs_a_decoded_file_even_with_partial(tiny_run_copy, tmp_path):
    run = RunDir(tiny_run_copy)
    decoded = _decoded(run.reference_dir, tmp_path / "d")
    first = sorted(decoded.glob("*.wav"))[0]
    first.unlink()
    with pytest.raises(AddSystemError, match=f"needs a decoded file for each of its .* excerpts \\(missing: {first.stem}\\)"):
        score_into(run.path, {"neural": decoded}, partial=True, log=lambda m: None)
    assert "neural" not in run.read_systems() and not (run.recon_dir / "neural").exists()


@needs_codecs
def test_a_codec_registered_for_a_run_is_measured_by_its_evaluation_and_then_cached(tiny_run_copy):
    from earshot.benchmark.evaluate.reconstruct import evaluate_run
    from earshot.benchmark.evaluate.systems import register_codecs

    register_codecs(tiny_run_copy, parse_specs("opus@6k"))  # what earshot run --baselines does before evaluating
    logs = []
    metrics = evaluate_run(tiny_run_copy, device="cpu", workers=1, log=logs.append)
    assert "reconstructed 3 excerpts with opus@6k" in logs
    assert any("unchanged" in line and "mse-seed0" in line for line in logs)  # the losses were not redone
    entry = RunDir(tiny_run_copy).read_systems()["opus@6k"]
    assert abs(entry["bitrate_kbps"] - 6.0) < 0.6 and entry["key"]
    assert len(metrics[metrics["loss"] == "opus@6k"]) == len(metrics[metrics["job"] == "mse-seed0"])
    logs.clear()
    evaluate_run(tiny_run_copy, device="cpu", workers=1, log=logs.append)
    assert not any("opus@6k" in line and "reconstructed" in line for line in logs)
    assert RunDir(tiny_run_copy).read_systems()["mse"]["kind"] == "autoencoder"


@pytest.mark.ray
@pytest.mark.slow
def test_scoring_on_a_local_ray_cluster_gives_the_same_metrics(scored, monkeypatch):
    ray = pytest.importorskip("ray")
    root, _ = scored
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        score_folders(root / "album", {"flac16k": root / "flac16k", "copy": root / "copy"}, root / "runs" / "on-ray",
                      workers=2, log=lambda m: None, executor="ray")
    finally:
        ray.shutdown()
    local = RunDir(root / "runs" / "scored").read_metrics()
    remote = RunDir(root / "runs" / "on-ray").read_metrics()
    key = ["job", "item", "metric"]
    pd.testing.assert_frame_equal(local.sort_values(key).reset_index(drop=True),
                                  remote.sort_values(key).reset_index(drop=True))
