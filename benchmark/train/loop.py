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


def build_optimizer(model: torch.nn.Module | list[torch.Tensor], train_cfg: TrainConfig,
                    device: torch.device) -> torch.optim.Adam:
    """The trainer's Adam over a model's parameters (or a list of tensors): fused (one kernel for all
    parameters) on CUDA; torch's default on the CPU."""
    params = model.parameters() if isinstance(model, torch.nn.Module) else model
    return torch.optim.Adam(params, lr=train_cfg.lr, betas=tuple(train_cfg.betas),
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


class JobState:
    """One job as :func:`train_job` sets it up: its seed, loss, model, optimiser and sampler, resumed
    from its checkpoint when it has one, and the bookkeeping of each step (count, non-finite check,
    log row, checkpoint) in the checkpoint format every trainer shares (``earshot.benchmark.train.pack``
    too, so a job trained packed resumes unpacked and back).
    """

    def __init__(self, job_dir: Path, config: RunConfig, loss_name: str, seed: int, train_files,
                 device: torch.device, steps: int | None = None) -> None:
        self.job_dir = JobDir(job_dir)
        self.job = self.job_dir.name
        self.config, self.loss_name, self.seed, self.device = config, loss_name, seed, device
        self.job_dir.create()
        self.job_dir.clear_failed()
        train_cfg, data_cfg = config.train, config.data
        self.cuda = device.type == "cuda"
        _configure_device(train_cfg, device)
        seed_everything(seed)
        self.loss_fn = build_loss(loss_name, sample_rate=data_cfg.sample_rate, options=config.loss_options).to(device)
        self.model = build_model(config.model, data_cfg.window, self.loss_fn.head_channels, config.model_options,
                                 data_cfg.sample_rate).to(device)
        self.optimizer = build_optimizer(self.model, train_cfg, device)
        self.sampler = WindowSampler(train_files, data_cfg.window, device, normalize=data_cfg.normalize_windows,
                                     min_rms=data_cfg.min_window_rms, seed=seed)
        self.max_steps = budget_steps(config, steps)
        self.per_epoch = steps_per_epoch(data_cfg.windows_per_epoch, train_cfg.batch)
        self.step, self.elapsed, self.log_rows = 0, 0.0, []
        checkpoint = self.job_dir.checkpoint
        if checkpoint.exists():
            state = torch.load(checkpoint, map_location=device, weights_only=False)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.loss_fn.load_state_dict(state["loss"])
            self.sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(state["torch_rng"])
            if self.cuda and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            self.step, self.elapsed = state["step"], state["elapsed"]
            old = self.job_dir.read_log()
            if old is not None:
                self.log_rows = old[old["step"] <= self.step].to_dict("records")
        self.at_log = self.at_save = False
        self.value = math.nan

    def start_clock(self) -> None:
        self.start_time, self.start_elapsed = time.perf_counter(), self.elapsed
        self.last_log_time, self.last_log_step = self.start_time, self.step

    def finished(self) -> bool:
        return self.step >= self.max_steps

    def count_and_check(self, loss: torch.Tensor) -> bool:
        """Count a step before the optimiser's update; at a log or checkpoint step only (reading
        the loss syncs with the device) refuse a non-finite loss."""
        self.step += 1
        self.elapsed = self.start_elapsed + time.perf_counter() - self.start_time
        train_cfg = self.config.train
        self.at_log = self.step % train_cfg.log_every == 0 or self.finished()
        self.at_save = self.step % train_cfg.checkpoint_every == 0 or self.step % self.per_epoch == 0
        if not (self.at_log or self.at_save):
            return True
        self.value = loss.item()
        return math.isfinite(self.value)

    def fail(self) -> JobOutcome:
        """Mark the job failed on its non-finite loss; its last checkpoint stays."""
        message = (f"loss is {self.value} at step {self.step}; kept the checkpoint of step "
                   f"{_last_checkpoint_step(self.job_dir.checkpoint)}")
        self.job_dir.write_failed({"message": message, "step": self.step})
        return JobOutcome(self.job, "failed", self.step, self.elapsed, message)

    def after_step(self, extra: dict, progress: Callable[[dict], None] | None, rngs: dict | None = None) -> None:
        """The log row at a log step, the checkpoint at a checkpoint step (``rngs``: as :meth:`save`'s)."""
        if self.at_log:
            batch = self.config.train.batch
            now = time.perf_counter()
            rate = (self.step - self.last_log_step) * batch / max(now - self.last_log_time, 1e-9)
            self.last_log_time, self.last_log_step = now, self.step
            self.log_rows.append({"step": self.step, "epoch": (self.step - 1) // self.per_epoch + 1,
                                  "loss": self.value, "lr": self.optimizer.param_groups[0]["lr"],
                                  "windows_per_s": rate, "wall_s": self.elapsed,
                                  **{f"extra_{k}": v for k, v in extra.items()}})
            if progress:
                progress({"job": self.job, "step": self.step, "total": self.max_steps, "loss": self.value,
                          "windows_per_s": rate, "elapsed": self.elapsed})
        if self.at_save:
            self.save(**(rngs or {}))

    def save(self, torch_rng: torch.Tensor | None = None, cuda_rng: torch.Tensor | None = None) -> None:
        """The log, then the checkpoint (a kill between the two leaves log rows past the
        checkpoint's step, which resume drops). ``torch_rng``/``cuda_rng``: the job's generator
        states when it is not the process's current one (a packed job)."""
        self.job_dir.write_log(pd.DataFrame(self.log_rows) if self.log_rows else pd.DataFrame(columns=LOG_COLUMNS))
        if cuda_rng is None and self.cuda:
            cuda_rng = torch.cuda.get_rng_state(self.device)
        snapshot = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "loss": self.loss_fn.state_dict(), "sampler": self.sampler.state_dict(),
            "torch_rng": torch.get_rng_state() if torch_rng is None else torch_rng,
            "cuda_rng": cuda_rng if self.cuda else None,
            "step": self.step, "elapsed": self.elapsed, "model_args": self.model.init_args,
            "loss_name": self.loss_name, "sample_rate": self.config.data.sample_rate, "seed": self.seed,
            "config": self.config.model_dump(mode="json"),
        }
        with self.job_dir.checkpoint_path() as tmp:
            torch.save(snapshot, tmp)

    def done(self) -> JobOutcome:
        self.job_dir.write_done({"steps": self.step, "seconds": self.elapsed,
                                 "silent_windows_excluded": self.sampler.silent_windows,
                                 "windows_total": self.sampler.total_windows})
        return JobOutcome(self.job, "done", self.step, self.elapsed)


