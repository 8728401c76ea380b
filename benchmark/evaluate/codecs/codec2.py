"""Codec 2, the open low-bitrate speech codec, through ``c2enc`` and ``c2dec`` (package codec2).

Codec 2 takes 8 kHz 16-bit raw mono: the excerpt is resampled to 8 kHz, coded, decoded and
resampled back. The measured bits are the coded file's (frames packed to whole bytes, so
the modes whose frames are not a whole number of bytes measure a little above their name).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from earshot.benchmark.evaluate.codecs import Codec, CodecError, RoundTrip, fit_length, register, resample, run_tool

CODEC2_RATE = 8000
MODES = {3200: "3200", 2400: "2400", 1600: "1600", 1400: "1400", 1300: "1300", 1200: "1200", 700: "700C"}


class Codec2(Codec):
    name = "codec2"
    package = "codec2"
    tools = ("c2enc", "c2dec")
    bits_measured = "the coded file (whole bytes per frame)"

    def parse_bitrate(self, text: str) -> int:
        return super().parse_bitrate(text.upper().removesuffix("C"))

    def check_bitrate(self, bps: int) -> None:
        if bps not in MODES:
            raise CodecError(f"codec2@{bps}: Codec 2's modes are {', '.join(MODES.values())} bits/s")

    def round_trip(self, audio: np.ndarray, rate: int, bps: int, folder: Path) -> RoundTrip:
        commands: list[str] = []
        source, encoded, decoded = folder / "in.raw", folder / "coded.bit", folder / "out.raw"
        narrow = resample(audio, rate, CODEC2_RATE)
        np.clip(np.rint(narrow * 32768), -32768, 32767).astype("<i2").tofile(source)
        run_tool(["c2enc", MODES[bps], str(source), str(encoded)], commands)
        run_tool(["c2dec", MODES[bps], str(encoded), str(decoded)], commands)
        out = np.fromfile(decoded, dtype="<i2").astype(np.float32) / 32768
        return RoundTrip(fit_length(resample(out, CODEC2_RATE, rate), audio.size), 8 * encoded.stat().st_size,
                         commands)

    def tool_version_lines(self) -> dict[str, str]:
        return {}  # c2enc prints no version; the package version is recorded


register(Codec2())
