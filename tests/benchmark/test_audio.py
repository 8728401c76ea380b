"""Loading a folder of audio: formats, rates, channels, and every bad-input case."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from tests.helpers import RATE, tone_mix, write_folder

from earshot.benchmark.data.audio import AudioError, DataError, load_audio, load_folder


@pytest.mark.parametrize("fmt, subtype", [
    ("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT"),
    ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III"),
])
def test_every_format_loads_as_mono_float32_at_the_target_rate(tmp_path, fmt, subtype):
    source_rate = 22050
    mono = tone_mix(1.0, source_rate)
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, stereo, source_rate, format=fmt, subtype=subtype)
    audio = load_audio(path, RATE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - RATE) <= 1200  # mp3 adds encoder padding
    # Downmix is the channel mean: peak near 0.75 of the left channel's.
    assert 0.3 < np.abs(audio).max() < 0.5


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_any_sample_rate_is_resampled(tmp_path, rate):
    path = tmp_path / "clip.wav"
    t = np.arange(rate) / rate
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), rate)
    audio = load_audio(path, RATE)
    assert audio.size == RATE
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * RATE / audio.size - 440) < 2


def test_many_channels_downmix(tmp_path):
    path = tmp_path / "six.wav"
    sf.write(path, np.tile(tone_mix(1.0)[:, None], (1, 6)), RATE)
    np.testing.assert_allclose(load_audio(path, RATE), tone_mix(1.0), atol=1e-4)


def _write_bad_files(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(40))
    (root / "notes.mp3").write_text("this is not audio at all")
    sf.write(root / "empty.wav", np.zeros(0, np.float32), RATE)
    sf.write(root / "silent.wav", np.zeros(RATE, np.float32), RATE)
    sf.write(root / "short.wav", tone_mix(0.05), RATE)
    bad = tone_mix(1.0)
    bad[100] = np.nan
    bad[200] = np.inf
    sf.write(root / "nan.wav", bad, RATE, subtype="FLOAT")


@pytest.mark.parametrize("name, reason", [
    ("corrupt.wav", "not readable"), ("notes.mp3", "not readable"), ("empty.wav", "empty"),
    ("silent.wav", "silent"), ("short.wav", "too short"), ("nan.wav", "NaN"),
])
def test_each_bad_file_is_skipped_with_its_reason(tmp_path, name, reason):
    _write_bad_files(tmp_path / "bad")
    with pytest.raises(AudioError, match=reason):
        load_audio(tmp_path / "bad" / name, RATE, min_samples=2048)


def test_folder_skips_bad_files_names_them_and_keeps_the_rest(tmp_path):
    root = write_folder(tmp_path / "my album", {"speech": [1.0], "drums": [1.0]})
    _write_bad_files(root / "bad ones")
    lines = []
    audio_set = load_folder(root, RATE, min_samples=2048, log=lines.append)
    assert [f.relative for f in audio_set.files] == ["drums/drums clip 0.wav", "speech/speech clip 0.wav"]
    assert len(audio_set.skipped) == 6
    skipped_names = {name for name, _ in audio_set.skipped}
    assert "bad ones/nan.wav" in skipped_names
    assert any("bad ones/corrupt.wav" in line for line in lines)
    assert lines[-1] == "skipped 6 file(s) of 8"


def test_non_ascii_names_and_spaces(tmp_path):
    root = tmp_path / "Ålbum på svenska"
    (root / "speech").mkdir(parents=True)
    sf.write(root / "speech" / "Kevin Gátes – intró 01.flac", tone_mix(1.0), RATE)
    audio_set = load_folder(root, RATE, min_samples=2048)
    assert audio_set.files[0].category == "speech"
    assert audio_set.files[0].relative == "speech/Kevin Gátes – intró 01.flac"


def test_a_folder_without_usable_audio_is_a_clear_error(tmp_path):
    _write_bad_files(tmp_path / "bad")
    with pytest.raises(DataError, match="no usable audio"):
        load_folder(tmp_path / "bad", RATE, min_samples=2048, log=lambda m: None)
    with pytest.raises(DataError, match="not a folder"):
        load_folder(tmp_path / "missing", RATE, min_samples=2048)


def test_categories_from_manifest_then_folder_then_other(tmp_path):
    root = write_folder(tmp_path / "d", {"speech": [1.0], "misc": [1.0]})
    audio_set = load_folder(root, RATE, min_samples=2048)
    assert {f.relative: f.category for f in audio_set.files} == {
        "speech/speech clip 0.wav": "speech", "misc/misc clip 0.wav": "other"}
    (root / "manifest.json").write_text(
        '{"clips": [{"path": "misc/misc clip 0.wav", "category": "drums"}]}')
    audio_set = load_folder(root, RATE, min_samples=2048)
    assert {f.category for f in audio_set.files} == {"speech", "drums"}
