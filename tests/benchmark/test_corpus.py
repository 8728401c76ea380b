"""The built-in corpus (benchmark/corpus.py).

The builds need the Debian packages of ``REQUIRED_DEBIAN_PACKAGES`` (``make test``
installs them); without them those tests are skipped and say which are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.benchmark.data import corpus
from earshot.results import rundir
from tests.helpers import CORPUS_MINUTES

pytestmark = pytest.mark.corpus

_MISSING = corpus.missing_packages()
needs_packages = pytest.mark.skipif(
    bool(_MISSING),
    reason="Debian packages for the corpus are missing: " + " ".join(_MISSING)
    + f" (install: {corpus.INSTALL_HINT} " + " ".join(_MISSING) + ")",
)

SMALL_MINUTES = CORPUS_MINUTES  # the session's corpus, built_corpus (tests/conftest.py)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def forced_rebuild(built_corpus, tmp_path_factory) -> tuple[Path, int]:
    """The session's corpus copied into a cache of its own and rebuilt there by
    ``ensure_corpus(force=True)``: the rebuilt folder and how many builds that took."""
    cache = tmp_path_factory.mktemp("forced")
    shutil.copytree(built_corpus, cache / built_corpus.name)
    calls = []
    real_build = corpus.build_corpus

    def counting_build(*args, **kwargs):
        calls.append(args)
        return real_build(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(corpus, "build_corpus", counting_build)
        path = corpus.ensure_corpus(minutes=SMALL_MINUTES, cache_dir=cache, force=True)
    return path, len(calls)


@needs_packages
def test_build_is_deterministic(built_corpus, forced_rebuild):
    a, b = built_corpus, forced_rebuild[0]
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    assert "manifest.json" in fa
    for rel in fa:
        assert hashlib.sha256(fa[rel]).hexdigest() == hashlib.sha256(fb[rel]).hexdigest(), rel


@needs_packages
def test_manifest_is_complete(built_corpus):
    root = built_corpus
    m = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    assert m["sample_rate"] == 11025
    assert m["minutes"] == SMALL_MINUTES
    assert "skipped" in m
    tools = m["tools"]
    assert set(corpus.REQUIRED_DEBIAN_PACKAGES) <= set(tools["debian_packages"])
    assert "2." in tools["fluidsynth"] and "flite" in tools["flite"]

    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))
    listed = sorted(c["path"] for c in m["clips"])
    assert on_disk == listed and len(listed) == len(set(listed))

    seconds = {c: 0.0 for c in corpus.CATEGORIES}
    synthetic = 0.0
    packages = set()
    for c in m["clips"]:
        path = root / c["path"]
        assert c["category"] in corpus.CATEGORIES
        assert c["path"].startswith(c["category"] + "/")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == c["sha256"]
        assert c["source_package"] in corpus.REQUIRED_DEBIAN_PACKAGES
        assert os.path.isabs(c["source_file"]) and os.path.isfile(c["source_file"])
        assert c["licence"] and "unknown" not in c["licence"]
        assert isinstance(c["synthetic"], bool)
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (11025, 1, "PCM_16", "WAV")
        assert abs(info.frames / info.samplerate - c["seconds"]) < 1e-3
        assert corpus.MIN_CLIP_SECONDS <= c["seconds"] <= 30.0
        x, _ = sf.read(str(path), dtype="int16")
        peak = np.abs(x.astype(np.int32)).max()
        assert 0 < peak <= rundir.PCM16_SCALE * corpus.PEAK_CEILING + 1, c["path"]  # nothing clips
        seconds[c["category"]] += c["seconds"]
        packages.update(c["source_packages"])
        if c["synthetic"]:
            assert c["category"] == "speech" and c["source_package"] == "flite"
            synthetic += c["seconds"]

    assert all(seconds[c] > 0 for c in corpus.CATEGORIES), seconds
    assert synthetic <= 0.20 * seconds["speech"]
    total = sum(seconds.values())
    assert 0.85 * SMALL_MINUTES * 60 <= total <= SMALL_MINUTES * 60 + 1e-6
    # every kind of source (and so every tool) is exercised by the small build
    assert {"fillets-ng-data-cs", "flite", "openttd-openmsx", "timgm6mb-soundfont"} <= packages
    assert packages & {"fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid"}
    assert packages & {"sonic-pi-samples", "hydrogen-data"}


def test_clips_are_written_with_earshots_one_pcm_scaling():
    assert corpus.pcm16 is rundir.pcm16
    source = Path(corpus.__file__).read_text()
    assert "32767" not in source and "32768" not in source  # no scaling of its own


def test_the_corpus_builds_every_category_but_other():
    from earshot.benchmark.data.audio import CATEGORIES, OTHER

    assert corpus.CATEGORIES == tuple(c for c in CATEGORIES if c != OTHER)
    assert set(corpus.SHARES) == set(corpus.CATEGORIES)
    assert sum(corpus.SHARES.values()) == pytest.approx(1.0)


def test_missing_package_is_a_corpus_error(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus, "missing_packages", lambda: ["sonic-pi-samples", "flite"])
    with pytest.raises(corpus.CorpusError) as e:
        corpus.build_corpus(tmp_path / "out", minutes=0.5)
    msg = str(e.value)
    assert "sonic-pi-samples" in msg and "flite" in msg
    assert "sudo apt-get install -y" in msg and "\n" not in msg
    with pytest.raises(corpus.CorpusError, match="sonic-pi-samples"):
        corpus.ensure_corpus(minutes=0.5, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "out").exists()
    assert not any((tmp_path / "cache").glob("corpus-*"))


def test_missing_packages_asks_dpkg(monkeypatch):
    monkeypatch.setattr(corpus, "REQUIRED_DEBIAN_PACKAGES", ["earshot-no-such-package"])
    assert corpus.missing_packages() == ["earshot-no-such-package"]


def test_print_packages(capsys):
    assert corpus.main(["--print-packages"]) == 0
    out = capsys.readouterr().out
    assert out == " ".join(corpus.REQUIRED_DEBIAN_PACKAGES) + "\n"


def test_default_corpus_dir_is_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    d = corpus.default_corpus_dir()
    assert d.parent == tmp_path / "earshot"
    assert d.name.startswith("corpus-") and "10min" in d.name and d.name.endswith("11025")
    assert corpus.default_corpus_dir(1.5, 16000) != d


@needs_packages
def test_ensure_corpus_builds_once_then_reuses(monkeypatch, built_corpus, corpus_cache):
    path = built_corpus  # ensure_corpus(minutes=SMALL_MINUTES, cache_dir=corpus_cache), once per session
    manifest = path / "manifest.json"
    assert manifest.is_file() and path.parent == corpus_cache
    assert [p.name for p in corpus_cache.iterdir()] == [path.name]  # no temp folder left
    stamp = manifest.stat().st_mtime_ns

    def no_rebuild(*args, **kwargs):
        raise AssertionError("ensure_corpus rebuilt a cached corpus")

    monkeypatch.setattr(corpus, "build_corpus", no_rebuild)
    monkeypatch.setattr(corpus, "missing_packages", lambda: [])
    assert corpus.ensure_corpus(minutes=SMALL_MINUTES, cache_dir=corpus_cache) == path
    assert manifest.stat().st_mtime_ns == stamp


@needs_packages
def test_ensure_corpus_force_rebuilds(built_corpus, forced_rebuild):
    path, builds = forced_rebuild
    before = (built_corpus / "manifest.json").read_bytes()
    assert path.name == built_corpus.name
    assert builds == 1
    assert (path / "manifest.json").read_bytes() == before  # same packages, same corpus
    assert [p.name for p in path.parent.iterdir()] == [path.name]
