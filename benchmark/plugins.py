"""A run's own losses and model: checked before training, recorded in the run, rebuilt as recorded.

Read top to bottom as a run uses it: :func:`check_plugins` (every plugin builds and runs once on a
random batch of the run's shape) → :func:`record_plugins` (each plugin's origin in ``run.json``, a copy
of each file plugin in the run) → :func:`use_recorded_plugins` (a resumed or re-evaluated run rebuilds
each file plugin from its copy, saying so when the file on disk has changed) → :func:`check_report`
(``earshot losses check`` / ``earshot models check``: the checks and a few probes, on their own).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Callable

import torch

from earshot.benchmark.config import RunConfig
from earshot.benchmark.data.windows import reconstruction_hop
from earshot.losses import REGISTRY, build_loss, check_loss, head_spec, options_key, parse_expression
from earshot.models import DEFAULT_MODEL, MODELS, build_model, check_model, count_parameters, latent_size
from earshot.models.plugins import FILE, Origin, file_sha256, is_file_reference
from earshot.results.rundir import RunDir

LOSS, MODEL = "loss", "model"


class PluginChangedError(ValueError):
    """A recorded plugin differs from the one installed or on disk, and ``--strict`` refuses it."""


def _registry(role: str):
    return REGISTRY if role == LOSS else MODELS


def plugin_terms(config: RunConfig) -> list[tuple[str, str]]:
    """(role, term) of every plugin a run uses, once each: loss terms that are not earshot's own, then the model."""
    found: dict[tuple[str, str], None] = {}
    for expression in config.losses:
        for _, term in parse_expression(expression):
            if not REGISTRY.is_builtin(term):
                found[(LOSS, term)] = None
    if config.model.name != DEFAULT_MODEL:
        found[(MODEL, config.model.name)] = None
    return list(found)


def head_channels_of(config: RunConfig) -> list[int]:
    """The decoder heads' channel counts the run's losses ask for, in order, once each."""
    heads: dict[int, None] = {}
    for expression in config.losses:
        first = parse_expression(expression)[0][1]
        heads[head_spec(first, **dict(config.loss_options.get(options_key(first)) or {}))[1]] = None
    return list(heads)


def check_plugins(config: RunConfig) -> None:
    """Every plugin loss and model of the run builds, and runs once on a random batch of the run's shape.

    Raises:
        UnknownLossError / UnknownModelError: one line naming the plugin and what is wrong.
    """
    from earshot.losses import UnknownLossError

    keys: dict[str, tuple[str, type]] = {}
    for expression in config.losses:
        for _, term in parse_expression(expression):
            key, cls = options_key(term), REGISTRY.resolve(term)
            if key in keys and keys[key][1] is not cls:
                raise UnknownLossError(f"losses {keys[key][0]!r} and {term!r} are different classes with one "
                                       f"name {key!r} (their loss_options section): rename one")
            keys[key] = (term, cls)
    rate, window = config.data.sample_rate, config.data.window
    for role, term in plugin_terms(config):
        if role == LOSS:
            check_loss(term, rate, window, config.loss_options)
        else:
            for channels in head_channels_of(config):
                check_model(term, window, channels, config.model_options, rate)


def plugin_origins(config: RunConfig) -> dict[str, dict]:
    """``run.json``'s ``plugins``: per plugin term, its role and origin (module and version, or file and sha256)."""
    return {term: {"role": role, **_registry(role).origin_of(term).as_dict()} for role, term in plugin_terms(config)}


def record_plugins(run: RunDir, config: RunConfig) -> dict[str, dict]:
    """Record each plugin's origin in ``run.json`` (a plugin recorded before keeps its first record) and
    keep a copy of each file plugin in the run. Returns the run's plugin records."""
    origins = plugin_origins(config)
    for term, origin in origins.items():
        if origin["kind"] == FILE:
            run.keep_plugin_copy(Path(origin["path"]), origin["sha256"])

    def add(record: dict) -> None:
        recorded = record.setdefault("plugins", {})
        for term, origin in origins.items():
            recorded.setdefault(term, origin)

    return run.update_record(add)["plugins"]


