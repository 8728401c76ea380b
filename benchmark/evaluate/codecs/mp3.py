"""MP3 through LAME (``lame``), at a constant bitrate.

LAME chooses the MPEG version from the input's rate (MPEG-2.5 at 11 025 Hz takes 8 to
160 kbit/s). The measured bits are the audio frames' (the whole file less its first frame, the
Xing/LAME information frame, which holds no audio); ``lame --decode`` removes the encoder delay
and padding that frame records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from earshot.benchmark.evaluate.codecs import (Codec, CodecError, RoundTrip, first_line, fit_length, read_mono,
                                               register, run_tool, write_pcm16_wav)

# Layer III bitrate (kbit/s) by header index, for MPEG-1 and for MPEG-2/2.5; sample rates by version and index.
_BITRATES = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # MPEG-1, 2, 2.5


def info_frame_bytes(data: bytes) -> int:
    """The length of the file's first frame when it is a Xing/LAME information frame, else 0."""
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return 0
    version = (data[1] >> 3) & 3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    index, rate_index, padding = data[2] >> 4, (data[2] >> 2) & 3, (data[2] >> 1) & 1
    if version not in _RATES or rate_index == 3 or index in (0, 15):
        return 0
    kbps = _BITRATES[1 if version == 3 else 2][index]
    size = (144 if version == 3 else 72) * kbps * 1000 // _RATES[version][rate_index] + padding
    return size if b"Xing" in data[:size] or b"Info" in data[:size] else 0


CBR_KBPS = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320)


class MP3(Codec):
    name = "mp3"
    package = "lame"
    tools = ("lame",)
    bits_measured = "audio frames (the information frame left out)"

    def check_bitrate(self, bps: int) -> None:
        if bps % 1000 or bps // 1000 not in CBR_KBPS:
            raise CodecError(f"mp3@{bps / 1000:g}k: LAME's constant bitrates are {', '.join(map(str, CBR_KBPS))} kbit/s")

    def round_trip(self, audio: np.ndarray, rate: int, bps: int, folder: Path) -> RoundTrip:
        commands: list[str] = []
        source, encoded, decoded = folder / "in.wav", folder / "coded.mp3", folder / "out.wav"
        write_pcm16_wav(source, audio, rate)
        run_tool(["lame", "--quiet", "--cbr", "-b", str(bps // 1000), str(source), str(encoded)], commands)
        run_tool(["lame", "--quiet", "--decode", str(encoded), str(decoded)], commands)
        data = encoded.read_bytes()
        return RoundTrip(fit_length(read_mono(decoded, rate), audio.size), 8 * (len(data) - info_frame_bytes(data)),
                         commands)

    def tool_version_lines(self) -> dict[str, str]:
        line = first_line(["lame", "--version"])
        return {"lame": line} if line else {}


register(MP3())
