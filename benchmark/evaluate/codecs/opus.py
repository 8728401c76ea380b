"""Opus (RFC 6716) through opus-tools' ``opusenc`` and ``opusdec``, at a hard constant bitrate.

``--hard-cbr`` makes every packet the asked size, so the measured bitrate is the asked one;
the measured bits are the audio packets' (the Ogg pages and the two header packets, about
800 bytes whatever the length, are container overhead). ``opusdec`` removes the encoder's
pre-skip, so the decoded audio starts in time with the input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from earshot.benchmark.evaluate.codecs import (Codec, CodecError, RoundTrip, first_line, fit_length, read_mono,
                                               register, run_tool, write_pcm16_wav)

DECODE_RATE = 48_000  # Opus always decodes at 48 kHz; earshot resamples to the run's rate
HEADER_PACKETS = 2  # OpusHead and OpusTags


def ogg_packets(data: bytes) -> list[bytes]:
    """The packets of an Ogg stream (one logical stream), in order. Raises CodecError for a damaged page."""
    packets, current, offset = [], b"", 0
    while offset < len(data):
        if data[offset:offset + 4] != b"OggS" or offset + 27 > len(data):
            raise CodecError(f"not an Ogg page at byte {offset}")
        segments = data[offset + 27:offset + 27 + data[offset + 26]]
        body = offset + 27 + len(segments)
        for size in segments:
            current += data[body:body + size]
            body += size
            if size < 255:
                packets.append(current)
                current = b""
        offset = body
    return packets


class Opus(Codec):
    name = "opus"
    package = "opus-tools"
    tools = ("opusenc", "opusdec")
    bits_measured = "audio packets (Ogg framing and headers left out)"

    def check_bitrate(self, bps: int) -> None:
        if not 6000 <= bps <= 510_000:
            raise CodecError(f"opus@{bps}: Opus runs at 6k to 510k bits/s")

    def round_trip(self, audio: np.ndarray, rate: int, bps: int, folder: Path) -> RoundTrip:
        commands: list[str] = []
        source, encoded, decoded = folder / "in.wav", folder / "coded.opus", folder / "out.wav"
        write_pcm16_wav(source, audio, rate)
        run_tool(["opusenc", "--quiet", "--hard-cbr", "--bitrate", f"{bps / 1000:g}", str(source), str(encoded)],
                 commands)
        run_tool(["opusdec", "--quiet", "--rate", str(DECODE_RATE), str(encoded), str(decoded)], commands)
        bits = 8 * sum(len(p) for p in ogg_packets(encoded.read_bytes())[HEADER_PACKETS:])
        return RoundTrip(fit_length(read_mono(decoded, rate), audio.size), bits, commands)

    def tool_version_lines(self) -> dict[str, str]:
        line = first_line(["opusenc", "--version"])
        return {"opusenc": line} if line else {}


register(Opus())
