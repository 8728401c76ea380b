"""The fixtures every test shares (tests/conftest.py): built once, never changed by a test."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tests.helpers import assert_unchanged, snapshot


def test_assert_unchanged_names_what_was_added_removed_or_rewritten(tmp_path):
    (tmp_path / "kept.txt").write_text("a")
    (tmp_path / "rewritten.txt").write_text("a")
    (tmp_path / "removed.txt").write_text("a")
    before = snapshot(tmp_path)
    assert_unchanged(tmp_path, before, "nothing")
    (tmp_path / "rewritten.txt").write_text("ab")
    (tmp_path / "removed.txt").unlink()
    (tmp_path / "added").mkdir()
    with pytest.raises(AssertionError) as caught:
        assert_unchanged(tmp_path, before, "the folder")
    assert str(caught.value) == "a test changed the folder: ['added', 'removed.txt', 'rewritten.txt']"


def test_the_tiny_run_is_trained_and_evaluated(tiny_run):
    record = json.loads((tiny_run / "run.json").read_text())
    assert sorted(record["jobs"]) == ["bark-seed0", "bark-seed1", "mse-seed0", "mse-seed1"]
    assert all(job["status"] == "done" for job in record["jobs"].values())
    assert (tiny_run / "metrics.parquet").is_file()
    # every job's reconstructions, and the linear baseline's every run is measured against
    assert sorted(p.name for p in (tiny_run / "recon").iterdir()) == sorted([*record["jobs"], "pca-16"])


def test_a_copy_of_the_tiny_run_is_the_tests_own(tiny_run, tiny_run_copy):
    before = snapshot(tiny_run)
    assert tiny_run_copy != tiny_run and tiny_run_copy.name == tiny_run.name
    assert sorted(snapshot(tiny_run_copy)) == sorted(before)
    (tiny_run_copy / "run.json").write_text("{}")
    (tiny_run_copy / "report").mkdir()
    assert_unchanged(tiny_run, before, "the session's tiny run")


def test_torch_runs_on_the_threads_the_tests_set():
    # Set before torch was first imported, so subprocesses and this process agree (1 unless given).
    assert torch.get_num_threads() == int(os.environ["OMP_NUM_THREADS"])
