"""Shared fixtures: audio folders, and per test session one tiny trained-and-evaluated run and one
built-in corpus, each built once and shared read-only."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import CORPUS_MINUTES, EXAMPLES, assert_unchanged, put_on_path, snapshot, write_folder

#: The session run's audio: every category the tiny preset evaluates, a few seconds each.
TINY_ALBUM = {"speech": [2.5, 2.5, 2.0, 2.0], "drums": [2.0, 2.0], "music": [2.5, 2.0]}


def pytest_configure(config) -> None:
    # One torch thread here and in every process the tests start (set before torch is imported):
    # on a busy 2-core machine torch's spinning threads made the tiny runs 5x slower, and a job
    # resumed in another process (the kill -9 test) must add up in the same order as this one.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def audio_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "album", {"speech": [3.0, 2.0, 2.5, 1.5], "drums": [2.0, 1.5],
                                             "music": [2.5, 2.0], "mix": [2.0, 1.8]})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The session's run: preset tiny (jobs mse-seed0, mse-seed1, bark-seed0, bark-seed1) trained
    and evaluated on the CPU on ``TINY_ALBUM``. Returns its directory; read it, never write it
    (take ``tiny_run_copy``): the session fails at teardown if it changed."""
    from earshot.benchmark.config import load_config
    from earshot.benchmark.evaluate.reconstruct import evaluate_run
    from earshot.benchmark.train.runner import run_grid

    root = tmp_path_factory.mktemp("tiny-run")
    album = write_folder(root / "album", TINY_ALBUM)
    run_dir = run_grid(load_config("tiny", {"data.path": str(album), "seeds": 2}), out=root / "runs", device="cpu",
                       log=lambda m: None)
    evaluate_run(run_dir, device="cpu", workers=1, log=lambda m: None)
    before = snapshot(root)
    yield run_dir
    assert_unchanged(root, before, "the session's tiny run or its audio (take tiny_run_copy to change a run)")


@pytest.fixture
def tiny_run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the session's run under ``tmp_path`` (same run id, same audio), for a test that changes it."""
    return Path(shutil.copytree(tiny_run, tmp_path / "runs" / tiny_run.name))


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory) -> Path:
    """The session's own cache folder for the corpus, never the user's (``$XDG_CACHE_HOME/earshot``)."""
    return tmp_path_factory.mktemp("corpus-cache")


@pytest.fixture(scope="session")
def built_corpus(corpus_cache: Path) -> Path:
    """The session's corpus: ``ensure_corpus(minutes=CORPUS_MINUTES, cache_dir=corpus_cache)``, built
    once. Returns its folder; read it, never write it: the session fails at teardown if it changed.
    Skips, naming them, where the Debian packages it is made from are missing."""
    from earshot.benchmark.data import corpus

    missing = corpus.missing_packages()
    if missing:
        pytest.skip("Debian packages for the corpus are missing: " + " ".join(missing)
                    + f" (install: {corpus.INSTALL_HINT} " + " ".join(missing) + ")")
    path = corpus.ensure_corpus(minutes=CORPUS_MINUTES, cache_dir=corpus_cache)
    before = snapshot(corpus_cache)
    yield path
    assert_unchanged(corpus_cache, before, "the session's corpus (copy it into tmp_path to change it)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    # Before -m selects: a test that uses the corpus is a corpus test, so `-m "not corpus"`
    # (a machine without the Debian packages) never builds it.
    for item in items:
        if {"built_corpus", "corpus_cache"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.corpus)


@pytest.fixture
def example_plugin(tmp_path: Path, monkeypatch) -> Path:
    """examples/earshot-example-plugin as if installed (its package on ``sys.path`` with the entry points its
    pyproject.toml declares), for this test only; the registries forget it afterwards."""
    import tomllib

    from earshot.losses import REGISTRY
    from earshot.models import MODELS

    source = EXAMPLES / "earshot-example-plugin"
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    root = tmp_path / "site"
    shutil.copytree(source / "earshot_example_plugin", root / "earshot_example_plugin")
    put_on_path(monkeypatch, root, project["name"], project["version"], project["entry-points"])
    yield root
    for registry in (REGISTRY, MODELS):
        registry.refresh()
    for module in [m for m in sys.modules if m.startswith("earshot_example_plugin")]:
        del sys.modules[module]
