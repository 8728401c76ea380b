"""Systems beside the trained losses: real codecs and folders of decoded audio, in the run like a loss.

A system lands in a run as the linear baseline ``pca-<k>`` does: ``recon/<system>/``, rows in
``metrics.parquet`` (job and loss the system's name, seed 0), an entry in ``eval_cache.json``;
so tables, best/tied marks, hypotheses, the report and listening tests take it as a loss.
``systems.json`` says what each system is and its bitrate:

- ``autoencoder`` and ``linear`` (a trained loss, the PCA baseline; written by evaluation,
  :func:`~earshot.benchmark.evaluate.reconstruct.latent_rate_entry`): ``latents_per_s``, one code
  of ``model.latent`` numbers per reconstruction hop (half a window); the report turns it into a
  nominal bitrate at a number of bits per latent;
- ``codec``: ``bitrate_kbps`` measured from the encoded files, the delay removed, the command
  lines and the tools' versions;
- ``scored``: the folder, the delay removed, the lengths trimmed, and a digest of the references
  it was aligned to (an evaluation on other excerpts drops it, saying so).

:func:`add_systems` measures new systems into a measurement root and merges them; evaluation keeps
them (:func:`external_systems`), re-encoding a codec when what it depends on changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from earshot.benchmark.evaluate.align import estimate_delay, remove_delay
from earshot.benchmark.evaluate.codecs import (CODEC_VERSION, CodecSpec, check_installed, codec_of, parse_spec,
                                               round_trip, tool_versions)
from earshot.benchmark.evaluate.metrics import METRICS, metric_catalog, metric_pool, metrics_for
from earshot.benchmark.evaluate.reconstruct import METRIC_COLUMNS, System, _metrics_task
from earshot.results.rundir import SCORE_RUN_KIND, Measurements, RunDir, read_wav, write_wav

KIND_CODEC = "codec"
KIND_SCORED = "scored"
SCORE_KIND = SCORE_RUN_KIND
DEFAULT_MAX_DELAY_MS = 100.0
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._+-]*")


class AddSystemError(ValueError):
    """A system that cannot be added: one line naming it and why."""


def check_name(name: str, taken: set[str]) -> None:
    """A system's name is a folder name in the run and must not be a loss's or job's; raises AddSystemError."""
    if not NAME_PATTERN.fullmatch(name):
        raise AddSystemError(f"system name {name!r}: use letters, digits and @ . _ + - (it names recon/<system>/)")
    if name in taken:
        raise AddSystemError(f"system name {name!r} is a loss or job of the run; choose another")


