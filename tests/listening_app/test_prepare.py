"""Test preparation: items, anchors, loudness matching and the BS.1534 checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from earshot.listening_app import store
from earshot.listening_app.audio import (anchor_cutoffs, blinded_wav, integrated_loudness, lowpass, read_wav_bytes, rms,
                                  wav_bytes)
from earshot.listening_app.cli import listen_app
from earshot.listening_app.prepare import PrepareError, prepare_test, select_items
from earshot.listening_app.rules import ItemPlan, check_items
from earshot.listening_app.settings import TestSettings
from tests.helpers import tone_mix


def test_anchors_are_the_standards_where_the_material_reaches_them_and_scaled_below():
    assert anchor_cutoffs(44100) == (3500.0, 7000.0)
    assert anchor_cutoffs(16000) == (3500.0, 7000.0)
    low, mid = anchor_cutoffs(11025)
    assert low == pytest.approx(5512.5 * 3.5 / 20) and mid == pytest.approx(5512.5 * 7 / 20)


def test_low_pass_removes_what_lies_above_the_cut_off():
    rate = 11025
    t = np.arange(rate) / rate
    low_tone, high_tone = np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 3000 * t)
    assert rms(lowpass(low_tone, rate, 964.7)) == pytest.approx(rms(low_tone), rel=0.02)
    middle = slice(rate // 10, -rate // 10)  # away from the filter's edge transients
    assert rms(lowpass(high_tone, rate, 964.7)[middle]) < 1e-3 * rms(high_tone)


def test_blinding_changes_every_copy_but_not_what_is_heard():
    audio = tone_mix(1.0)
    data = wav_bytes(audio, 11025)
    rng = np.random.default_rng(0)
    a, b = blinded_wav(data, rng), blinded_wav(data, rng)
    assert len({data, a, b}) == 3
    heard_a, _ = read_wav_bytes(a)
    assert 20 * np.log10(rms(heard_a - read_wav_bytes(data)[0]) / rms(audio)) < -40  # inaudible


def test_wav_bytes_is_a_standard_16_bit_wav_equal_to_libsndfile_within_one_step():
    rng = np.random.default_rng(1)
    for audio in (tone_mix(0.5), rng.uniform(-1.2, 1.2, (300, 2)).astype(np.float32)):
        decoded, rate = sf.read(io.BytesIO(wav_bytes(audio, 22050)), dtype="int16", always_2d=False)
        expected = io.BytesIO()
        sf.write(expected, np.clip(audio, -1, 1), 22050, format="WAV", subtype="PCM_16")
        reference, _ = sf.read(io.BytesIO(expected.getvalue()), dtype="int16", always_2d=False)
        assert rate == 22050 and decoded.shape == reference.shape
        assert np.abs(decoded.astype(int) - reference).max() <= 1


def test_blinding_decodes_a_stored_stimulus_once_and_never_mixes_two_up():
    first, second = wav_bytes(tone_mix(0.5), 11025), wav_bytes(tone_mix(0.5, seed=3) * 0.5, 11025)
    rng = np.random.default_rng(0)
    for _ in range(2):  # the second pass comes from the cache
        for data in (first, second):
            heard, _ = read_wav_bytes(blinded_wav(data, rng))
            assert rms(heard - read_wav_bytes(data)[0]) < 1e-3


def test_items_are_spread_across_categories():
    excerpts = [{"item": f"{c}-{i}", "category": c} for c in ("speech", "drums", "music") for i in range(3)]
    chosen = select_items(excerpts, 4)
    assert {e["category"] for e in chosen} == {"speech", "drums", "music"}
    assert len(select_items(excerpts, 100)) == 9


@pytest.mark.parametrize("loudness", ["bs1770", "rms"])
def test_prepared_stimuli_are_loudness_matched_and_the_cut_offs_recorded(sqlite_url, run_dir, loudness):
    made = prepare_test(run_dir, sqlite_url, items=2, seconds=1.5, name="lm", loudness=loudness)
    test = store.get_test(sqlite_url, "lm")
    assert (test.anchor_low_hz, test.anchor_mid_hz) == pytest.approx(anchor_cutoffs(11025))
    assert made.conditions == ["mse-seed0", "bark-seed0"] and test.status == "closed"
    assert made.loudness == loudness
    for item in store.test_items(sqlite_url, test.id):
        found = store.item_stimuli(sqlite_url, item.id)
        audio = store.stimulus_audio(sqlite_url, [s.id for s in found])
        signals = [read_wav_bytes(audio[s.id])[0] for s in found]
        if loudness == "bs1770":
            levels = [integrated_loudness(x, 11025) for x in signals]
            assert max(levels) - min(levels) < 0.1  # LU
        else:
            levels = [rms(x) for x in signals]
            assert max(levels) / min(levels) == pytest.approx(1, abs=0.01)
        assert {s.samples for s in found} == {round(1.5 * 11025)}
        assert made.gains_db[item.name] == {s.condition: s.gain_db for s in found}


def test_conditions_and_seed_choose_jobs_and_bad_ones_are_refused(sqlite_url, run_dir):
    assert prepare_test(run_dir, sqlite_url, conditions=["bark"], seconds=1, name="b").conditions == ["bark-seed0"]
    with pytest.raises(PrepareError, match="no evaluated job for loss 'nope'"):
        prepare_test(run_dir, sqlite_url, conditions=["nope"])
    with pytest.raises(PrepareError, match="at seed 3"):
        prepare_test(run_dir, sqlite_url, conditions=["mse"], seed=3)


def test_more_than_twelve_stimuli_or_missing_anchors_break_the_rules():
    kinds = ["reference", "anchor", "anchor"] + ["system"] * 10
    conditions = ["reference", "anchor-low", "anchor-mid"] + [f"s{i}" for i in range(10)]
    problems = check_items([ItemPlan("x", conditions, kinds, [100] * 13)], 11025, 964.7, 1929.4)
    assert problems == ["x: 13 stimuli, BS.1534 allows at most 12"]
    problems = check_items([ItemPlan("y", ["reference", "s"], ["reference", "system"], [100, 90])], 11025, 1, 2)
    assert "y: needs exactly one anchor-low" in problems and any("differ in length" in p for p in problems)


def test_cli_prepares_opens_invites_exports_and_refuses_with_one_line(tmp_path, sqlite_url, run_dir):
    app = typer.Typer()
    app.add_typer(listen_app, name="listen")
    runner = CliRunner()
    result = runner.invoke(app, ["listen", "prepare", str(run_dir), "--db", sqlite_url, "--name", "cli", "--seconds",
                                 "1", "--items", "2", "--open", "--completion-code", "C0DE"])
    assert result.exit_code == 0, result.output
    assert "964.7 Hz" in result.output and store.get_test(sqlite_url, "cli").status == "open"
    result = runner.invoke(app, ["listen", "invite", "cli", "--count", "2", "--db", sqlite_url])
    assert result.output.count("?token=") == 2
    result = runner.invoke(app, ["listen", "export", "cli", "--out", str(tmp_path / "r.csv"), "--db", sqlite_url])
    assert result.exit_code == 0 and (tmp_path / "r.csv").exists()
    for args, message in ((["--seconds", "20"], "--seconds"), (["--resubmit", "maybe"], "--resubmit"),
                          (["--conditions", "nope"], "no evaluated job")):
        result = runner.invoke(app, ["listen", "prepare", str(run_dir), "--db", sqlite_url, *args])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["listen", "list", "--db", sqlite_url])
    (row,) = [line.split("\t") for line in result.output.splitlines() if line.startswith("cli\t")]
    assert row[:3] == ["cli", "MUSHRA", "open"] and row[-1] == "0"  # the admin page's columns, and no ratings yet
    assert [line for line in result.output.splitlines() if line.startswith("test\t")][0].endswith("\tratings")


def test_the_training_item_is_one_no_trial_uses(sqlite_url, run_dir):
    made = prepare_test(run_dir, sqlite_url, items=1, seconds=1, name="spare")
    stored = store.test_items(sqlite_url, store.get_test(sqlite_url, "spare").id)
    assert [i.name for i in stored if not i.training] == made.items and len(made.items) == 1
    assert [i.name for i in stored if i.training] == [made.training_item] and made.training_item not in made.items
    assert made.note == ""  # the run had an excerpt to spare
    # Asked for more trials than the run has items: one of them trains, and the user is told.
    made = prepare_test(run_dir, sqlite_url, items=8, seconds=1, name="short")
    assert len(made.items) == 2 and made.training_item not in made.items
    assert "the run has 3 items: 2 trials" in made.note and made.training_item in made.note
    chosen = made.items[0]
    made = prepare_test(run_dir, sqlite_url, items=8, seconds=1, name="chosen", training_item=chosen)
    assert made.training_item == chosen and chosen not in made.items and len(made.items) == 2
    # Without a training page every item is a trial.
    made = prepare_test(run_dir, sqlite_url, items=8, seconds=1, name="none",
                        settings=TestSettings(training=False))
    assert made.training_item is None and len(made.items) == 3
    assert store.get_test(sqlite_url, "none").training_item_id is None


def test_a_training_item_the_run_lacks_or_cannot_spare_is_refused_in_one_line(sqlite_url, run_dir):
    runner, app = CliRunner(), typer.Typer()
    app.add_typer(listen_app, name="listen")
    for args, message in ((["--training-item", "speech-99"], "--training-item 'speech-99' is not an item of the run"),
                          (["--training-item", "speech-01", "--no-training"], "the test has no training page")):
        result = runner.invoke(app, ["listen", "prepare", str(run_dir), "--db", sqlite_url, "--seconds", "1", *args])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert store.list_tests(sqlite_url) == []
    result = runner.invoke(app, ["listen", "prepare", str(run_dir), "--db", sqlite_url, "--seconds", "1",
                                 "--items", "1", "--name", "cli"])
    assert result.exit_code == 0, result.output
    training = store.get_test(sqlite_url, "cli").training_item_id
    (name,) = [i.name for i in store.test_items(sqlite_url, store.get_test(sqlite_url, "cli").id) if i.id == training]
    assert f"training page: {name}, an item no trial uses" in result.output
    assert "raters join by invitation link only" in result.output
