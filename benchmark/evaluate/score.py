"""Scoring folders of decoded audio: any system's outputs measured against a folder of references.

Files are matched by relative path without extension (``speech/a.wav`` ↔ ``speech/a.flac``); a
reference without a decoded file or a decoded file without a reference stops the command, naming
them, unless ``partial``. Every file goes through the data loader (any format, rate, channel count;
a bad file is named and left out) at the references' rate (or ``rate``). Per system one constant
delay, up to ``max_delay_ms``, is found by cross-correlation and removed; lengths are then cut to
the shorter (in a new run: reference and decoded alike; added to a run: the decoded file is cut or
padded to the run's excerpt), and both are reported.

The result is a run directory with the contract of a trained run (``reference/``,
``recon/<system>/``, ``metrics.parquet``, ``excerpts.json``), or, with ``into``, the systems join an
evaluated run next to its losses, on its excerpts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch
import yaml

from earshot.benchmark.data.audio import AudioSet, DataError, find_audio_files, load_folder
from earshot.benchmark.evaluate.align import estimate_delay, remove_delay
from earshot.benchmark.evaluate.systems import (DEFAULT_MAX_DELAY_MS, KIND_SCORED, SCORE_KIND, AddSystemError,
                                                add_systems, check_name, max_lag, references_digest, run_references,
                                                taken_names)
from earshot.benchmark.train.runner import environment
from earshot.results.rundir import PCM16_SCALE, RunDir, pcm16, write_wav

SHOWN = 5  # names listed in a one-line message before "and N more"


@dataclass
class Scored:
    """What scoring did to one system, for the CLI and ``systems.json``."""

    name: str
    folder: str
    items: int
    delay_samples: int
    delay_ms: float
    cut_samples: int  # after the delay, the length differences from the references, summed over items
    padded_samples: int  # samples of silence added at the end (a decoded file shorter than a run's excerpt)
    longest_cut_ms: float  # the largest of those differences
    skipped: list[tuple[str, str]]


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def _stem(relative: str) -> str:
    return relative.rsplit(".", 1)[0] if "." in relative.rsplit("/", 1)[-1] else relative


def _by_stem(audio_set: AudioSet, what: str) -> dict[str, object]:
    found: dict[str, object] = {}
    for f in audio_set.files:
        stem = _stem(f.relative)
        if stem in found:
            raise AddSystemError(f"{what}: {found[stem].relative} and {f.relative} are the same file by name; keep one")
        found[stem] = f
    return found


def references_rate(folder: Path) -> int:
    """The one sample rate of a folder's readable audio files; raises AddSystemError when they differ."""
    rates = set()
    for path in find_audio_files(folder):
        try:
            rates.add(sf.info(str(path)).samplerate)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
            continue  # named when the folder is loaded
    if len(rates) > 1:
        raise AddSystemError(f"{folder}: references at {', '.join(f'{r} Hz' for r in sorted(rates))}; give --rate")
    if not rates:
        raise AddSystemError(f"{folder}: no readable audio files")
    return rates.pop()


def _load_system(name: str, folder: Path, rate: int, log: Callable[[str], None]) -> AudioSet:
    try:
        return load_folder(folder, rate, min_samples=1, log=lambda m: log(f"{name}: {m}"))
    except DataError as exc:
        raise AddSystemError(f"system {name}: {exc}") from None


def _match(name: str, decoded: dict, wanted: set[str], partial: bool, log: Callable[[str], None]) -> set[str]:
    """The items both have; a missing or extra file stops scoring (one line) unless ``partial``."""
    missing = sorted(wanted - decoded.keys())
    extra = sorted(decoded.keys() - wanted)
    problems = []
    if missing:
        problems.append(f"no decoded file for {len(missing)} reference(s): {_names(missing)}")
    if extra:
        problems.append(f"{len(extra)} decoded file(s) without a reference: {_names([decoded[s].relative for s in extra])}")
    if problems:
        message = f"system {name}: " + "; ".join(problems)
        if not partial:
            raise AddSystemError(message + " (--partial scores the files both have)")
        log(message + "; scoring the files both have (--partial)")
    both = wanted & decoded.keys()
    if not both:
        raise AddSystemError(f"system {name}: no decoded file matches a reference by name")
    return both


