"""The package layout DESIGN.md and docs/architecture.md describe, checked against the code.

- the import graph of the five packages points one way;
- everything installs under ``earshot.*`` (every package folder listed in pyproject.toml);
- a user's own ``models/``, ``losses.py``, ``results.py`` or ``benchmark.py`` never shadows earshot's.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "losses", "benchmark", "results", "listening_app")

# Which of earshot's packages each package may import (DESIGN.md, docs/architecture.md). The CLI
# (earshot.benchmark.cli) and the public API (earshot itself) compose everything.
ALLOWED = {
    "models": set(),
    "losses": {"models"},
    "benchmark": {"models", "losses"},
    "results": set(),
    "listening_app": {"results"},
}
# The run directory's layout has one owner, in results; the harness and the app write through it.
CONTRACT_MODULES = {"earshot.results.rundir"}
CLI = "earshot.benchmark.cli"


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["earshot", *parts] if parts[0] != "earshot" else parts)


def _source_files() -> list[Path]:
    files = []
    for folder in (*PACKAGES, "earshot"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, at any depth (imports inside functions count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "earshot":  # from earshot import results
                found += [(node.lineno, f"earshot.{alias.name}") for alias in node.names]
    return found


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "earshot" and len(parts) > 1 and parts[1] in PACKAGES:
        return parts[1]
    return None


def test_no_module_imports_a_package_by_its_bare_name():
    bare = [f"{path.relative_to(ROOT)}:{line}: {module}" for path in _source_files() + sorted((ROOT / "tests").rglob("*.py"))
            for line, module in _imports(path) if module.split(".")[0] in PACKAGES]
    assert not bare, "import earshot.<package>, never the bare folder name:\n" + "\n".join(bare)


def test_the_import_graph_points_one_way():
    wrong = []
    for path in _source_files():
        source = _module_name(path)
        source_package = _package_of(source)
        if source_package is None or source == CLI or source.startswith(CLI + "."):
            continue  # the public API and the CLI compose the packages
        for line, module in _imports(path):
            target = _package_of(module)
            if target is None or target == source_package or target in ALLOWED[source_package]:
                continue
            if any(module == c or module.startswith(c + ".") for c in CONTRACT_MODULES) and source_package != "results":
                continue
            wrong.append(f"{path.relative_to(ROOT)}:{line}: {source_package} imports {module}")
    assert not wrong, "imports against DESIGN.md's direction:\n" + "\n".join(sorted(set(wrong)))


def test_the_graph_check_sees_a_wrong_import(tmp_path):
    # The checker itself: an import inside a function, from results into listening_app, is seen.
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from earshot.listening_app.store import ratings_frame\n")
    assert (2, "earshot.listening_app.store") in _imports(sample)
    assert _package_of("earshot.listening_app.store") == "listening_app" not in ALLOWED["results"]


def test_every_package_folder_is_installed_under_earshot():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {_module_name(init.parent / "__init__.py")
               for folder in (*PACKAGES, "earshot") for init in (ROOT / folder).rglob("__init__.py")}
    assert folders - listed == set(), "package folders missing from pyproject.toml's packages"
    assert listed - folders == set(), "pyproject.toml lists packages that do not exist"
    assert config["package-dir"] == {"earshot": "earshot", **{f"earshot.{p}": p for p in PACKAGES}}


SHADOWS = {
    "models/__init__.py": "raise RuntimeError('the user project models/ was imported')\n",
    "losses.py": "raise RuntimeError('the user project losses.py was imported')\n",
    "results.py": "raise RuntimeError('the user project results.py was imported')\n",
    "benchmark.py": "raise RuntimeError('the user project benchmark.py was imported')\n",
    "listening_app.py": "raise RuntimeError('the user project listening_app.py was imported')\n",
}


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """A folder like a researcher's own project, with modules named like earshot's packages."""
    for name, text in SHADOWS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [
    [str(Path(sys.executable).with_name("earshot")), "losses"],
    [sys.executable, "-m", "earshot", "losses"],
], ids=["earshot", "python -m earshot"])
def test_the_cli_works_in_a_folder_with_its_own_losses_and_models(user_project, command):
    result = _run(command, user_project)
    assert result.returncode == 0, result.stderr
    assert "user project" not in result.stdout + result.stderr
    for loss in ("mse", "bark", "mulaw-ce", "crepe-feature"):
        assert loss in result.stdout


def test_the_python_api_works_in_a_folder_with_its_own_losses_and_models(user_project):
    script = ("import earshot, torch\n"
              "loss = earshot.build_loss('mse', sample_rate=11025)\n"
              "x = torch.zeros(2, 1, 64)\n"
              "print(type(loss).__module__, float(loss(x, x)))\n"
              "config = earshot.load_config('tiny')\n"
              "model = earshot.build_model(config.model, config.data.window, loss.head_channels)\n"
              "print(type(model).__module__)\n")
    result = _run([sys.executable, "-c", script], user_project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["earshot.losses.time", "0.0", "earshot.models.autoencoder"]