def use_recorded_plugins(run: RunDir, strict: bool = False, log: Callable[[str], None] = print) -> None:
    """Rebuild a run's plugins as it recorded them: each file plugin from the run's copy; say so (or with
    ``strict`` refuse) when a file on disk or an installed plugin's version has changed since.

    Raises:
        PluginChangedError: with ``strict``, the first plugin that changed, in one line.
    """
    for registry in (REGISTRY, MODELS):
        registry.clear_files()  # another run's copies, used before in this process
    for term, record in (run.read_record().get("plugins") or {}).items():
        origin = Origin.from_dict(record)
        role = record.get("role", LOSS)
        if origin.kind == FILE:
            copy = run.plugin_copy(origin.sha256, Path(origin.path).name)
            path = Path(origin.path)
            now = file_sha256(path) if path.is_file() else None
            if now != origin.sha256:
                state = "is gone" if now is None else f"has changed (sha256 {origin.sha256[:8]} then, {now[:8]} now)"
                if not copy.is_file():
                    raise PluginChangedError(f"{role} {term}: {path} {state} since run {run.name} recorded it, and "
                                             f"the run's copy {copy} is missing")
                if strict:
                    raise PluginChangedError(f"{role} {term}: {path} {state} since run {run.name} recorded it; "
                                             f"--strict refuses (without it the run's copy {copy} is used)")
                log(f"{role} {term}: {path} {state} since the run recorded it; using the run's copy {copy}")
            if copy.is_file():
                _registry(role).use_file(term, copy)
            continue
        try:
            current = _registry(role).origin_of(term)
        except ValueError as exc:
            if strict:
                raise PluginChangedError(f"{role} {term}: recorded from {origin.describe()}, now unusable: {exc}") \
                    from None
            continue  # the build itself will say what is wrong
        if (current.package, current.version) != (origin.package, origin.version):
            line = f"{role} {term}: the run recorded {origin.describe()}, installed now is {current.describe()}"
            if strict:
                raise PluginChangedError(f"{line}; --strict refuses")
            log(f"{line}; using the installed one")


def plugin_files(run: RunDir) -> dict[str, tuple[str, str, str]]:
    """The run's file plugins as ``term: (role, file name, source text)``: what a remote task carries."""
    files = {}
    for term, record in (run.read_record().get("plugins") or {}).items():
        if record.get("kind") == FILE:
            copy = run.plugin_copy(record["sha256"], Path(record["path"]).name)
            if copy.is_file():
                files[term] = (record.get("role", LOSS), copy.name, copy.read_text(encoding="utf-8"))
    return files


_CARRIED: dict[tuple[str, str], Path] = {}  # (file name, content hash) → where this process wrote it


def use_plugin_files(files: dict[str, tuple[str, str, str]]) -> None:
    """Rebuild the file plugins a task carried (:func:`plugin_files`) in this process, from their text."""
    for term, (role, name, text) in files.items():
        key = (name, hashlib.sha256(text.encode("utf-8")).hexdigest())
        if key not in _CARRIED:
            folder = Path(tempfile.mkdtemp(prefix="earshot-plugin-"))
            (folder / name).write_text(text, encoding="utf-8")
            _CARRIED[key] = folder / name
        _registry(role).use_file(term, _CARRIED[key])


def model_record(config: RunConfig) -> dict:
    """``run.json``'s ``model``: its name, origin, parameters per decoder head and latent rate."""
    rate, window = config.data.sample_rate, config.data.window
    parameters, latent = {}, None
    for channels in head_channels_of(config):
        model = build_model(config.model, window, channels, config.model_options, rate)
        parameters[str(channels)] = count_parameters(model)
        latent = latent_size(model)
    origin = MODELS.origin_of(config.model.name)
    hop = reconstruction_hop(window)  # as evaluated, and as the report's bitrate axis counts
    return {"name": config.model.name, "origin": origin.describe(), "parameters": parameters, "latent": latent,
            "latent_per_second": latent * rate / hop, "window": window, "hop": hop, "sample_rate": rate}


