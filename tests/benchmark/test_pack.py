"""Packed training: K jobs side by side end where each alone ends, resume either way, fail alone."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from tests.helpers import write_folder

import json
import subprocess
import sys
from pathlib import Path

from torch.utils._python_dispatch import TorchDispatchMode
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.benchmark.config import load_config
from earshot.benchmark.data.audio import load_folder
from earshot.benchmark.data.windows import split_by_file
from earshot.benchmark.train.loop import train_job
from earshot.benchmark.train.pack import PackJob, max_relative_difference, parse_pack, plan_packs, train_pack
from earshot.benchmark.train.runner import job_grid
from earshot.losses import REGISTRY, Loss
from earshot.losses.adversarial import AdversarialLoss
from earshot.results.rundir import CHECKPOINT_FILE, DONE_FILE, FAILED_FILE, TRAIN_LOG_FILE

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def train_files(tmp_path_factory):
    album = write_folder(tmp_path_factory.mktemp("pack") / "album", {"speech": [2.0, 1.5], "music": [1.5, 1.2]})
    return str(album), split_by_file(load_folder(album, 11025, 2048, log=lambda m: None), 0.25, 0).train


def _config(album, steps=40, **overrides):
    return load_config("tiny", {"data.path": album, "train.budget": str(steps), "train.grad_clip": 0.5,
                                "train.checkpoint_every": 10, **overrides})


def _checkpoint(job_dir):
    return torch.load(job_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=False)


def _assert_same_training(packed_dir, alone_dir):
    packed, alone = _checkpoint(packed_dir), _checkpoint(alone_dir)
    assert packed["step"] == alone["step"]
    assert max_relative_difference(packed["model"], alone["model"]) < TOLERANCE
    # The loss's own networks (a discriminator), their Adam state and step count.
    assert packed["loss"].keys() == alone["loss"].keys()
    assert max_relative_difference(packed["loss"], alone["loss"]) < TOLERANCE
    if "_extra_state" in alone["loss"]:
        own, theirs = packed["loss"]["_extra_state"], alone["loss"]["_extra_state"]
        assert own["steps"] == theirs["steps"]
        for index, slot in theirs["optimizer"]["state"].items():
            assert float(own["optimizer"]["state"][index]["step"]) == float(slot["step"])
            assert max_relative_difference(own["optimizer"]["state"][index], slot) < 1e-4
    for index, slot in alone["optimizer"]["state"].items():
        assert float(packed["optimizer"]["state"][index]["step"]) == float(slot["step"])
        assert max_relative_difference(packed["optimizer"]["state"][index], slot) < 1e-4
    assert packed["optimizer"]["param_groups"] == alone["optimizer"]["param_groups"]
    assert torch.equal(packed["sampler"]["generator"], alone["sampler"]["generator"])
    assert torch.equal(packed["torch_rng"], alone["torch_rng"])
    packed_log = pd.read_parquet(packed_dir / TRAIN_LOG_FILE)
    alone_log = pd.read_parquet(alone_dir / TRAIN_LOG_FILE)
    assert list(packed_log.columns) == list(alone_log.columns)
    assert list(packed_log["step"]) == list(alone_log["step"])
    assert packed_log["loss"].tolist() == pytest.approx(alone_log["loss"].tolist(), rel=1e-4)


# A small discriminator (two scales, 32 channels at most) that starts after 4 steps, so the
# adversarial case covers the warm-up and the discriminators' own Adam in few seconds.
SMALL_ADVERSARIAL = {"loss_options": {"adversarial": {"scales": 2, "max_channels": 32, "warmup_steps": 4}}}


@pytest.mark.parametrize("losses, packs, steps, overrides", [
    (["mse", "bark", "mse"], 1, 40, {}),
    (["mulaw-ce", "dmol", "mulaw-ce"], 2, 40, {}),  # two heads: 256 logits, dmol's mixture
    (["adversarial", "adversarial", "mse+adversarial"], 1, 12, SMALL_ADVERSARIAL),
], ids=["waveform", "categorical", "adversarial"])
def test_a_pack_ends_where_each_job_alone_ends(train_files, tmp_path, losses, packs, steps, overrides):
    album, files = train_files
    config = _config(album, steps=steps, **overrides)
    jobs = [PackJob(tmp_path / "packed" / f"{loss}-{seed}", loss, seed) for seed, loss in enumerate(losses)]
    pack_steps = []
    outcomes = train_pack(jobs, config, files, CPU, on_step=pack_steps.append)
    assert [o.status for o in outcomes] == ["done"] * len(jobs)
    assert sorted(pack_steps) == sorted(list(range(1, steps + 1)) * packs)  # a step of a pack serves all its jobs
    for job in jobs:
        alone = tmp_path / "alone" / job.job_dir.name
        assert train_job(alone, config, job.loss, job.seed, files, CPU).status == "done"
        _assert_same_training(job.job_dir, alone)
        assert (job.job_dir / DONE_FILE).exists()


def test_the_vmapped_pack_trains_as_each_job_alone_within_float32_noise(train_files, tmp_path):
    # vmap's grouped-convolution backward sums in another order than one job's convolution
    # (~1e-7 of a gradient); Adam's sign-like first updates amplify any such difference over
    # steps, so the batched way is held to 1e-5 over its first steps.
    album, files = train_files
    config = _config(album, steps=4)
    jobs = [PackJob(tmp_path / "packed" / f"{loss}-{seed}", loss, seed) for seed, loss in enumerate(["mse", "mulaw-ce"])]
    assert [o.status for o in train_pack(jobs, config, files, CPU, impl="vmap")] == ["done", "done"]
    for job in jobs:
        alone = tmp_path / "alone" / job.job_dir.name
        train_job(alone, config, job.loss, job.seed, files, CPU)
        _assert_same_training(job.job_dir, alone)


class _Convolutions(TorchDispatchMode):
    """Every forward convolution torch runs: its ``groups``."""

    def __init__(self):
        super().__init__()
        self.groups = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution.default:
            self.groups.append(args[8])
        return func(*args, **(kwargs or {}))


def test_the_vmapped_pack_is_the_grouped_convolution_way_one_call_per_layer_for_all_jobs(train_files, tmp_path):
    # The two ways of stacking weights, grouped convolutions and vmap, are one: vmap's
    # batching rule runs each layer's K convolutions as one convolution of K times the groups.
    album, files = train_files
    config, k = _config(album, steps=1), 3
    seen = {}
    for impl in ("loop", "vmap"):
        jobs = [PackJob(tmp_path / impl / f"mse-{seed}", "mse", seed) for seed in range(k)]
        with _Convolutions() as spy:
            assert [o.status for o in train_pack(jobs, config, files, CPU, impl=impl)] == ["done"] * k
        seen[impl] = spy.groups
    assert seen["loop"] and len(seen["loop"]) == k * len(seen["vmap"])
    assert sorted(seen["vmap"]) == sorted(k * g for g in seen["loop"][:len(seen["vmap"])])


def test_the_vmapped_pack_trains_adversarial_jobs_as_each_alone_within_float32_noise(train_files, tmp_path):
    # The way CUDA packs: the generators vmapped, each job's discriminators its own. Held over two
    # steps, both adversarial (the mel term alone already differs by ~5e-5 after a step under vmap:
    # its log spectra amplify the summation order's noise before Adam's first, sign-like update).
    album, files = train_files
    config = _config(album, steps=2, loss_options={"adversarial": {"scales": 2, "max_channels": 32, "recon": "mse"}})
    jobs = [PackJob(tmp_path / "packed" / f"adversarial-{seed}", "adversarial", seed) for seed in range(2)]
    assert [o.status for o in train_pack(jobs, config, files, CPU, impl="vmap")] == ["done", "done"]
    for job in jobs:
        alone = tmp_path / "alone" / job.job_dir.name
        train_job(alone, config, job.loss, job.seed, files, CPU)
        _assert_same_training(job.job_dir, alone)


def test_a_packed_run_resumes_unpacked_and_an_unpacked_one_resumes_packed(train_files, tmp_path):
    album, files = train_files
    config = _config(album)
    half = _config(album, steps=20)
    jobs = [PackJob(tmp_path / "mixed" / f"mse-{seed}", "mse", seed) for seed in range(3)]
    # The first 20 steps packed; then one job on alone, the other two packed again.
    train_pack(jobs, half, files, CPU)
    assert all(_checkpoint(job.job_dir)["step"] == 20 for job in jobs)
    for job in jobs:
        (job.job_dir / DONE_FILE).unlink()
    assert train_job(jobs[0].job_dir, config, "mse", 0, files, CPU).steps == 40
    assert [o.status for o in train_pack(jobs, config, files, CPU)] == ["skipped", "done", "done"]
    for job in jobs:
        alone = tmp_path / "alone" / job.job_dir.name
        train_job(alone, config, "mse", job.seed, files, CPU)
        _assert_same_training(job.job_dir, alone)
        assert list(pd.read_parquet(job.job_dir / TRAIN_LOG_FILE)["step"]) == list(range(1, 41))


KILLER = """
import json, os, signal, sys
from pathlib import Path
import torch
from earshot.benchmark.config import load_config
from earshot.benchmark.data.audio import load_folder
from earshot.benchmark.data.windows import split_by_file
from earshot.benchmark.train.pack import PackJob, train_pack

