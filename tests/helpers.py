"""Audio the tests write themselves, and what the session's shared run and corpus need."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 11025
#: The session's corpus (tests/conftest.py): the smallest build that still draws on every kind of source.
CORPUS_MINUTES = 1.5
#: The example plugin package users copy (examples/earshot-example-plugin) and the one-file loss.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def tone_mix(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A few harmonics with slow amplitude modulation and a little noise: never silent."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(100, 300)
    x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 8))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 4) * t)
    x += 0.02 * rng.standard_normal(t.size)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def write_folder(root: Path, layout: dict[str, list[float]], rate: int = RATE) -> Path:
    """``{"speech": [3.0, 2.5], ...}``: one wav per duration in each category folder."""
    seed = 0
    for category, durations in layout.items():
        (root / category).mkdir(parents=True, exist_ok=True)
        for i, seconds in enumerate(durations):
            sf.write(root / category / f"{category} clip {i}.wav", tone_mix(seconds, rate, seed), rate,
                     subtype="PCM_16")
            seed += 1
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of everything under ``root``, by relative path."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def assert_unchanged(root: Path, before: dict[str, tuple[int, int]], what: str) -> None:
    """Raises AssertionError naming what was added, removed or rewritten under ``root`` since ``before``."""
    after = snapshot(root)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"a test changed {what}: {changed[:10]}"


def copy_trained(run_dir: Path, dest: Path) -> Path:
    """Copies what training wrote (config, environment, record, jobs) and nothing of an evaluation
    into ``dest``, to evaluate afresh; returns ``dest``."""
    dest.mkdir(parents=True)
    for name in ("config.yaml", "environment.json", "run.json"):
        shutil.copy2(run_dir / name, dest / name)
    shutil.copytree(run_dir / "jobs", dest / "jobs")
    return dest


def put_on_path(monkeypatch, root: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]) -> Path:
    """Make ``root`` importable with a distribution ``name`` that declares ``entry_points`` ({group: {name:
    value}}), as installing it would, for this test only. Returns ``root``."""
    from earshot.losses import REGISTRY
    from earshot.models import MODELS

    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items()) for group, points in
        entry_points.items()))
    (info / "top_level.txt").write_text("".join(f"{p.name}\n" for p in root.iterdir() if (p / "__init__.py").is_file()))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    for registry in (REGISTRY, MODELS):
        registry.refresh()
        # plugins loaded in this test, and run copies used, are forgotten after it
        monkeypatch.setattr(registry, "_loaded", {})
        monkeypatch.setattr(registry, "_overrides", {})
    return root