def skipped(job_dir: Path) -> JobOutcome | None:
    """The outcome of a job already trained (never trained twice), else None."""
    job_dir = JobDir(job_dir)
    if not job_dir.is_done:
        return None
    done = job_dir.read_done()
    return JobOutcome(job_dir.name, "skipped", done["steps"], done["seconds"], "already trained")


def train_job(job_dir: Path, config: RunConfig, loss_name: str, seed: int, train_files,
              device: torch.device, progress: Callable[[dict], None] | None = None,
              on_step: Callable[[int], None] | None = None, steps: int | None = None) -> JobOutcome:
    """Train one job into ``job_dir``; resume from its checkpoint; never train a finished job twice.

    ``steps``: the run's calibrated step count (:func:`calibrate`), needed for a minutes
    budget; a steps or epochs budget gives the count itself (:func:`budget_steps`).
    ``progress`` receives a dict (step, total, loss, windows_per_s) at each log step;
    ``on_step`` is called after every completed step (tests use it to kill the process).
    """
    outcome = skipped(job_dir)
    if outcome is not None:
        return outcome
    state = JobState(job_dir, config, loss_name, seed, train_files, device, steps)
    train_step = TrainStep(state.model, state.loss_fn, state.optimizer, config.train, device)
    state.model.train()
    state.start_clock()
    while not state.finished():
        stepped = train_step(state.sampler.sample, before_update=state.count_and_check)
        if stepped is None:
            return state.fail()
        state.after_step(stepped[1], progress)
        if on_step:
            on_step(state.step)
    state.save()
    return state.done()


LOG_COLUMNS = ["step", "epoch", "loss", "lr", "windows_per_s", "wall_s"]


def _last_checkpoint_step(path: Path) -> int:
    if not path.exists():
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=False)["step"])