def _check_systems(systems: dict[str, Path], taken: set[str]) -> None:
    if not systems:
        raise AddSystemError("give at least one --system NAME=DIR")
    for name, folder in systems.items():
        check_name(name, taken)
        if not Path(folder).is_dir():
            raise AddSystemError(f"system {name}: {folder} is not a folder")


def _aligned(name: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]], rate: int,
             max_delay_ms: float) -> tuple[int, dict[str, np.ndarray]]:
    delay = estimate_delay(list(pairs.values()), max_lag(rate, max_delay_ms))
    return delay, {item: remove_delay(decoded, delay) for item, (_, decoded) in pairs.items()}


def score_into(run_dir: Path, systems: dict[str, Path], max_delay_ms: float = DEFAULT_MAX_DELAY_MS,
               partial: bool = False, bitrates: dict[str, float] | None = None, workers: int | None = None,
               log: Callable[[str], None] = print, executor: str = "local",
               ray_address: str | None = None) -> list[Scored]:
    """Add folders of decoded audio to an evaluated run as systems, on its excerpts.

    Each folder holds one file per excerpt, named by the item (``speech-01.wav``, any audio format), as a
    system made from the run's ``reference/`` files; it is aligned to them, cut or padded to each excerpt's
    length, and measured. ``partial`` lets extra files be ignored; every excerpt must be there.
    Raises AddSystemError (one line).
    """
    run = RunDir(run_dir)
    if not run.exists():
        raise AddSystemError(f"{run.path}: not a run directory")
    _check_systems(systems, taken_names(run))
    excerpts, references, rate = run_references(run)
    items = set(references)
    audio, entries, done = {}, {}, []
    for name, folder in systems.items():
        loaded = _load_system(name, Path(folder), rate, log)
        decoded = _by_stem(loaded, f"system {name}")
        both = _match(name, decoded, items, partial, log)
        if both != items:  # a run's tables pair systems item by item: a system added to it decodes every excerpt
            raise AddSystemError(f"system {name}: added to a run, it needs a decoded file for each of its "
                                 f"{len(items)} excerpts (missing: {_names(sorted(items - both))})")
        pairs = {item: (references[item], decoded[item].audio) for item in sorted(both)}
        delay, aligned = _aligned(name, pairs, rate, max_delay_ms)
        fitted, cut, padded, longest = {}, 0, 0, 0
        for item, signal in aligned.items():
            target = references[item].size
            cut += max(0, signal.size - target)
            padded += max(0, target - signal.size)
            longest = max(longest, abs(signal.size - target))
            fitted[item] = signal[:target] if signal.size >= target else np.pad(signal, (0, target - signal.size))
        scored = Scored(name, str(folder), len(fitted), delay, 1000 * delay / rate, cut, padded,
                        1000 * longest / rate, loaded.skipped)
        audio[name] = fitted
        entries[name] = _entry(scored, (bitrates or {}).get(name), references_digest(references))
        done.append(scored)
    add_systems(run, excerpts, references, audio, entries, rate, workers, log, executor, ray_address)
    return done


def _entry(scored: Scored, bitrate_kbps: float | None, references: str) -> dict:
    return {"kind": KIND_SCORED, "folder": scored.folder, "items": scored.items,
            "delay_samples": scored.delay_samples, "delay_ms": scored.delay_ms, "cut_samples": scored.cut_samples,
            "padded_samples": scored.padded_samples, "longest_cut_ms": scored.longest_cut_ms,
            "skipped": [list(s) for s in scored.skipped],
            "bitrate_kbps": bitrate_kbps, "bitrate": None if bitrate_kbps is None else "given",
            "references": references}


