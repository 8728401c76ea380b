"""Packed training: K jobs of one model shape and decoder head, trained side by side in one process.

Each job's parameters are one slice of stacked tensors; one vmapped forward and one backward
serve the whole pack. Everything else stays each job's own: its seed (the model's initial
weights, the generator its loss draws from), its data order (its own :class:`WindowSampler`),
its loss, its gradient clipping and its Adam state (Adam is element-wise, so one Adam over the
stacked parameters updates each slice as K separate ones would). A loss with networks of its own
(an adversarial loss's discriminators, their Adam and step count) is each job's own module, run
job by job with its own weights: its state reaches the job's checkpoint as it does unpacked. Each job is set up, resumed,
logged, checkpointed and marked done or failed through :class:`JobState`, exactly as
:func:`train_job` does it, so a job trained packed resumes unpacked and back.

A pack is K jobs that share the model's shape and head, the shapes of their loss's own networks,
and stand at the same step (the shared Adam keeps one step count). A job whose loss turns non-finite leaves the pack, failed with its
last checkpoint, and the others carry on.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.func import functional_call, vmap

from earshot.benchmark.config import RunConfig
from earshot.benchmark.train.loop import JobOutcome, JobState, build_optimizer, skipped, step_function
from earshot.losses import build_loss

PACK_CHOICES = "auto, off or a number of jobs (2 or more)"


# How a pack's forward and backward run: "vmap", one batched call per layer for the whole pack
# (grouped convolutions: fewer, larger kernels); "loop", each job's slice in turn with the very
# kernels it runs alone (bitwise the same gradients; one Adam step and one Python step for all).
# vmap's backward sums in another order, a difference of ~1e-7 of a gradient that Adam's first,
# sign-like updates amplify over steps as any change of kernel does.
PACK_IMPLS = ("vmap", "loop")


def pack_impl(device: torch.device) -> str:
    """The faster way here (docs/performance.md): vmap on CUDA, the loop on the CPU."""
    return "vmap" if device.type == "cuda" else "loop"


@dataclass(frozen=True)
class PackJob:
    job_dir: Path
    loss: str
    seed: int


def parse_pack(value: str | int | None) -> int | str:
    """``--pack``: ``"auto"``, ``"off"`` or a number K ≥ 2 (1 means off)."""
    text = "auto" if value is None else str(value).strip().lower()
    if text in ("auto", "off"):
        return text
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"--pack {value!r}: expected {PACK_CHOICES}") from None
    if number < 1:
        raise ValueError(f"--pack {value!r}: expected {PACK_CHOICES}")
    return "off" if number == 1 else number


def pack_size(pack: int | str, device: torch.device) -> int:
    """Jobs per pack: ``auto`` packs every job that can on CUDA and none on the CPU (where
    packing does not win: docs/performance.md), ``off`` none."""
    if pack == "off":
        return 1
    if pack == "auto":
        return 1 << 30 if device.type == "cuda" else 1
    return int(pack)


def pack_key(config: RunConfig, loss: str) -> tuple | None:
    """What jobs of one pack share, or None when a job of ``loss`` trains alone (a plugin model,
    not known to vmap): the loss's decoder head and the shapes of the networks the loss owns
    (an adversarial loss's discriminators), so jobs of one adversarial loss pack together and a
    loss whose networks differ packs apart."""
    if config.model.name != "gated-conv":
        return None
    built = build_loss(loss, sample_rate=config.data.sample_rate, options=config.loss_options)
    return built.head_kind, built.head_channels, loss_network_shapes(built)


def loss_network_shapes(loss_fn: torch.nn.Module) -> tuple:
    """The shapes of a loss's own parameters, in order (empty for a loss without networks)."""
    return tuple(tuple(p.shape) for p in loss_fn.parameters())


def plan_packs(config: RunConfig, jobs: list[tuple[str, str, int]], size: int) -> list[list[tuple[str, str, int]]]:
    """The grid's jobs in packs of at most ``size`` that share a decoder head; a job that cannot
    pack, and every job when ``size`` is 1, stands alone. Jobs keep the grid's order within a pack."""
    if size <= 1:
        return [[job] for job in jobs]
    groups: dict[tuple, list] = {}
    alone = []
    keys = {loss: pack_key(config, loss) for loss in dict.fromkeys(loss for _, loss, _ in jobs)}
    for job in jobs:
        key = keys[job[1]]
        if key is None:
            alone.append([job])
        else:
            groups.setdefault(key, []).append(job)
    packs = []
    for members in groups.values():
        packs += [members[i:i + size] for i in range(0, len(members), size)]
    return packs + alone


class _Member:
    """One job in a pack: its :class:`JobState` and its own generator states."""

    def __init__(self, state: JobState) -> None:
        self.state = state
        self.torch_rng = torch.get_rng_state()  # the job's, just after its set-up or resume
        self.cuda_rng = torch.cuda.get_rng_state(state.device) if state.cuda else None

    @contextlib.contextmanager
    def own_rng(self) -> Iterator[None]:
        """The process's generator as this job alone would find it (a loss that draws from it)."""
        outer = torch.get_rng_state()
        torch.set_rng_state(self.torch_rng)
        try:
            yield
        finally:
            self.torch_rng = torch.get_rng_state()
            torch.set_rng_state(outer)


class PackedStep:
    """One training step for a pack: :class:`TrainStep`'s, on K stacked models at once.

    sample (each job's own sampler) → vmapped forward (under bf16 autocast on CUDA when
    ``train.bf16``) → each job's loss → one backward → each job's gradient clip → each
    loss's extra step → one Adam step over the stacked parameters.
    """

    def __init__(self, members: list[_Member], config: RunConfig, device: torch.device,
                 impl: str | None = None) -> None:
        self.members, self.config, self.device = members, config, device
        self.impl = impl or pack_impl(device)
        if self.impl not in PACK_IMPLS:
            raise ValueError(f"pack impl must be one of {', '.join(PACK_IMPLS)}, not {self.impl!r}")
        train_cfg = config.train
        self.batch, self.grad_clip = train_cfg.batch, train_cfg.grad_clip
        self.template = members[0].state.model
        self.names = [name for name, _ in self.template.named_parameters()]
        self.params = {name: torch.stack([dict(m.state.model.named_parameters())[name].detach()
                                          for m in members]).requires_grad_(True) for name in self.names}
        self.optimizer = build_optimizer_for(list(self.params.values()), config, device)
        self._load_optimizer()
        model = step_function(self.template, train_cfg.model_copy(update={"compile": False}))
        if self.impl == "vmap":
            forward = vmap(lambda params, x: functional_call(model, params, (x,)))
        else:
            def forward(params, x):
                return torch.stack([functional_call(model, {name: p[k] for name, p in params.items()}, (x[k],))
                                    for k in range(x.shape[0])])
        self.forward = torch.compile(forward, mode=train_cfg.compile_mode) if train_cfg.compile else forward
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and train_cfg.bf16)

    def _load_optimizer(self) -> None:
        """Stack each job's Adam state (all at one step: a pack's jobs stand at the same step)."""
        states = [m.state.optimizer.state_dict() for m in self.members]
        if not states[0]["state"]:
            return
        packed = {}
        for index in states[0]["state"]:
            slots = [s["state"][index] for s in states]
            packed[index] = {key: (slots[0][key].clone() if key == "step"
                                   else torch.stack([slot[key] for slot in slots]))
                             for key in slots[0]}
        self.optimizer.load_state_dict({"state": packed, "param_groups": self.optimizer.state_dict()["param_groups"]})

    def unpack(self) -> None:
        """Write the pack's weights and Adam state back into each job's own model and optimiser."""
        packed = self.optimizer.state_dict()
        for k, member in enumerate(self.members):
            with torch.no_grad():
                for name, param in member.state.model.named_parameters():
                    param.copy_(self.params[name][k])
            if packed["state"]:
                own = member.state.optimizer.state_dict()
                own["state"] = {index: {key: (value.clone() if key == "step" else value[k].clone())
                                        for key, value in slot.items()}
                                for index, slot in packed["state"].items()}
                member.state.optimizer.load_state_dict(own)

    def drop(self, leaving: list[int]) -> None:
        """Take the jobs at ``leaving`` out of the pack, keeping the others' weights, gradients and Adam state."""
        keep = [k for k in range(len(self.members)) if k not in leaving]
        index = torch.tensor(keep, device=self.device)
        packed = self.optimizer.state_dict()
        grads = {name: None if p.grad is None else p.grad.index_select(0, index) for name, p in self.params.items()}
        self.params = {name: p.detach().index_select(0, index).requires_grad_(True) for name, p in self.params.items()}
        for name, p in self.params.items():
            p.grad = grads[name]
        self.members = [self.members[k] for k in keep]
        self.optimizer = build_optimizer_for(list(self.params.values()), self.config, self.device)
        if packed["state"]:
            self.optimizer.load_state_dict({
                "state": {i: {key: (value if key == "step" else value.index_select(0, index))
                              for key, value in slot.items()} for i, slot in packed["state"].items()},
                "param_groups": self.optimizer.state_dict()["param_groups"]})

    def _clip(self) -> None:
        # clip_grad_norm_ per job: each job's norm over its own slices.
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        if not grads:
            return
        # Slice by slice, so each norm reduces in clip_grad_norm_'s order.
        for k in range(grads[0].shape[0]):
            total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g[k], 2) for g in grads]), 2)
            coef = torch.clamp(self.grad_clip / (total + 1e-6), max=1.0)
            for g in grads:
                g[k].mul_(coef.to(g.dtype))

    def __call__(self, before_update: Callable[[int, torch.Tensor], bool]) -> list[tuple[torch.Tensor, dict] | None]:
        """One step for every job of the pack.

        ``before_update(k, loss)`` is asked for each job after backward and its loss's extra
        step; the jobs it refuses leave the pack before the update.

        Returns:
            per job (in the pack's order before the step): (the loss, the extra step's values), or None if refused.
        """
        members = self.members
        batches = [m.state.sampler.sample(self.batch) for m in members]
        with self.autocast:
            heads = self.forward(self.params, torch.stack(batches))
        losses = []
        for k, member in enumerate(members):
            with member.own_rng():
                losses.append(member.state.loss_fn(heads[k].float(), batches[k]))
        self.optimizer.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        if self.grad_clip:
            self._clip()
        extras = []
        for k, member in enumerate(members):
            with member.own_rng():
                extras.append(member.state.loss_fn.extra_step(heads[k].detach().float(), batches[k]))
        refused = [k for k, loss in enumerate(losses) if not before_update(k, loss)]
        if refused:
            self.drop(refused)
        if self.members:
            self.optimizer.step()
        return [None if k in refused else (losses[k], extras[k]) for k in range(len(members))]


