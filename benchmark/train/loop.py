"""Training one job (one loss, one seed), resumable from its last checkpoint.

Read top to bottom: budget (a minutes budget becomes one step count for every job of a
run, from a timed calibration: :func:`calibrate`) → checkpoint/resume → step (:class:`TrainStep`: sample,
forward, loss, backward, clip, Adam) → log → checkpoint → stop check.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from earshot.benchmark.config import RunConfig, TrainConfig, parse_budget
from earshot.benchmark.data.windows import WindowSampler, steps_per_epoch
from earshot.losses import build_loss
from earshot.models import build_model, model_from_args
from earshot.results.rundir import JobDir


@dataclass
class JobOutcome:
    job: str
    status: str  # "done", "failed" or "skipped" (already done)
    steps: int
    seconds: float
    message: str = ""


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def budget_minutes(config: RunConfig) -> float | None:
    """The budget in minutes per job, or None for a budget in steps or epochs."""
    unit, value = parse_budget(config.train.budget)
    return value if unit == "minutes" else None


def budget_steps(config: RunConfig, calibrated: int | None = None) -> int:
    """The steps every job of the run trains: the budget's steps or epochs, or for a minutes
    budget the ``calibrated`` count (:func:`calibrate`).

    Raises:
        ValueError: a minutes budget without a calibrated count.
    """
    unit, value = parse_budget(config.train.budget)
    if unit == "steps":
        return int(value)
    if unit == "epochs":
        return math.ceil(value * steps_per_epoch(config.data.windows_per_epoch, config.train.batch))
    if calibrated is None:
        raise ValueError(f"budget {config.train.budget!r} is in minutes: pass the calibrated step count")
    return calibrated


# A calibration times this many steps of each loss after this many untimed ones
# (the first steps allocate, and on CUDA pick kernels).
CALIBRATION_WARMUP = 2
CALIBRATION_STEPS = 5


def _configure_device(train_cfg: TrainConfig, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = train_cfg.tf32
        torch.backends.cudnn.allow_tf32 = train_cfg.tf32
        torch.backends.cudnn.benchmark = True


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(config: RunConfig, loss_name: str, train_files, device: torch.device,
                     warmup: int = CALIBRATION_WARMUP, steps: int = CALIBRATION_STEPS) -> float:
    """Seconds one :class:`TrainStep` of ``loss_name`` takes, set up as :func:`train_job` sets it up,
    on windows of ``train_files``: the median of ``steps`` timed steps after ``warmup`` untimed
    ones (a median, so a moment of contention on a shared machine does not set the budget)."""
    _configure_device(config.train, device)
    seed_everything(0)
    data_cfg = config.data
    loss_fn = build_loss(loss_name, sample_rate=data_cfg.sample_rate, options=config.loss_options).to(device)
    model = build_model(config.model, data_cfg.window, loss_fn.head_channels, config.model_options,
                        data_cfg.sample_rate).to(device)
    train_step = TrainStep(model, loss_fn, build_optimizer(model, config.train, device), config.train, device)
    sampler = WindowSampler(train_files, data_cfg.window, device, normalize=data_cfg.normalize_windows,
                            min_rms=data_cfg.min_window_rms, seed=0)
    model.train()
    for _ in range(warmup):
        train_step(sampler.sample)
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        train_step(sampler.sample)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def calibrate(config: RunConfig, losses: list[str], train_files, device: torch.device,
              log: Callable[[str], None] = print) -> dict:
    """One step count for every job of a minutes budget: as many steps as the slowest loss of
    ``losses`` trains in the budget, so every job trains the same steps and none runs past it.

    Returns:
        ``run.json``'s ``calibration``: budget_minutes, seconds_per_step per loss, slowest,
        steps, device, seconds (the calibration's own wall time).

    Raises:
        ValueError: the budget is not in minutes.
    """
    minutes = budget_minutes(config)
    if minutes is None:
        raise ValueError(f"budget {config.train.budget!r} is not in minutes: nothing to calibrate")
    started = time.perf_counter()
    per_step = {loss: seconds_per_step(config, loss, train_files, device) for loss in dict.fromkeys(losses)}
    slowest = max(per_step, key=per_step.get)
    steps = max(1, math.floor(minutes * 60 / per_step[slowest] + 1e-9))  # 0.6 s / 0.05 s is 12, not 11.999…
    log(f"budget {config.train.budget} per job: every job trains {steps} steps, the slowest loss's "
        f"({slowest}, {per_step[slowest]:.3g} s/step) in {minutes:g} min")
    return {"budget_minutes": minutes, "seconds_per_step": per_step, "slowest": slowest, "steps": steps,
            "device": str(device), "seconds": time.perf_counter() - started}


def load_trained(job_dir: Path, device: torch.device | str = "cpu"):
    """(model, loss, checkpoint state) of a job, model and loss in eval mode."""
    state = torch.load(JobDir(job_dir).checkpoint, map_location=device, weights_only=False)
    model = model_from_args(state["model_args"]).to(device)
    model.load_state_dict(state["model"])
    loss = build_loss(state["loss_name"], sample_rate=state["sample_rate"], options=state["config"].get("loss_options")).to(device)
    loss.load_state_dict(state["loss"])
    return model.eval(), loss.eval(), state


def build_optimizer(model: torch.nn.Module, train_cfg: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """The trainer's Adam: fused (one kernel for all parameters) on CUDA; torch's default on the CPU."""
    return torch.optim.Adam(model.parameters(), lr=train_cfg.lr, betas=tuple(train_cfg.betas),
                            fused=True if device.type == "cuda" else None)


def step_function(model: torch.nn.Module, train_cfg: TrainConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model in ``train.conv_impl``, through ``torch.compile`` in ``train.compile_mode`` when ``train.compile`` is on."""
    model.set_conv_impl(train_cfg.conv_impl)  # before compiling: the graph is traced in it
    return torch.compile(model, mode=train_cfg.compile_mode) if train_cfg.compile else model


class TrainStep:
    """One training step: the one ``train_job`` runs and ``earshot bench`` times.

    sample → forward (:func:`step_function`, under bf16 autocast on CUDA when
    ``train.bf16``) → loss → zero_grad → backward → gradient clip (``train.grad_clip``)
    → the loss's extra step (a discriminator's update) → the optimiser's step.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 train_cfg: TrainConfig, device: torch.device) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.batch, self.grad_clip = train_cfg.batch, train_cfg.grad_clip
        self.forward = step_function(model, train_cfg)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and train_cfg.bf16)

    def __call__(self, sample: Callable[[int], torch.Tensor],
                 before_update: Callable[[torch.Tensor], bool] | None = None) -> tuple[torch.Tensor, dict] | None:
        """One step on ``sample(train.batch)``.

        ``before_update`` receives the loss after backward and the loss's extra step;
        when it returns False the optimiser leaves the parameters as they are.

        Returns:
            (the loss, the extra step's values to log), or None when ``before_update`` refused the update.
        """
        batch = sample(self.batch)
        with self.autocast:
            head = self.forward(batch)
        loss = self.loss_fn(head.float(), batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        extra = self.loss_fn.extra_step(head.detach().float(), batch)
        if before_update is not None and not before_update(loss):
            return None
        self.optimizer.step()
        return loss, extra


def train_job(job_dir: Path, config: RunConfig, loss_name: str, seed: int, train_files,
              device: torch.device, progress: Callable[[dict], None] | None = None,
              on_step: Callable[[int], None] | None = None, steps: int | None = None) -> JobOutcome:
    """Train one job into ``job_dir``; resume from its checkpoint; never train a finished job twice.

    ``steps``: the run's calibrated step count (:func:`calibrate`), needed for a minutes
    budget; a steps or epochs budget gives the count itself (:func:`budget_steps`).
    ``progress`` receives a dict (step, total, loss, windows_per_s) at each log step;
    ``on_step`` is called after every completed step (tests use it to kill the process).
    """
    job_dir = JobDir(job_dir)
    job = job_dir.name
    if job_dir.is_done:
        done = job_dir.read_done()
        return JobOutcome(job, "skipped", done["steps"], done["seconds"], "already trained")
    job_dir.create()
    job_dir.clear_failed()
    train_cfg, data_cfg = config.train, config.data
    cuda = device.type == "cuda"
    _configure_device(train_cfg, device)
    seed_everything(seed)

    loss_fn = build_loss(loss_name, sample_rate=data_cfg.sample_rate, options=config.loss_options).to(device)
    model = build_model(config.model, data_cfg.window, loss_fn.head_channels, config.model_options,
                        data_cfg.sample_rate).to(device)
    optimizer = build_optimizer(model, train_cfg, device)
    sampler = WindowSampler(train_files, data_cfg.window, device, normalize=data_cfg.normalize_windows,
                            min_rms=data_cfg.min_window_rms, seed=seed)
    max_steps = budget_steps(config, steps)
    per_epoch = steps_per_epoch(data_cfg.windows_per_epoch, train_cfg.batch)

    step, elapsed, log_rows = 0, 0.0, []
    checkpoint = job_dir.checkpoint
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loss_fn.load_state_dict(state["loss"])
        sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        if cuda and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        step, elapsed = state["step"], state["elapsed"]
        old = job_dir.read_log()
        if old is not None:
            log_rows = old[old["step"] <= step].to_dict("records")

    def save(step: int) -> None:
        # The log first, then the checkpoint: a kill between the two leaves log rows past
        # the checkpoint's step, which resume drops.
        job_dir.write_log(pd.DataFrame(log_rows) if log_rows else pd.DataFrame(columns=LOG_COLUMNS))
        snapshot = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "loss": loss_fn.state_dict(),
            "sampler": sampler.state_dict(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if cuda else None,
            "step": step, "elapsed": elapsed, "model_args": model.init_args, "loss_name": loss_name,
            "sample_rate": data_cfg.sample_rate, "seed": seed, "config": config.model_dump(mode="json"),
        }
        with job_dir.checkpoint_path() as tmp:
            torch.save(snapshot, tmp)

    train_step = TrainStep(model, loss_fn, optimizer, train_cfg, device)
    model.train()
    last_log_time, last_log_step = time.perf_counter(), step
    start_time, start_elapsed = time.perf_counter(), elapsed

    def finished() -> bool:
        return step >= max_steps

    at_log = at_save = False
    value = math.nan

    def count_and_check(loss: torch.Tensor) -> bool:
        # Before the optimiser's update: count the step and, at a log or checkpoint step
        # only (reading the loss syncs with the device), refuse a non-finite loss.
        nonlocal step, elapsed, at_log, at_save, value
        step += 1
        elapsed = start_elapsed + time.perf_counter() - start_time
        at_log = step % train_cfg.log_every == 0 or finished()
        at_save = step % train_cfg.checkpoint_every == 0 or step % per_epoch == 0
        if not (at_log or at_save):
            return True
        value = loss.item()
        return math.isfinite(value)

    while not finished():
        stepped = train_step(sampler.sample, before_update=count_and_check)
        if stepped is None:
            message = f"loss is {value} at step {step}; kept the checkpoint of step {_last_checkpoint_step(checkpoint)}"
            job_dir.write_failed({"message": message, "step": step})
            return JobOutcome(job, "failed", step, elapsed, message)
        _, extra = stepped
        if at_log:
            now = time.perf_counter()
            rate = (step - last_log_step) * train_cfg.batch / max(now - last_log_time, 1e-9)
            last_log_time, last_log_step = now, step
            log_rows.append({"step": step, "epoch": (step - 1) // per_epoch + 1, "loss": value,
                             "lr": optimizer.param_groups[0]["lr"], "windows_per_s": rate,
                             "wall_s": elapsed, **{f"extra_{k}": v for k, v in extra.items()}})
            if progress:
                progress({"job": job, "step": step, "total": max_steps, "loss": value, "windows_per_s": rate,
                          "elapsed": elapsed})
        if at_save:
            save(step)
        if on_step:
            on_step(step)

    save(step)
    job_dir.write_done({"steps": step, "seconds": elapsed, "silent_windows_excluded": sampler.silent_windows,
                        "windows_total": sampler.total_windows})
    return JobOutcome(job, "done", step, elapsed)


LOG_COLUMNS = ["step", "epoch", "loss", "lr", "windows_per_s", "wall_s"]


def _last_checkpoint_step(path: Path) -> int:
    if not path.exists():
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=False)["step"])
