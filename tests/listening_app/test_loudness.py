"""ITU-R BS.1770-4 integrated loudness and the loudness matching of the stimuli."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from scipy import signal
from typer.testing import CliRunner

from earshot.listening_app.audio import integrated_loudness, k_weighting_sos, loudness_gains_db, lowpass, rms
from earshot.listening_app.cli import listen_app


def sine(hz: float, seconds: float, rate: int, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)


def test_k_weighting_at_48_khz_is_the_standards_table():
    shelf, highpass = k_weighting_sos(48000)
    np.testing.assert_allclose(shelf[:3], [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-6)
    np.testing.assert_allclose(shelf[3:], [1, -1.69065929318241, 0.73248077421585], atol=1e-6)
    np.testing.assert_allclose(highpass[:3], [1, -2, 1], atol=1e-6)
    np.testing.assert_allclose(highpass[3:], [1, -1.99004745483398, 0.99007225036621], atol=1e-6)


@pytest.mark.parametrize("rate", [2000, 3000, 8000, 11025, 16000, 22050, 24000, 44100, 48000])
def test_k_weighting_is_stable_at_every_rate(rate):
    for section in k_weighting_sos(rate):
        assert np.all(np.isfinite(section)) and np.abs(np.roots(section[3:])).max() < 1


@pytest.mark.parametrize("rate, tolerance", [(48000, 0.05), (44100, 0.1), (16000, 0.1), (11025, 0.1)])
def test_a_full_scale_997_hz_sine_reads_minus_3_01_lufs(rate, tolerance):
    assert integrated_loudness(sine(997, 3, rate), rate) == pytest.approx(-3.01, abs=tolerance)


def test_a_signal_shorter_than_one_block_is_measured_ungated():
    assert integrated_loudness(sine(997, 0.25, 48000), 48000) == pytest.approx(-3.01, abs=0.05)


def test_silence_is_minus_infinity():
    assert integrated_loudness(np.zeros(48000), 48000) == float("-inf")
    assert integrated_loudness(np.zeros(100), 48000) == float("-inf")
    assert integrated_loudness(np.zeros(0), 48000) == float("-inf")


@pytest.mark.parametrize("quiet", [0.0, 0.1], ids=["silence", "minus-20-db"])
def test_gating_leaves_out_silence_and_quiet_passages(quiet):
    rate = 48000
    tone = sine(997, 5, rate, 0.5)
    alone = integrated_loudness(tone, rate)
    with_quiet = integrated_loudness(np.concatenate([tone, quiet * sine(997, 5, rate, 0.5)]), rate)
    # The 3 blocks straddling the edge hold 3/4, 1/2, 1/4 of the tone and pass both gates, beside
    # 47 blocks of tone: -0.13 LU. Ungated, the quiet half would take 3 dB off.
    assert with_quiet - alone == pytest.approx(10 * np.log10((47 + 1.5) / 50), abs=0.01)
    assert abs(with_quiet - alone) < 0.15


@pytest.mark.parametrize("rate", [16000, 48000])
def test_k_weighting_makes_high_tones_louder_than_low_ones_of_equal_rms(rate):
    low, mid, high = (integrated_loudness(sine(hz, 2, rate), rate) for hz in (100, 997, 4000))
    assert low < mid < high
    assert high - low == pytest.approx(5, abs=0.6)  # about +4 dB shelf and -1 dB high-pass


@pytest.fixture
def noise_and_copies() -> tuple[np.ndarray, list[np.ndarray]]:
    rate = 16000
    reference = 0.1 * np.random.default_rng(0).standard_normal(3 * rate)
    dull = lowpass(reference, rate, 1000.0)
    bright = signal.sosfilt(signal.butter(2, 2000, "high", fs=rate, output="sos"), reference)
    return reference, [dull, bright]


def test_bs1770_gains_match_loudness_where_rms_gains_do_not(noise_and_copies):
    rate = 16000
    reference, copies = noise_and_copies
    target = integrated_loudness(reference, rate)
    for gain, copy in zip(loudness_gains_db(reference, copies, rate), copies):
        assert integrated_loudness(copy * 10 ** (gain / 20), rate) == pytest.approx(target, abs=0.1)
    rms_matched = [c * 10 ** (g / 20) for g, c in zip(loudness_gains_db(reference, copies, rate, "rms"), copies)]
    for copy in rms_matched:
        assert rms(copy) == pytest.approx(rms(reference), rel=1e-3)
        assert abs(integrated_loudness(copy, rate) - target) > 0.5  # what RMS matching gets wrong


def test_silent_signals_get_0_db_and_unknown_methods_are_refused(noise_and_copies):
    reference, copies = noise_and_copies
    silent = np.zeros_like(reference)
    for method in ("bs1770", "rms"):
        assert loudness_gains_db(reference, [silent], 16000, method) == [0.0]
        assert loudness_gains_db(silent, copies, 16000, method) == [0.0, 0.0]
    with pytest.raises(ValueError, match="'foo'"):
        loudness_gains_db(reference, copies, 16000, "foo")


def test_cli_refuses_an_unknown_loudness_method_in_one_line(sqlite_url, run_dir):
    app = typer.Typer()
    app.add_typer(listen_app, name="listen")
    runner = CliRunner()
    result = runner.invoke(app, ["listen", "prepare", str(run_dir), "--db", sqlite_url, "--loudness", "foo"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--loudness" in result.output and "'foo'" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["listen", "prepare", str(run_dir), "--db", sqlite_url, "--seconds", "1", "--items",
                                 "1", "--loudness", "rms"])
    assert result.exit_code == 0, result.output
    assert "RMS (--loudness rms)" in result.output