def build_optimizer_for(params: list[torch.Tensor], config: RunConfig, device: torch.device) -> torch.optim.Adam:
    """The trainer's Adam (:func:`build_optimizer`) over stacked parameters."""
    return build_optimizer(params, config.train, device)


def train_pack(jobs: list[PackJob], config: RunConfig, train_files, device: torch.device,
               progress: Callable[[dict], None] | None = None, on_step: Callable[[int], None] | None = None,
               steps: int | None = None, impl: str | None = None) -> list[JobOutcome]:
    """Train ``jobs`` (one model shape and head) as packs; each job's outcome, in ``jobs``' order.

    Jobs already trained are skipped; the others are set up and resumed one by one as
    :func:`train_job` would, then packed by the step they stand at and their parameters' shapes.
    Arguments as :func:`train_job`'s; ``impl``: one of :data:`PACK_IMPLS` (default :func:`pack_impl`).
    """
    outcomes: dict[int, JobOutcome] = {}
    members: list[tuple[int, _Member]] = []
    for i, job in enumerate(jobs):
        outcome = skipped(job.job_dir)
        if outcome is not None:
            outcomes[i] = outcome
            continue
        members.append((i, _Member(JobState(job.job_dir, config, job.loss, job.seed, train_files, device, steps))))
    by_step: dict[tuple, list[tuple[int, _Member]]] = {}
    for i, member in members:  # one pack per step, model shapes (the decoder head) and the loss's own networks
        shapes = tuple(tuple(p.shape) for p in member.state.model.parameters())
        key = (member.state.step, shapes, loss_network_shapes(member.state.loss_fn))
        by_step.setdefault(key, []).append((i, member))
    for group in by_step.values():
        for i, outcome in zip([i for i, _ in group], _train_one_pack([m for _, m in group], config, device,
                                                                     progress, on_step, impl)):
            outcomes[i] = outcome
    return [outcomes[i] for i in range(len(jobs))]


