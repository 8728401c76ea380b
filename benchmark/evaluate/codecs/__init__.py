"""Real codecs as baselines: a run's excerpts encoded and decoded by a codec's own command-line tools.

A codec is one module here that subclasses :class:`Codec` and registers an instance
(:func:`register`); ``opus``, ``mp3`` and ``codec2`` come with earshot. A baseline is asked for
as ``CODEC@BITRATE`` (``opus@6k``, ``mp3@32k``, ``codec2@3200``) and is a system of that name.

Each round trip runs the Debian package's tools on a temporary file and returns the decoded
audio at the run's rate, the bits of the encoded stream (so the bitrate is measured, not the
one asked for), and the exact command lines; :func:`tool_versions` records the tools' versions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

CODEC_VERSION = 1  # bump when a round trip changes what it produces: stored codec systems are then redone


class CodecError(ValueError):
    """A codec baseline that cannot be made: one line naming the spec, the tool or the package."""


@dataclass
class RoundTrip:
    decoded: np.ndarray  # float32 at the input's rate, the input's length
    bits: int  # bits of the encoded stream (the codec's payload; see each codec)
    commands: list[str]  # the command lines run, with the temporary folder written as $TMP


class Codec:
    """One codec: its Debian package, its tools, the bitrates it takes and its round trip."""

    name = ""
    package = ""  # the Debian package that ships the tools
    tools: tuple[str, ...] = ()
    bits_measured = ""  # what the measured bits count, for the run's record

    def parse_bitrate(self, text: str) -> int:
        """Bits per second of a spec's bitrate part (``6k``, ``32000``); raises CodecError."""
        match = re.fullmatch(r"(\d+(?:\.\d+)?)(k?)", text.strip().lower())
        if not match:
            raise CodecError(f"{self.name}@{text}: the bitrate is a number of bits/s, e.g. 6k or 6000")
        return int(round(float(match[1]) * (1000 if match[2] else 1)))

    def check_bitrate(self, bps: int) -> None:
        """Raises CodecError when the codec cannot run at ``bps``."""

    def round_trip(self, audio: np.ndarray, rate: int, bps: int, folder: Path) -> RoundTrip:
        raise NotImplementedError

    def tool_version_lines(self) -> dict[str, str]:
        """Each tool's version line (``opusenc opus-tools 0.2 (using libopus 1.3.1)``), where it prints one."""
        return {}

    def missing_tools(self) -> list[str]:
        return [tool for tool in self.tools if shutil.which(tool) is None]


CODECS: dict[str, Codec] = {}


def register(codec: Codec) -> Codec:
    CODECS[codec.name] = codec
    return codec


@dataclass(frozen=True)
class CodecSpec:
    """``opus@6k``: the codec, its bitrate in bits/s and the system's name (the spec as written)."""

    name: str
    codec: str
    bps: int


def parse_spec(text: str) -> CodecSpec:
    """``CODEC@BITRATE`` checked against the registered codecs and their bitrates; raises CodecError."""
    _load_builtin()
    text = text.strip()
    codec_name, at, bitrate = text.partition("@")
    if not at or not codec_name or not bitrate:
        raise CodecError(f"{text!r}: a codec baseline is CODEC@BITRATE, e.g. opus@6k ({', '.join(CODECS)})")
    codec = CODECS.get(codec_name.lower())
    if codec is None:
        raise CodecError(f"{text}: unknown codec {codec_name!r}; earshot knows {', '.join(CODECS)}")
    bps = codec.parse_bitrate(bitrate)
    codec.check_bitrate(bps)
    return CodecSpec(text, codec.name, bps)


def parse_specs(text: str) -> list[CodecSpec]:
    """A comma-separated list of specs; raises CodecError for the first bad one or a repeated name."""
    specs = [parse_spec(part) for part in text.split(",") if part.strip()]
    if not specs:
        raise CodecError("--codecs: give at least one CODEC@BITRATE, e.g. opus@6k")
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CodecError(f"--codecs: {', '.join(repeated)} asked for twice")
    return specs


def check_installed(specs: list[CodecSpec]) -> None:
    """Raises CodecError naming the missing tools and the Debian packages that install them."""
    missing = {}
    for spec in specs:
        codec = CODECS[spec.codec]
        for tool in codec.missing_tools():
            missing.setdefault(codec.package, []).append(tool)
    if missing:
        tools = ", ".join(t for ts in missing.values() for t in dict.fromkeys(ts))
        packages = " ".join(missing)
        raise CodecError(f"codec tools not found: {tools}; install the Debian package(s) {packages} "
                         f"(apt-get install {packages})")


def codec_of(spec: CodecSpec) -> Codec:
    _load_builtin()
    return CODECS[spec.codec]


def round_trip(spec: CodecSpec, audio: np.ndarray, rate: int) -> RoundTrip:
    """Encode and decode ``audio`` (mono float32 at ``rate``) with ``spec``'s codec in a temporary folder.

    Raises:
        CodecError: a tool failed (its command and its last line of output).
    """
    with tempfile.TemporaryDirectory(prefix="earshot-codec-") as folder:
        result = codec_of(spec).round_trip(np.asarray(audio, dtype=np.float32), rate, spec.bps, Path(folder))
        result.commands = [c.replace(folder, "$TMP") for c in result.commands]
    return result


def tool_versions(spec: CodecSpec) -> dict[str, str]:
    """The codec's Debian package version and each tool's own version line (where it prints one)."""
    codec = codec_of(spec)
    versions = {}
    try:
        found = subprocess.run(["dpkg-query", "-W", "-f=${Version}", codec.package], capture_output=True, text=True,
                               timeout=10)
        if found.returncode == 0 and found.stdout.strip():
            versions[f"{codec.package} (Debian package)"] = found.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    versions.update(codec.tool_version_lines())
    return versions


# --- helpers the codec modules share ---------------------------------------------------------------


def run_tool(command: list[str], commands: list[str]) -> None:
    """Run one tool, recording its command line; raises CodecError with its last line of output on failure."""
    commands.append(" ".join(command))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise CodecError(f"{command[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise CodecError(f"{command[0]} did not finish in 600 s") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise CodecError(f"{' '.join(command)} failed ({lines[-1] if lines else f'exit {done.returncode}'})")


def first_line(command: list[str]) -> str | None:
    """The first line a ``--version`` style command prints, or None."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def write_pcm16_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    sf.write(path, np.clip(audio, -1.0, 32767 / 32768), rate, subtype="PCM_16")


def read_mono(path: Path, rate: int) -> np.ndarray:
    """A decoded file as mono float32 at ``rate``."""
    data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1).astype(np.float32)
    return resample(mono, file_rate, rate)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return np.ascontiguousarray(audio, dtype=np.float32)
    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32)


def fit_length(audio: np.ndarray, samples: int) -> np.ndarray:
    """Cut or zero-pad at the end to ``samples`` (a decoder's last frame may run past the input)."""
    if audio.size >= samples:
        return audio[:samples]
    return np.pad(audio, (0, samples - audio.size))


def _load_builtin() -> None:
    from earshot.benchmark.evaluate.codecs import codec2, mp3, opus  # noqa: F401  (they register themselves)