def score_folders(reference: Path, systems: dict[str, Path], out: Path, rate: int | None = None,
                  max_delay_ms: float = DEFAULT_MAX_DELAY_MS, partial: bool = False,
                  bitrates: dict[str, float] | None = None, workers: int | None = None,
                  log: Callable[[str], None] = print, executor: str = "local",
                  ray_address: str | None = None) -> list[Scored]:
    """A new run at ``out`` from a folder of references and folders of decoded audio (one per system).

    Categories come from the reference folder's sub-folders or its ``manifest.json``, as for ``--data``.
    Each item's reference and decoded files are cut to the shortest of them after every system's delay
    is removed, so all systems are measured on the same reference. Raises AddSystemError (one line).
    """
    out_run = RunDir(out)
    if out_run.path.exists() and any(out_run.path.iterdir()):
        raise AddSystemError(f"{out_run.path}: exists and is not empty; choose a new --out, or add the systems "
                             f"to an evaluated run with --into")
    reference = Path(reference)
    if not reference.is_dir():
        raise AddSystemError(f"--reference {reference}: not a folder")
    _check_systems(systems, set())
    rate = rate or references_rate(reference)
    try:
        refs = load_folder(reference, rate, min_samples=1, log=lambda m: log(f"reference: {m}"))
    except DataError as exc:
        raise AddSystemError(f"--reference: {exc}") from None
    by_stem = _by_stem(refs, "--reference")
    loaded, aligned, delays = {}, {}, {}
    for name, folder in systems.items():
        loaded[name] = _load_system(name, Path(folder), rate, log)
        decoded = _by_stem(loaded[name], f"system {name}")
        both = _match(name, decoded, set(by_stem), partial, log)
        pairs = {item: (by_stem[item].audio, decoded[item].audio) for item in sorted(both)}
        delays[name], aligned[name] = _aligned(name, pairs, rate, max_delay_ms)

    items = sorted({item for a in aligned.values() for item in a})
    length = {item: min([by_stem[item].audio.size] + [a[item].size for a in aligned.values() if item in a])
              for item in items}
    # What a listener hears (16-bit PCM), as evaluation measures its references.
    references = {item: pcm16(by_stem[item].audio[:length[item]]).astype(np.float32) / PCM16_SCALE for item in items}
    excerpts = [{"item": item, "category": by_stem[item].category, "source": by_stem[item].relative, "start": 0,
                 "samples": length[item]} for item in items]
    audio, entries, done = {}, {}, []
    for name, signals in aligned.items():
        differences = [abs(s.size - by_stem[item].audio.size) for item, s in signals.items()]
        cut, longest = sum(differences), max(differences)
        scored = Scored(name, str(systems[name]), len(signals), delays[name], 1000 * delays[name] / rate, cut, 0,
                        1000 * longest / rate, loaded[name].skipped)
        audio[name] = {item: s[:length[item]] for item, s in signals.items()}
        entries[name] = _entry(scored, (bitrates or {}).get(name), references_digest(references))
        done.append(scored)

    out_run.create()
    config = {"kind": SCORE_KIND, "data": {"path": str(reference), "sample_rate": rate},
              "losses": list(systems),
              "score": {"systems": {n: str(f) for n, f in systems.items()}, "max_delay_ms": max_delay_ms,
                        "partial": partial, "rate": rate}}
    out_run.write_config(yaml.safe_dump(config, sort_keys=False))
    out_run.write_environment(environment(torch.device("cpu")))
    seconds = {}
    for item in items:
        seconds[by_stem[item].category] = seconds.get(by_stem[item].category, 0.0) + length[item] / rate
    out_run.write_record({"run_id": out_run.name, "kind": SCORE_KIND, "jobs": {},
                          "data": {"root": str(reference), "files": len(items), "seconds": seconds,
                                   "skipped": [{"file": f, "reason": r} for f, r in refs.skipped]}})
    out_run.write_excerpts(excerpts)
    for item in items:
        write_wav(out_run.reference_wav(item), references[item], rate)
    add_systems(out_run, excerpts, references, audio, entries, rate, workers, log, executor, ray_address)
    return done


def parse_system(text: str) -> tuple[str, Path]:
    """``NAME=DIR`` → (name, folder); raises AddSystemError."""
    name, eq, folder = text.partition("=")
    if not eq or not name.strip() or not folder.strip():
        raise AddSystemError(f"--system {text!r}: give NAME=DIR, e.g. encodec=decoded/encodec")
    return name.strip(), Path(folder.strip())


def parse_bitrate(text: str) -> tuple[str, float]:
    """``NAME=KBPS`` (``encodec=6`` or ``encodec=6k``) → (name, kbit/s); raises AddSystemError."""
    name, eq, value = text.partition("=")
    try:
        kbps = float(value.strip().lower().removesuffix("k"))
    except ValueError:
        kbps = -1.0
    if not eq or not name.strip() or kbps <= 0:
        raise AddSystemError(f"--bitrate {text!r}: give NAME=KBPS, e.g. encodec=6 (kbit/s)")
    return name.strip(), kbps