def _train_one_pack(members: list[_Member], config: RunConfig, device: torch.device,
                    progress: Callable[[dict], None] | None, on_step: Callable[[int], None] | None,
                    impl: str | None) -> list[JobOutcome]:
    outcomes: dict[int, JobOutcome] = {}
    ids = {id(m): k for k, m in enumerate(members)}
    for member in members:
        member.state.model.train()
    step = PackedStep(members, config, device, impl)
    for member in members:
        member.state.start_clock()

    while step.members and not all(m.state.finished() for m in step.members):
        active = list(step.members)
        results = step(lambda k, loss: active[k].state.count_and_check(loss))
        if any(r is not None and (active[k].state.at_save) for k, r in enumerate(results)):
            step.unpack()
        for k, result in enumerate(results):
            member = active[k]
            if result is None:
                outcomes[ids[id(member)]] = member.state.fail()
                continue
            member.state.after_step(result[1], progress, rngs={"torch_rng": member.torch_rng,
                                                              "cuda_rng": member.cuda_rng})
        if on_step:
            on_step(active[0].state.step)
    step.unpack()
    for member in step.members:
        member.state.save(torch_rng=member.torch_rng, cuda_rng=member.cuda_rng)
        outcomes[ids[id(member)]] = member.state.done()
    return [outcomes[k] for k in range(len(members))]


def max_relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest ‖a − b‖ / ‖b‖ over the tensors of two state dicts (how far two trainings ended apart)."""
    worst = 0.0
    for name, value in b.items():
        if torch.is_tensor(value) and value.is_floating_point():
            denom = float(torch.linalg.vector_norm(value.float())) or 1.0
            worst = max(worst, float(torch.linalg.vector_norm(a[name].float() - value.float())) / denom)
    return worst if math.isfinite(worst) else math.inf
