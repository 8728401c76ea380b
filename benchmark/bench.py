"""``earshot bench``: training-step speed per loss, as ratios within one run.

Losses are timed in interleaved rounds and each takes its median, so a noisy
neighbour on a shared machine slows all of them alike rather than one.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from datetime import datetime, timezone
from typing import Callable

import torch

from earshot.benchmark.config import RunConfig
from earshot.benchmark.data.windows import NORMALIZE_EPS
from earshot.benchmark.train.loop import TrainStep, build_optimizer, resolve_device, seed_everything
from earshot.losses import REGISTRY, build_loss, check_all_options, check_expression
from earshot.models import GatedConvAutoencoder, build_model, count_parameters, training_flops_per_window

ROUNDS = 3
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by device name.
BF16_PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0),
                    ("L40S", 362.0), ("A10", 125.0), ("4090", 165.0))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # Linux reports ru_maxrss in KiB: the process's peak so far, not per loss.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Stepper:
    """One loss's training step (:class:`TrainStep`, training's own), set up as the trainer sets it up, on a fixed batch."""

    def __init__(self, config: RunConfig, loss_name: str, device: torch.device) -> None:
        loss = build_loss(loss_name, sample_rate=config.data.sample_rate, options=config.loss_options).to(device)
        self.model = build_model(config.model, config.data.window, loss.head_channels, config.model_options,
                                 config.data.sample_rate).to(device)
        self.train_step = TrainStep(self.model, loss, build_optimizer(self.model, config.train, device),
                                    config.train, device)
        generator = torch.Generator(device=device).manual_seed(0)
        # Band-limited noise with a speech-like spectral tilt: realistic loss values.
        noise = torch.randn(config.train.batch, config.data.window, generator=generator, device=device)
        self.batch = torch.cumsum(noise, dim=1) * 0.05 + noise * 0.1
        self.batch = self.batch - self.batch.mean(dim=1, keepdim=True)
        self.batch = self.batch / (self.batch.abs().amax(dim=1, keepdim=True) + NORMALIZE_EPS)

    def step(self) -> None:
        self.train_step(lambda size: self.batch)


def _check_losses(config: RunConfig, names: list[str]) -> None:
    """The checks `earshot run` makes (names or weighted sums, options, plugins), before anything is built."""
    from earshot.benchmark.plugins import check_plugins

    check_all_options(config.loss_options, names)
    for name in names:
        check_expression(name, config.loss_options)
    check_plugins(config.model_copy(update={"losses": list(names)}))


def bench_training(config: RunConfig, device: str = "auto", losses: list[str] | None = None, steps: int = 5,
                   warmup: int = 2, rounds: int = ROUNDS, log: Callable[[str], None] = print) -> dict:
    """Windows/s of a training step per loss, each loss's step time over the MSE step's.

    ``losses`` are registered names or weighted sums (``"mse+0.1*bark"``), as in a run.
    Returns a JSON-able dict; ``bark_to_mse`` when both were measured.

    Raises:
        UnknownLossError: an unknown name, a malformed sum or a bad loss option.
    """
    torch_device = resolve_device(device)
    if torch_device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = config.train.tf32
        torch.backends.cudnn.allow_tf32 = config.train.tf32
        torch.backends.cudnn.benchmark = True
    names = losses or sorted(REGISTRY.builtin_names())
    if "mse" not in names:
        names = ["mse", *names]
    _check_losses(config, names)
    seed_everything(0)
    steppers, peaks = {}, {}
    for name in names:
        if torch_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(torch_device)
        steppers[name] = _Stepper(config, name, torch_device)
        for _ in range(warmup):
            steppers[name].step()
        _sync(torch_device)
        peaks[name] = _peak_mb(torch_device)
        log(f"warmed up {name}")
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            _sync(torch_device)
            start = time.perf_counter()
            for _ in range(steps):
                steppers[name].step()
            _sync(torch_device)
            times[name].append((time.perf_counter() - start) / steps)
    batch = config.train.batch
    model = steppers["mse"].model
    # the gated conv model's FLOPs are counted layer by layer; a plugin model's are unknown
    flops = training_flops_per_window(model) if isinstance(model, GatedConvAutoencoder) else None
    mse_time = statistics.median(times["mse"])
    rows = {}
    for name in names:
        step_time = statistics.median(times[name])
        rows[name] = {
            "windows_per_s": batch / step_time,
            "step_ms": step_time * 1000,
            "to_mse": step_time / mse_time,
            "peak_mb": peaks[name],
            # The model's FLOPs only: a loss's own work is not counted.
            "tflops": flops * batch / step_time / 1e12 if torch_device.type == "cuda" and flops else None,
        }
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": config.preset, "device": str(torch_device),
        "device_name": (torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "batch": batch, "window": config.data.window, "parameters": count_parameters(model),
        "model": config.model.name, "model_gflop_per_window": flops / 1e9 if flops else None, "steps": steps, "rounds": rounds,
        "bf16": torch_device.type == "cuda" and config.train.bf16, "compile": config.train.compile,
        "compile_mode": config.train.compile_mode, "conv_impl": config.train.conv_impl,
        "losses": rows,
    }
    if torch_device.type == "cuda" and result["bf16"] and flops:
        peak = next((p for name, p in BF16_PEAK_TFLOPS if name in result["device_name"]), None)
        if peak:
            result["bf16_peak_tflops"] = peak
            result["mse_fraction_of_bf16_peak"] = rows["mse"]["tflops"] / peak
    if "bark" in rows:
        result["bark_to_mse"] = rows["bark"]["to_mse"]
    return result


def _metric_items(seconds: float, count: int, sample_rate: int, seed: int = 0):
    """(reference, degraded, category) items: real corpus speech when built, else a synthetic signal."""
    import numpy as np

    rng = np.random.default_rng(seed)
    length = int(seconds * sample_rate)
    sources = []
    try:
        from earshot.benchmark.data.audio import load_folder
        from earshot.benchmark.data.corpus import default_corpus_dir

        corpus = default_corpus_dir(sample_rate=sample_rate)
        if (corpus / "manifest.json").exists():
            files = load_folder(corpus, sample_rate, min_samples=length, log=lambda m: None).files
            sources = [f.audio[:length] for f in files if f.category in ("speech", "mix")]
    except Exception:  # noqa: BLE001 - any trouble with the corpus: fall back to synthetic audio
        sources = []
    if not sources:
        t = np.arange(length) / sample_rate
        sources = [(0.3 * np.sin(2 * np.pi * 150 * (i + 1) * t) * (1 + np.sin(2 * np.pi * 3 * t))
                    + 0.05 * rng.standard_normal(length)).astype(np.float32) for i in range(4)]
    items = []
    for i in range(count):
        reference = sources[i % len(sources)]
        noise = rng.standard_normal(reference.size).astype(np.float32) * 0.05 * np.abs(reference).max()
        items.append((reference, (reference + noise).astype(np.float32), "speech"))
    return items


def _metrics_one(item, sample_rate):
    from earshot.benchmark.evaluate.metrics import compute_all

    torch.set_num_threads(1)
    return compute_all(item[0], item[1], sample_rate, item[2])


def bench_metrics(seconds: float = 8.0, items: int = 8, workers: int | None = None, sample_rate: int = 11025,
                  log: Callable[[str], None] = print) -> dict:
    """Seconds of audio evaluated per second: per metric, then every metric in one process vs a pool."""
    import os

    from earshot.benchmark.evaluate.metrics import METRICS, available_metrics, compute_metric, init_metric_worker, metric_pool

    workers = workers or os.cpu_count() or 1
    init_metric_worker()  # the single-process figure under the same conditions as each pool worker
    data = _metric_items(seconds, items, sample_rate)
    available = {name: reason for name, reason in available_metrics().items()}
    per_metric = {}
    for name in METRICS:
        if available.get(name):
            per_metric[name] = {"skipped": available[name]}
            continue
        compute_metric(name, data[0][0], data[0][1], sample_rate)  # warm-up: imports, model loads
        start = time.perf_counter()
        for reference, degraded, _ in data:
            compute_metric(name, reference, degraded, sample_rate)
        elapsed = time.perf_counter() - start
        per_metric[name] = {"audio_s_per_s": seconds * len(data) / elapsed}
        log(f"{name}: {per_metric[name]['audio_s_per_s']:.1f} s of audio per second")
    start = time.perf_counter()
    for item in data:
        _metrics_one(item, sample_rate)
    single = time.perf_counter() - start
    with metric_pool(workers) as pool:
        # Warm every worker (imports, model loads) before timing, as a long evaluation would be.
        list(pool.map(_metrics_one, [data[0]] * workers * 2, [sample_rate] * workers * 2))
        start = time.perf_counter()
        list(pool.map(_metrics_one, data, [sample_rate] * len(data)))
        pooled = time.perf_counter() - start
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device_name": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "items": len(data), "seconds_per_item": seconds, "workers": workers,
        "metrics": per_metric,
        "all_metrics_single_audio_s_per_s": seconds * len(data) / single,
        "all_metrics_pool_audio_s_per_s": seconds * len(data) / pooled,
        "pool_speedup": single / pooled,
    }


PROFILE_TOP = 8


def profile_losses(config: RunConfig, device: str = "auto", losses: list[str] | None = None, steps: int = 3,
                   top: int = PROFILE_TOP) -> dict:
    """Where each loss's training step spends its time: torch.profiler's top operators.

    Per loss: the kernels launched per step (CUDA) and the ``top`` operators by self
    time on the device (CUDA) or the CPU, so a loss that misses its speed target says why.
    """
    from torch.profiler import ProfilerActivity, profile

    torch_device = resolve_device(device)
    cuda = torch_device.type == "cuda"
    names = losses or sorted(REGISTRY.builtin_names())
    _check_losses(config, names)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    seed_everything(0)
    out = {}
    for name in names:
        stepper = _Stepper(config, name, torch_device)
        for _ in range(2):
            stepper.step()
        _sync(torch_device)
        with profile(activities=activities) as prof:
            for _ in range(steps):
                stepper.step()
            _sync(torch_device)
        events = prof.key_averages()
        key = "self_device_time_total" if cuda else "self_cpu_time_total"
        ranked = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:top]
        total = sum(getattr(e, key) for e in events)
        out[name] = {
            "kernels_per_step": (sum(e.count for e in events if e.device_type.name == "CUDA") / steps) if cuda else None,
            "top": [{"op": e.key, "ms_per_step": getattr(e, key) / 1000 / steps,
                     "share": getattr(e, key) / total if total else 0.0, "calls_per_step": e.count / steps}
                    for e in ranked],
        }
        del stepper
    return {"device_name": torch.cuda.get_device_name(torch_device) if cuda else platform.processor() or "cpu",
            "batch": config.train.batch, "preset": config.preset, "steps": steps, "losses": out}


class _FixedBatch:
    def __init__(self, batch: torch.Tensor) -> None:
        self.batch = batch

    def sample(self, size: int) -> torch.Tensor:
        return self.batch


def bench_pack(config: RunConfig, device: str = "auto", losses: list[str] | None = None, seeds: int | None = None,
               steps: int = 5, warmup: int = 2, rounds: int = ROUNDS, impls: tuple[str, ...] | None = None,
               log: Callable[[str], None] = print) -> dict:
    """Windows/s of the whole grid (``losses`` × ``seeds``), packed against one job at a time, in one run.

    One job at a time is each job's own :class:`TrainStep` in turn; packed is each pack of
    :func:`plan_packs` (every job that can pack) through :class:`PackedStep`, in each of ``impls``.
    Rounds interleave the ways, so a noisy neighbour slows all of them alike.
    ``packed_speedup``: the default way's (:func:`pack_impl`) windows/s over one job at a time's.

    Raises:
        UnknownLossError: an unknown name, a malformed sum or a bad loss option.
    """
    from types import SimpleNamespace

    from earshot.benchmark.train.pack import PACK_IMPLS, PackedStep, _Member, pack_impl, plan_packs
    from earshot.benchmark.train.runner import job_grid

    torch_device = resolve_device(device)
    names = list(losses or config.losses)
    _check_losses(config, names)
    grid_config = config.model_copy(update={"losses": names, "seeds": seeds or config.seeds})
    jobs = job_grid(grid_config)
    impls = tuple(impls or PACK_IMPLS)
    steppers = {}
    for job, loss, seed in jobs:
        seed_everything(seed)
        steppers[job] = _Stepper(config, loss, torch_device)
    batch = steppers[jobs[0][0]].batch

    def packed_step(impl: str, pack: list) -> PackedStep:
        members = []
        for job, loss, seed in pack:
            stepper = steppers[job]
            members.append(_Member(SimpleNamespace(
                model=stepper.model, loss_fn=stepper.train_step.loss_fn, optimizer=stepper.train_step.optimizer,
                sampler=_FixedBatch(batch), device=torch_device, cuda=torch_device.type == "cuda")))
        return PackedStep(members, config, torch_device, impl)

    packs = plan_packs(grid_config, jobs, size=len(jobs))
    ways: dict[str, Callable[[], None]] = {"one_at_a_time": lambda: [s.step() for s in steppers.values()]}
    for impl in impls:
        built = [packed_step(impl, pack) for pack in packs]
        ways[f"packed_{impl}"] = lambda built=built: [step(lambda k, loss: True) for step in built]
    for name, way in ways.items():
        for _ in range(warmup):
            way()
        log(f"warmed up {name}")
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            _sync(torch_device)
            start = time.perf_counter()
            for _ in range(steps):
                way()
            _sync(torch_device)
            times[name].append((time.perf_counter() - start) / steps)
    windows = len(jobs) * config.train.batch
    rates = {name: windows / statistics.median(t) for name, t in times.items()}
    default = pack_impl(torch_device)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": config.preset, "device": str(torch_device),
        "device_name": (torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": config.train.batch,
        "losses": names, "seeds": grid_config.seeds, "jobs": len(jobs), "packs": [len(p) for p in packs],
        "steps": steps, "rounds": rounds, "windows_per_s": rates, "pack_impl": default,
    }
    for impl in impls:
        result[f"packed_speedup_{impl}"] = rates[f"packed_{impl}"] / rates["one_at_a_time"]
    if default in impls:
        result["packed_speedup"] = result[f"packed_speedup_{default}"]
    flops = training_flops_per_window(steppers[jobs[0][0]].model) if config.model.name == "gated-conv" else None
    if torch_device.type == "cuda" and config.train.bf16 and flops and default in impls:
        peak = next((p for n, p in BF16_PEAK_TFLOPS if n in result["device_name"]), None)
        if peak:
            result["packed_fraction_of_bf16_peak"] = flops * rates[f"packed_{default}"] / 1e12 / peak
    return result