album, root, loss, options = sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
config = load_config("tiny", {"data.path": album, "train.budget": "40", "train.grad_clip": 0.5,
                              "train.checkpoint_every": 10, "loss_options": options})
files = split_by_file(load_folder(Path(album), 11025, 2048, log=lambda m: None), 0.25, 0).train
def die(step):
    if step == 19:
        os.kill(os.getpid(), signal.SIGKILL)
train_pack([PackJob(root / f"{loss}-{seed}", loss, seed) for seed in range(2)], config, files,
           torch.device("cpu"), on_step=die)
"""


@pytest.mark.parametrize("loss, options", [("bark", {}), ("adversarial", SMALL_ADVERSARIAL["loss_options"])],
                         ids=["bark", "adversarial"])
def test_a_pack_killed_with_sigkill_resumes_each_job_from_its_checkpoint(train_files, tmp_path, loss, options):
    album, files = train_files
    config = _config(album, loss_options=options)
    jobs = [PackJob(tmp_path / "killed" / f"{loss}-{seed}", loss, seed) for seed in range(2)]
    proc = subprocess.run([sys.executable, "-c", KILLER, album, str(tmp_path / "killed"), loss, json.dumps(options)],
                          cwd=ROOT, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert [_checkpoint(job.job_dir)["step"] for job in jobs] == [16, 16]  # the epoch of 16 steps
    assert not any((job.job_dir / DONE_FILE).exists() for job in jobs)
    assert [o.steps for o in train_pack(jobs, config, files, CPU)] == [40, 40]
    for job in jobs:
        alone = tmp_path / "alone" / job.job_dir.name
        train_job(alone, config, loss, job.seed, files, CPU)
        _assert_same_training(job.job_dir, alone)
        assert list(pd.read_parquet(job.job_dir / TRAIN_LOG_FILE)["step"]) == list(range(1, 41))


class _NaNAtStep12(Loss):
    name = "test-pack-nan-at-12"
    description = "MSE that turns NaN at its twelfth call (tests only)"

    def __init__(self, sample_rate: int) -> None:
        super().__init__(sample_rate)
        self.calls = 0

    def forward(self, head, target):
        self.calls += 1
        loss = torch.mean((head[:, 0] - target) ** 2)
        return loss * float("nan") if self.calls >= 12 else loss


@pytest.fixture
def nan_loss():
    REGISTRY[_NaNAtStep12.name] = _NaNAtStep12
    yield _NaNAtStep12.name
    del REGISTRY[_NaNAtStep12.name]


def test_a_job_whose_loss_turns_non_finite_leaves_the_pack_and_the_others_carry_on(train_files, tmp_path, nan_loss):
    album, files = train_files
    config = _config(album, **{"train.log_every": 1})
    jobs = [PackJob(tmp_path / "p" / "mse-0", "mse", 0), PackJob(tmp_path / "p" / "nan-1", nan_loss, 1),
            PackJob(tmp_path / "p" / "mse-2", "mse", 2)]
    outcomes = train_pack(jobs, config, files, CPU)
    assert [o.status for o in outcomes] == ["done", "failed", "done"]
    assert "step 12" in outcomes[1].message and "checkpoint of step 10" in outcomes[1].message
    assert (jobs[1].job_dir / FAILED_FILE).exists() and _checkpoint(jobs[1].job_dir)["step"] == 10
    for job in (jobs[0], jobs[2]):
        alone = tmp_path / "alone" / job.job_dir.name
        train_job(alone, config, "mse", job.seed, files, CPU)
        _assert_same_training(job.job_dir, alone)


def test_adversarial_jobs_resume_their_discriminators_packed_or_alone(train_files, tmp_path):
    album, files = train_files
    config, half = _config(album, steps=12, **SMALL_ADVERSARIAL), _config(album, steps=6, **SMALL_ADVERSARIAL)
    jobs = [PackJob(tmp_path / "mixed" / f"adversarial-{seed}", "adversarial", seed) for seed in range(3)]
    # Six steps packed (past the warm-up: the discriminators have trained); then one job on alone, two packed.
    train_pack(jobs, half, files, CPU)
    assert all(_checkpoint(job.job_dir)["loss"]["_extra_state"]["steps"] == 6 for job in jobs)
    for job in jobs:
        (job.job_dir / DONE_FILE).unlink()
    assert train_job(jobs[0].job_dir, config, "adversarial", 0, files, CPU).steps == 12
    assert [o.status for o in train_pack(jobs, config, files, CPU)] == ["skipped", "done", "done"]
    for job in jobs:
        alone = tmp_path / "alone" / job.job_dir.name
        train_job(alone, config, "adversarial", job.seed, files, CPU)
        _assert_same_training(job.job_dir, alone)


class _OneScaleAdversarial(AdversarialLoss):
    name = "test-pack-one-scale-adversarial"
    description = "the adversarial loss with one scale discriminator (tests only)"

    def __init__(self, sample_rate: int) -> None:
        super().__init__(sample_rate, scales=1)


@pytest.fixture
def one_scale_adversarial():
    REGISTRY[_OneScaleAdversarial.name] = _OneScaleAdversarial
    yield _OneScaleAdversarial.name
    del REGISTRY[_OneScaleAdversarial.name]


def test_the_grid_packs_by_decoder_head_and_by_the_shapes_of_the_losses_own_networks(train_files,
                                                                                    one_scale_adversarial):
    album, _ = train_files
    losses = ["mse", "mulaw-ce", "adversarial", "bark", one_scale_adversarial, "mse+adversarial"]
    config = load_config("tiny", {"data.path": album, "losses": losses, "seeds": 2})
    packs = plan_packs(config, job_grid(config), size=3)
    names = [[job for job, _, _ in pack] for pack in packs]
    one = one_scale_adversarial
    assert names == [["mse-seed0", "mse-seed1", "bark-seed0"], ["bark-seed1"],
                     ["mulaw-ce-seed0", "mulaw-ce-seed1"],
                     ["adversarial-seed0", "adversarial-seed1", "mse+adversarial-seed0"], ["mse+adversarial-seed1"],
                     [f"{one}-seed0", f"{one}-seed1"]]
    assert plan_packs(config, job_grid(config), size=1) == [[job] for job in job_grid(config)]


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("off", "off"), ("1", "off"), ("4", 4), (" OFF ", "off")])
def test_pack_values(value, expected):
    assert parse_pack(value) == expected


@pytest.mark.parametrize("value", ["0", "-2", "many", "2.5"])
def test_a_bad_pack_value_names_itself_and_the_choices(value):
    with pytest.raises(ValueError, match=rf"--pack '{value}': expected auto, off or a number"):
        parse_pack(value)


def test_earshot_run_packs_the_grid_into_the_same_job_folders_as_unpacked(train_files, tmp_path):
    album, _ = train_files
    runs, outputs = {}, {}
    for pack in ("2", "off"):
        result = CliRunner().invoke(app, ["run", "--preset", "tiny", "--data", album, "--losses", "mse", "--seeds", "2",
                                          "--budget", "12", "--out", str(tmp_path / pack), "--run-id", "r",
                                          "--pack", pack, "--no-eval", "--quiet"])
        assert result.exit_code == 0, result.output
        runs[pack], outputs[pack] = tmp_path / pack / "r", result.output
    assert "training 2 jobs packed: mse-seed0, mse-seed1" in outputs["2"]
    assert "packed" not in outputs["off"]
    record = json.loads((runs["2"] / "run.json").read_text())
    assert {job: entry["status"] for job, entry in record["jobs"].items()} == {"mse-seed0": "done", "mse-seed1": "done"}
    for job in ("mse-seed0", "mse-seed1"):
        packed_files = sorted(p.name for p in (runs["2"] / "jobs" / job).iterdir())
        assert packed_files == sorted(p.name for p in (runs["off"] / "jobs" / job).iterdir())
        _assert_same_training(runs["2"] / "jobs" / job, runs["off"] / "jobs" / job)


def test_bench_pack_prints_the_packed_speedup(tmp_path):
    out = tmp_path / "pack.json"
    small = ["--set", "loss_options.adversarial.scales=1", "--set", "loss_options.adversarial.max_channels=32"]
    result = CliRunner().invoke(app, ["bench", "--pack", "--preset", "tiny", "--device", "cpu", "--losses",
                                      "mse,bark,adversarial", "--seeds", "2", "--steps", "1", *small, "--json", str(out)])
    assert result.exit_code == 0, result.output
    found = json.loads(out.read_text())
    # mse and bark share one head; the adversarial jobs pack apart, by their discriminators.
    assert found["jobs"] == 6 and found["packs"] == [4, 2] and found["pack_impl"] == "loop"
    assert set(found["windows_per_s"]) == {"one_at_a_time", "packed_vmap", "packed_loop"}
    assert found["packed_speedup"] == found["packed_speedup_loop"] > 0
    assert "packed loop" in result.output and "one at a time" in result.output


@pytest.mark.ray
def test_the_ray_executor_trains_each_pack_in_one_task_into_the_job_folders_of_an_unpacked_run(
        train_files, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from earshot.benchmark.train.runner import run_grid

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    album, _ = train_files
    config = load_config("tiny", {"data.path": album, "losses": ["mse", "adversarial"], "seeds": 2,
                                  "train.budget": "12", **SMALL_ADVERSARIAL})
    # A Ray task runs torch on one thread: so does the unpacked run it is compared with, so both sum alike.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = run_grid(config, out=tmp_path / "local", device="cpu", pack="off", log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    lines = []
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        remote = run_grid(config, out=tmp_path / "ray", device="cpu", executor="ray", pack="2", log=lines.append)
    finally:
        ray.shutdown()
    assert "training 2 jobs packed in one Ray task: mse-seed0, mse-seed1" in lines
    assert "training 2 jobs packed in one Ray task: adversarial-seed0, adversarial-seed1" in lines
    record = json.loads((remote / "run.json").read_text())
    assert {job: entry["status"] for job, entry in record["jobs"].items()} == {
        "mse-seed0": "done", "mse-seed1": "done", "adversarial-seed0": "done", "adversarial-seed1": "done"}
    for job in record["jobs"]:
        packed_files = sorted(p.name for p in (remote / "jobs" / job).iterdir())
        assert packed_files == sorted(p.name for p in (local / "jobs" / job).iterdir())
        _assert_same_training(remote / "jobs" / job, local / "jobs" / job)
