"""Reading a folder of audio: any format soundfile reads, any rate, any channel count.

Every file becomes mono float32 at the configured rate. A file that cannot be used
is skipped with one line naming it and the reason; it never stops the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

# The categories of material, the one list: a data folder's sub-folders by these names set
# their files' category, every other file is "other"; metrics and the corpus take theirs from here.
OTHER = "other"
CATEGORIES = ("speech", "drums", "music", "mix", OTHER)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
SILENCE_PEAK = 1e-4  # a file whose peak is below this (≈ −80 dBFS) holds no usable audio


class AudioError(Exception):
    """A file that cannot be used, with the reason."""


class DataError(ValueError):
    """A data set that cannot be used at all (for example, no usable audio)."""


@dataclass
class AudioFile:
    path: Path
    relative: str  # path relative to the data folder, POSIX style
    category: str
    audio: np.ndarray  # mono float32 at the data set's rate


@dataclass
class AudioSet:
    root: Path
    sample_rate: int
    files: list[AudioFile]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)

    def seconds(self, category: str | None = None) -> float:
        return sum(f.audio.size for f in self.files if category in (None, f.category)) / self.sample_rate


def load_audio(path: Path, sample_rate: int, min_samples: int = 1) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate``.

    Raises:
        AudioError: unreadable, empty, non-finite, silent, or shorter than ``min_samples``.
    """
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise AudioError(f"not readable as audio ({reason})") from None
    except OSError as exc:
        raise AudioError(f"cannot open ({exc.strerror or exc})") from None
    if data.size == 0:
        raise AudioError("empty (no samples)")
    if not np.isfinite(data).all():
        raise AudioError("contains NaN or Inf samples")
    mono = data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    if np.abs(mono).max(initial=0.0) < SILENCE_PEAK:
        raise AudioError("silent")
    if mono.size < min_samples:
        raise AudioError(f"too short ({mono.size} samples at {sample_rate} Hz, a window is {min_samples})")
    return np.ascontiguousarray(mono)


def _manifest_categories(root: Path) -> dict[str, str]:
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return {}
    try:
        clips = json.loads(manifest.read_text()).get("clips", [])
        return {c["path"]: c["category"] for c in clips}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise DataError(f"{manifest}: not a valid earshot manifest (expected clips with path and category)") from None


def category_of(relative: str, manifest: dict[str, str]) -> str:
    """The manifest's category, else the first sub-folder's name when it is a known category."""
    if relative in manifest:
        return manifest[relative]
    parts = relative.split("/")
    if len(parts) > 1 and parts[0].lower() in CATEGORIES:
        return parts[0].lower()
    return OTHER


def find_audio_files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS),
                  key=lambda p: p.relative_to(root).as_posix())


def load_folder(root: Path, sample_rate: int, min_samples: int, log=print) -> AudioSet:
    """Every usable audio file under ``root``, sorted by relative path.

    Raises:
        DataError: the folder does not exist or holds no usable audio.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    manifest = _manifest_categories(root)
    files, skipped = [], []
    for path in find_audio_files(root):
        relative = path.relative_to(root).as_posix()
        try:
            audio = load_audio(path, sample_rate, min_samples)
        except AudioError as exc:
            skipped.append((relative, str(exc)))
            log(f"skipped {relative}: {exc}")
            continue
        files.append(AudioFile(path, relative, category_of(relative, manifest), audio))
    if skipped:
        log(f"skipped {len(skipped)} file(s) of {len(files) + len(skipped)}")
    if not files:
        raise DataError(f"{root}: no usable audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return AudioSet(root, sample_rate, files, skipped)
