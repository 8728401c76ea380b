"""The one door every loss and model comes through: built-in, installed plugin, module path or file.

A name in a registry is one of

- a registered name (``mse``, ``gated-conv``): a built-in, added by ``Registry.register``;
- an entry point of the registry's group (``earshot.losses``, ``earshot.models``) that an installed
  distribution declares, loaded on first use and registered like a built-in;
- a reference ``module.path:Class`` (importable from the current environment);
- a reference ``path/to/file.py:Class`` (relative to the working directory; no package needed).

Each carries an :class:`Origin` (what a run records to rebuild it). Everything a user can get
wrong here raises the registry's error with one line that names the plugin and what is wrong.
The loss registry lives in ``earshot.losses``; this module imports nothing of earshot's, so
both registries can share it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from torch import nn

BUILTIN = "built-in"
ENTRY_POINT = "entry point"
MODULE = "module"
FILE = "file"


@dataclass(frozen=True)
class Origin:
    """Where a loss or model class came from: what a run records to rebuild it and notice a change."""

    kind: str  # BUILTIN, ENTRY_POINT, MODULE or FILE
    reference: str  # module:Class, or for a file its absolute path:Class
    package: str | None = None  # the distribution that provides it
    version: str | None = None
    path: str | None = None  # a file plugin's absolute path
    sha256: str | None = None  # a file plugin's content hash

    def describe(self) -> str:
        """One short phrase: ``earshot 0.1.0``, ``earshot-example-plugin 0.1.0``, ``file my_loss.py (sha256 1a2b3c4d)``."""
        if self.kind == FILE:
            return f"file {self.path} (sha256 {(self.sha256 or '')[:8]})"
        if self.package:
            return f"{self.package} {self.version or '(no version)'}"
        return f"module {self.reference.split(':')[0]}" + (f" {self.version}" if self.version else "")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> "Origin":
        return cls(**{k: record.get(k) for k in ("kind", "reference", "package", "version", "path", "sha256")})


class PluginError(ValueError):
    """A plugin that cannot be used (one line naming it)."""


def is_reference(term: str) -> bool:
    """Whether ``term`` names a class by reference (``module:Class`` or ``file.py:Class``), not by registered name."""
    return ":" in term


def _split(term: str) -> tuple[str, str]:
    where, _, attr = term.rpartition(":")
    return where, attr


def is_file_reference(term: str) -> bool:
    where, _ = _split(term)
    return is_reference(term) and (where.endswith(".py") or "/" in where or "\\" in where)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def _distribution_of(module_name: str) -> tuple[str | None, str | None]:
    """(distribution, version) that installs the top-level package of ``module_name``; (None, the module's
    ``__version__``) for a module that is only on ``sys.path``."""
    top = module_name.split(".")[0]
    try:
        names = metadata.packages_distributions().get(top) or []
    except Exception:  # a broken distribution elsewhere must not stop a plugin from loading
        names = []
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    module = sys.modules.get(top)
    version = getattr(module, "__version__", None)
    return None, str(version) if version is not None else None


def _load_file_module(path: Path, label: str, what: str):
    digest = file_sha256(path)
    name = f"earshot_plugin_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{digest[:12]}"
    if name in sys.modules:  # the same content, loaded before: one class per content
        return sys.modules[name], digest
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{what} {label}: cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before executing: dataclasses and pickling look the module up
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 (a user's file can raise anything while importing)
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise PluginError(f"{what} {label}: cannot import {path}: {_first_line(exc)}") from None
    return module, digest


def _class_from(module, attr: str, where: str, label: str, what: str) -> type:
    if not attr.isidentifier():
        raise PluginError(f"{what} {label}: {attr!r} is not a class name (expected {where}:ClassName)")
    if not hasattr(module, attr):
        classes = sorted(n for n, v in vars(module).items()
                         if isinstance(v, type) and issubclass(v, nn.Module) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module.__name__)
        known = f" (it defines: {', '.join(classes)})" if classes else ""
        raise PluginError(f"{what} {label}: no class {attr} in {where}{known}")
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise PluginError(f"{what} {label}: {attr} is not a torch module (a subclass of torch.nn.Module)")
    return cls


def load_reference(term: str, what: str, file_override: Path | None = None) -> tuple[type, Origin]:
    """The class a reference names and its origin.

    ``file_override``: load a file reference from this copy instead (a run's copy of the file); the
    origin still names the reference's own path.
    """
    where, attr = _split(term)
    if not where or not attr:
        raise PluginError(f"{what} {term}: expected module.path:ClassName or path/to/file.py:ClassName")
    if is_file_reference(term):
        path = Path(where).expanduser().resolve()
        source = Path(file_override) if file_override is not None else path
        if not source.is_file():
            raise PluginError(f"{what} {term}: no such file {source}")
        module, digest = _load_file_module(source, term, what)
        return _class_from(module, attr, where, term, what), Origin(FILE, f"{path}:{attr}", path=str(path),
                                                                     sha256=digest)
    try:
        module = importlib.import_module(where)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise PluginError(f"{what} {term}: cannot import {where}: {_first_line(exc)}") from None
    cls = _class_from(module, attr, where, term, what)
    package, version = _distribution_of(where)
    return cls, Origin(MODULE, term, package=package, version=version)


def entry_points(group: str) -> dict[str, list[metadata.EntryPoint]]:
    """Every entry point of ``group`` by name (several when distributions clash over one name)."""
    found: dict[str, list[metadata.EntryPoint]] = {}
    for ep in metadata.entry_points(group=group):
        found.setdefault(ep.name, [])
        if all(ep.value != other.value for other in found[ep.name]):
            found[ep.name].append(ep)
    return found


def _dist_of(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


class Registry(dict):
    """Classes by registered name (built-ins and loaded entry points), with their origins; resolves
    references too. A plain ``dict`` of name → class, so a test can add a class by assignment.

    Args:
        what: ``"loss"`` or ``"model"``, for messages.
        group: the entry-point group plugins declare.
        error: the exception class its messages are raised as (a subclass of ValueError).
        check_class: called with (label, class) on every plugin class before it is accepted;
            raises ``PluginError`` naming what is missing.
    """

    def __init__(self, what: str, group: str, error: type[ValueError] = PluginError,
                 check_class: Callable[[str, type], None] | None = None) -> None:
        super().__init__()
        self.what, self.group, self.error = what, group, error
        self.check_class = check_class
        self.origins: dict[str, Origin] = {}
        # plugins loaded so far (installed ones by name, the others by reference); kept apart from the
        # registered names, so `--grid all-losses` stays earshot's own whatever was loaded
        self._loaded: dict[str, tuple[type, Origin]] = {}
        self._overrides: dict[str, Path] = {}
        self._entry_points: dict[str, list[metadata.EntryPoint]] | None = None

    # -- registration --------------------------------------------------------------------------

    def register(self, cls: type, name: str | None = None) -> type:
        """Add one of earshot's own classes under ``name`` (default ``cls.name``); a taken name is refused."""
        name = name or getattr(cls, "name", "")
        if not name or name in self:
            raise ValueError(f"{self.what} name {name!r} is empty or already registered")
        return self.admit(name, cls, Origin(BUILTIN, f"{cls.__module__}:{cls.__qualname__}", package="earshot",
                                            version=_earshot_version()))

    def admit(self, term: str, cls: type, origin: Origin) -> type:
        """The one way in, for earshot's own classes and plugins alike: ``cls`` is known as ``term`` from
        ``origin``. Earshot's own become registered names (the default grid); a plugin is checked
        (``check_class``, name clashes) and kept apart, so ``--grid all-losses`` stays earshot's own
        whatever this process has loaded."""
        if origin.kind == BUILTIN:
            self[term] = cls
            self.origins[term] = origin
            return cls
        label = term if is_reference(term) else f"{term} (entry point {origin.reference})"
        if self.check_class:
            self.check_class(label, cls)
        self._check_name_clash(label, cls, term)
        self._loaded[term] = (cls, origin)
        return cls

    def is_builtin(self, name: str) -> bool:
        return name in self

    def builtin_names(self) -> list[str]:
        """Registered names (earshot's own), in registration order."""
        return list(self)

    def plugin_names(self) -> list[str]:
        """Every installed plugin's entry-point name, sorted (loaded or not)."""
        return sorted(n for n in self._eps() if not self.is_builtin(n))

    def known(self) -> list[str]:
        """Every name a user can give: registered and installed plugins."""
        return sorted(set(self) | set(self._eps()))

    def _eps(self) -> dict[str, list[metadata.EntryPoint]]:
        if self._entry_points is None:
            self._entry_points = entry_points(self.group)
        return self._entry_points

    def refresh(self) -> None:
        """Read the installed entry points again (after installing a plugin in this process)."""
        self._entry_points = None

    def origin_of(self, term: str) -> Origin:
        """The origin of a registered name, an installed plugin's name or a reference (loading it if needed)."""
        self.resolve(term)
        return self.origin_of_registered(term) if term in self else self._loaded[term][1]

    def origin_of_registered(self, term: str) -> Origin:
        if term in self.origins:
            return self.origins[term]
        # a class a test put into the registry by assignment
        cls = self[term]
        return Origin(BUILTIN, f"{cls.__module__}:{cls.__qualname__}", package="earshot", version=_earshot_version())

    # -- resolution ----------------------------------------------------------------------------

    def clear_files(self) -> None:
        """Load every file reference from its own path again (forget :meth:`use_file`)."""
        for term in self._overrides:
            self._loaded.pop(term, None)
        self._overrides.clear()

    def use_file(self, term: str, copy: Path) -> None:
        """Load the file reference ``term`` from ``copy`` (a run's copy of the file) from now on."""
        self._overrides[term] = Path(copy)
        self._loaded.pop(term, None)

    def resolve(self, term: str) -> type:
        """The class ``term`` names; raises the registry's error in one line."""
        if term in self:
            if term in self._eps():
                ep = self._eps()[term][0]
                raise self.error(f"{self.what} {term!r} is earshot's own and also declared by the installed plugin "
                                 f"{_dist_of(ep)[0] or 'unknown package'} ({ep.value}): rename its entry point")
            return self[term]
        # a file is read again each time (its module is cached by content): the same relative path
        # may name another file from another folder, or the file may have been edited
        if term in self._loaded and not (is_file_reference(term) and term not in self._overrides):
            return self._loaded[term][0]
        try:
            if is_reference(term):
                return self.admit(term, *load_reference(term, self.what, self._overrides.get(term)))
            eps = self._eps().get(term)
            if not eps:
                raise PluginError(f"unknown {self.what} {term!r} (known: {', '.join(self.known())}; or give "
                                  f"module.path:ClassName or path/to/file.py:ClassName)")
            if len(eps) > 1:
                providers = ", ".join(f"{ep.value} ({_dist_of(ep)[0] or 'unknown package'})" for ep in eps)
                raise PluginError(f"{self.what} {term!r} is declared by several installed plugins ({providers}): "
                                  f"uninstall all but one")
            return self._load_entry_point(term, eps[0])
        except PluginError as exc:
            raise self.error(str(exc)) from None

    def _load_entry_point(self, name: str, ep: metadata.EntryPoint) -> type:
        label = f"{name} (entry point {ep.value})"
        try:
            cls = ep.load()
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise PluginError(f"{self.what} {label}: cannot import {ep.value.split(':')[0]}: {_first_line(exc)}") \
                from None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise PluginError(f"{self.what} {label}: {ep.value.split(':')[-1]} is not a torch module "
                              "(a subclass of torch.nn.Module)")
        package, version = _dist_of(ep)
        return self.admit(name, cls, Origin(ENTRY_POINT, ep.value, package=package, version=version))

    def _check_name_clash(self, label: str, cls: type, term: str) -> None:
        own = getattr(cls, "name", "")
        if not own or own == term:
            return
        if own in self:
            other = self[own]
        elif own in self._eps():
            other = self.resolve(own)
        else:
            return
        if other is not cls:
            raise PluginError(f"{self.what} {label}: its name {own!r} is taken by the {self.what} from "
                              f"{self.origin_of(own).describe()}; give the class another name")

    def options_key(self, term: str) -> str:
        """The section of ``*_options`` that configures ``term``: its registered name, else the class's
        ``name`` attribute, else the class name."""
        if not is_reference(term):
            return term
        cls = self.resolve(term)
        return getattr(cls, "name", "") or cls.__name__


def _earshot_version() -> str | None:
    try:
        return metadata.version("earshot")
    except metadata.PackageNotFoundError:
        return None