def references_digest(references: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for item in sorted(references):
        digest.update(item.encode())
        digest.update(np.ascontiguousarray(references[item], dtype=np.float32).tobytes())
    return digest.hexdigest()


def audio_digest(recon: dict[str, np.ndarray]) -> str:
    return references_digest(recon)


def max_lag(rate: int, max_delay_ms: float) -> int:
    return int(round(max_delay_ms * rate / 1000))


# --- codecs -----------------------------------------------------------------------------------------


def codec_key(spec: CodecSpec, versions: dict[str, str]) -> str:
    record = {"spec": spec.name, "codec": spec.codec, "bps": spec.bps, "versions": versions, "version": CODEC_VERSION}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def codec_audio(spec: CodecSpec, references: dict[str, np.ndarray], rate: int,
                max_delay_ms: float = DEFAULT_MAX_DELAY_MS) -> tuple[dict[str, np.ndarray], dict]:
    """Every reference through ``spec``'s codec, the codec's constant delay removed and each cut or padded to
    its reference's length; returns the decoded audio by item and the system's ``systems.json`` entry."""
    trips = {item: round_trip(spec, audio, rate) for item, audio in references.items()}
    delay = estimate_delay([(references[i], t.decoded) for i, t in trips.items()], max_lag(rate, max_delay_ms))
    decoded = {i: _fit(remove_delay(t.decoded, delay), references[i].size) for i, t in trips.items()}
    seconds = sum(a.size for a in references.values()) / rate
    bits = sum(t.bits for t in trips.values())
    first = next(iter(trips.values()))
    entry = {"kind": KIND_CODEC, "codec": spec.codec, "package": codec_of(spec).package,
             "bitrate_asked_kbps": spec.bps / 1000, "bitrate_kbps": bits / seconds / 1000,
             "bits_measured": codec_of(spec).bits_measured, "encoded_bits": bits, "seconds": seconds,
             "delay_samples": delay, "delay_ms": 1000 * delay / rate, "commands": first.commands,
             "versions": tool_versions(spec), "codec_version": CODEC_VERSION}
    return decoded, entry


def _fit(audio: np.ndarray, samples: int) -> np.ndarray:
    return audio[:samples] if audio.size >= samples else np.pad(audio, (0, samples - audio.size))


def _codec_system(name: str, entry: dict, rate: int) -> System:
    spec = parse_spec(name)
    recorded = entry.get("versions") or {}

    def load():
        def run(references: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
            decoded, fresh = codec_audio(spec, references, rate)
            system.key = codec_key(spec, fresh["versions"])
            system.entry.clear()
            system.entry.update(fresh, key=system.key)
            yield from decoded.items()

        check_installed([spec])
        return run, name, 0

    system = System(name, codec_key(spec, recorded), load, dict(entry))
    return system


def _scored_system(name: str, entry: dict, out: Measurements) -> System:
    def load():
        def run(references: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
            for item in references:
                yield item, read_wav(out.recon_wav(name, item))

        return run, name, 0

    return System(name, entry.get("key", ""), load, dict(entry))


def external_systems(out: Measurements, references: dict[str, np.ndarray], rate: int,
                     log: Callable[[str], None]) -> list[System]:
    """The codecs and scored folders recorded in ``out``'s ``systems.json``, as systems evaluation measures.

    A scored folder aligned to other references than ``references`` (the excerpts changed) or whose audio
    is gone is dropped from ``systems.json``, with one line saying so; a codec is re-encoded then.
    """
    systems, dropped = [], set()
    for name, entry in out.read_systems().items():
        kind = entry.get("kind")
        if kind == KIND_CODEC:
            systems.append(_codec_system(name, entry, rate))
        elif kind == KIND_SCORED:
            if entry.get("references") != references_digest(references) or \
                    not all(out.recon_wav(name, item).is_file() for item in references):
                log(f"dropped {name}: its decoded audio was scored on other excerpts than these; score it again "
                    f"(earshot score --system {name}=DIR --into {out.path})")
                dropped.add(name)
                continue
            systems.append(_scored_system(name, entry, out))
    if dropped:
        out.update_systems({}, drop=dropped)
    return systems


# --- adding systems to a measurement root --------------------------------------------------------


def add_systems(out: Measurements, excerpts: list[dict], references: dict[str, np.ndarray],
                audio: dict[str, dict[str, np.ndarray]], entries: dict[str, dict], rate: int,
                workers: int | None = None, log: Callable[[str], None] = print, executor: str = "local",
                ray_address: str | None = None) -> pd.DataFrame:
    """Measure new systems' audio against ``references`` and merge them into ``out`` (metrics in a local
    pool of ``workers``, or on a Ray cluster with ``executor="ray"``).

    ``audio``: per system, its decoded audio by item (any subset of the excerpts: a partial system is
    measured on what it has). Writes ``recon/<system>/<item>.wav`` (16-bit, what a listener hears; the
    metrics are taken on it), replaces the systems' rows in ``metrics.parquet`` (others are kept),
    ``metrics_info.json``, their ``eval_cache.json`` entries and their ``systems.json`` entries.
    Returns the whole metrics table.
    """
    by_item = {e["item"]: e for e in excerpts}
    futures = {}
    cache_entries, heard_digests = {}, {}
    workers = workers or os.cpu_count() or 1
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(metric_pool(min(workers, max(1, sum(len(a) for a in audio.values()))),
                                               executor, ray_address))
        for name, decoded in audio.items():
            heard_all = {}
            non_finite = []
            for item, signal in decoded.items():
                if not np.isfinite(signal).all():
                    non_finite.append(item)
                heard = write_wav(out.recon_wav(name, item), signal, rate)
                heard_all[item] = heard
                futures[name, item] = pool.submit(_metrics_task, name, name, 0, by_item[item], references[item], heard,
                                                  rate, item in non_finite, metrics_for(by_item[item]["category"]))
            heard_digests[name] = audio_digest(heard_all)
            cache_entries[name] = {"loss": name, "seed": 0, "non_finite": non_finite,
                                   "metrics": {m: spec.version for m, spec in METRICS.items()}}
        rows = {key: future.result() for key, future in futures.items()}
    new = [row for name, decoded in audio.items() for item in decoded for row in rows[name, item]]
    old = out.read_metrics()
    kept = old[~old["job"].isin(list(audio))] if old is not None else pd.DataFrame(columns=METRIC_COLUMNS)
    frame = pd.concat([kept, pd.DataFrame(new, columns=METRIC_COLUMNS)], ignore_index=True)
    out.write_metric_info(metric_catalog())
    out.write_metrics(frame)
    cache = out.read_eval_cache()
    cache.setdefault("inputs", None)
    cache.setdefault("systems", {})
    for name, entry in cache_entries.items():
        key = entries[name].get("key")
        if entries[name].get("kind") == KIND_SCORED:
            key = heard_digests[name]
            entries[name] = {**entries[name], "key": key}
        cache["systems"][name] = {"key": key, **entry}
    out.write_eval_cache(cache)
    out.update_systems(entries)
    return frame


def run_references(run: RunDir) -> tuple[list[dict], dict[str, np.ndarray], int]:
    """An evaluated run's excerpts, its reference audio by item (as measured: the 16-bit files) and its rate.

    Raises:
        AddSystemError: the run is not evaluated or a reference is missing.
    """
    if not run.excerpts_file.is_file():
        raise AddSystemError(f"{run.path}: not evaluated (no {run.excerpts_file.name}); earshot eval {run.path} first")
    excerpts = run.read_excerpts()
    references = {}
    for e in excerpts:
        path = run.reference_wav(e["item"])
        if not path.is_file():
            raise AddSystemError(f"{run.path}: {run.relative(path)} is missing; earshot eval {run.path} --force "
                               f"writes it again")
        references[e["item"]] = read_wav(path)
    config = run.read_config() if run.config_file.is_file() else {}
    rate = int((config.get("data") or {}).get("sample_rate") or 0)
    if not rate:
        raise AddSystemError(f"{run.path}: its config records no data.sample_rate")
    return excerpts, references, rate


def taken_names(run: RunDir) -> set[str]:
    """The run's loss, job and linear-baseline names, which a codec or scored system may not take."""
    record = run.read_record()
    names = set(record.get("jobs") or {})
    names |= {str(j.get("loss")) for j in (record.get("jobs") or {}).values()}
    config = run.read_config() if run.config_file.is_file() else {}
    names |= {str(loss) for loss in config.get("losses") or []}
    # the linear baseline, and any other system evaluation itself makes
    names |= {name for name, entry in run.read_systems().items() if entry.get("kind") not in (KIND_CODEC, KIND_SCORED)}
    return names


def register_codecs(run_dir: Path, specs: list[CodecSpec]) -> None:
    """Record codecs in a run's ``systems.json`` for its next evaluation to encode, decode and measure.

    Raises:
        CodecError: a tool is missing (naming its Debian package).
        AddSystemError: a codec's name is a loss's or a job's.
    """
    run = RunDir(run_dir)
    check_installed(specs)
    taken = taken_names(run)
    for spec in specs:
        check_name(spec.name, taken)
    known = run.read_systems()  # a codec measured before keeps its record (and its cached measurements)
    run.update_systems({spec.name: {"kind": KIND_CODEC, "codec": spec.codec, "bitrate_asked_kbps": spec.bps / 1000}
                        for spec in specs if (known.get(spec.name) or {}).get("kind") != KIND_CODEC})


def add_codecs(run_dir: Path, specs: list[CodecSpec], workers: int | None = None,
               log: Callable[[str], None] = print, executor: str = "local",
               ray_address: str | None = None) -> dict[str, dict]:
    """Encode and decode an evaluated run's excerpts with each codec and add them as systems; returns their
    ``systems.json`` entries.

    Raises:
        CodecError: a tool is missing (naming its Debian package) or failed.
        AddSystemError: the run is not evaluated, or a codec's name is a loss's.
    """
    run = RunDir(run_dir)
    check_installed(specs)
    excerpts, references, rate = run_references(run)
    taken = taken_names(run)
    for spec in specs:
        check_name(spec.name, taken)
    audio, entries = {}, {}
    for spec in specs:
        audio[spec.name], entry = codec_audio(spec, references, rate)
        entries[spec.name] = {**entry, "key": codec_key(spec, entry["versions"])}
        log(f"{spec.name}: {entry['bitrate_kbps']:.2f} kbit/s measured ({entry['bits_measured']}), "
            f"delay {entry['delay_samples']} samples removed; {entry['commands'][0]}")
    add_systems(run, excerpts, references, audio, entries, rate, workers, log, executor, ray_address)
    return entries