# --- earshot losses check / earshot models check ------------------------------------------------


def _probe_signals(window: int, rate: int, batch: int = 4) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A target of speech-like tones and noise, and what each probe compares with it."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(window) / rate
    freqs = torch.tensor([180.0, 450.0, 1200.0, 2600.0])[:, None]
    tones = torch.sin(2 * torch.pi * freqs * t).sum(dim=0) / 4
    target = tones[None].repeat(batch, 1) * torch.linspace(0.5, 1.0, batch)[:, None]
    target = target + 0.02 * torch.randn(batch, window, generator=generator)
    spectrum = torch.fft.rfft(target, dim=1)
    cutoff = int(spectrum.shape[1] * 1000 / (rate / 2))
    spectrum[:, cutoff:] = 0
    lowpass = torch.fft.irfft(spectrum, n=window, dim=1)
    noise = 0.3 * torch.randn(batch, window, generator=generator)
    return target, {"identical": target.clone(), "gain ×0.5": 0.5 * target, "white noise": noise,
                    "low-pass 1 kHz": lowpass}


def check_report(config: RunConfig, spec: str, role: str = LOSS, device: str = "cpu", steps: int = 3) -> dict:
    """``earshot losses check SPEC`` / ``earshot models check SPEC``: the checks a run makes before training,
    then (a loss) its value on a few probes and its gradient norm, and (both) the training step's time
    relative to ``mse`` with the gated conv model on the run's preset.

    Raises:
        UnknownLossError / UnknownModelError: the first failed check, in one line.
    """
    from earshot.benchmark.bench import bench_training

    rate, window = config.data.sample_rate, config.data.window
    if role == LOSS:
        config = config.model_copy(update={"losses": [spec]})
    else:
        config = config.model_copy(update={"model": config.model.model_copy(update={"name": spec})})
    check_plugins(config)
    if role == LOSS:
        for _, term in parse_expression(spec):  # earshot's own too: this command checks whatever it is given
            check_loss(term, rate, window, config.loss_options)
    if role == MODEL:
        origin = MODELS.origin_of(spec).describe()
    else:
        terms = parse_expression(spec)
        origin = REGISTRY.origin_of(terms[0][1]).describe() if len(terms) == 1 else "a weighted sum"
    result: dict = {"spec": spec, "role": role, "origin": origin, "probes": {}}
    if role == LOSS:
        loss = build_loss(spec, rate, config.loss_options)
        if (loss.head_kind, loss.head_channels) == ("waveform", 1):
            target, probes = _probe_signals(window, rate)
            for name, estimate in probes.items():
                head = estimate[:, None].clone().requires_grad_(True)
                value = loss(head, target)
                value.backward()
                result["probes"][name] = {"value": float(value.detach()), "grad_norm": float(head.grad.norm())}
        result["head"] = f"{loss.head_kind}, {loss.head_channels} channel{'s' if loss.head_channels != 1 else ''}"
    else:
        result.update(model_record(config.model_copy(update={"losses": ["mse"]})))
    losses = [spec] if role == LOSS else ["mse"]
    timing = bench_training(config, device=device, losses=losses, steps=steps, warmup=1, rounds=1,
                            log=lambda line: None)
    name = losses[0]
    result["step_ms"] = timing["losses"][name]["step_ms"]
    if role == LOSS:
        result["to_mse"] = timing["losses"][name]["to_mse"]
    else:
        base = bench_training(config.model_copy(update={"model": config.model.model_copy(
            update={"name": DEFAULT_MODEL}), "model_options": {}}), device=device, losses=["mse"], steps=steps, warmup=1, rounds=1,
            log=lambda line: None)
        result["to_mse"] = result["step_ms"] / base["losses"]["mse"]["step_ms"]
    result["preset"] = config.preset
    return result

