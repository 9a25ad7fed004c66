"""Plugins: a user's own components, imported before a config is checked, in every process that runs a stage.

A plugin is Python code that registers components when imported (``@PACING.register(...)``,
see :mod:`selective_kd.registry`). Three ways to name one:

- a ``.py`` file: ``plugins: [my_parts.py]`` in a config (relative to that config file) or
  ``--plugin my_parts.py`` on the command line (relative to the current folder);
- a module importable here: ``plugins: [my_lab.kd_parts]`` / ``--plugin my_lab.kd_parts``;
- an installed package's entry point in the group ``selective_kd.plugins``: always loaded,
  as pytest loads its plugins, so an installed package's components work like ours in every
  command, config and worker without being named (``SELECTIVE_KD_NO_ENTRY_POINTS=1`` skips
  them). Loading one costs nothing in a run's identity unless the run uses its components.

A config keeps its plugins (files as absolute paths), so every process that re-reads the
config (``--jobs N`` children, Ray tasks) imports them again before it checks the config.

Identity: a component records the plugin that registered it (``Component.origin``); a
result's identity holds the sha256 of every plugin whose components it uses
(:func:`digests_of`), so an edited plugin retrains exactly those results and reuses the
rest. A file plugin's digest is of the bytes that were executed; a module plugin's covers
its file, or every ``.py`` file of its package. Code a plugin imports from elsewhere is
not covered: keep a plugin's code in it, or make it a package.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selective_kd import registry
from selective_kd.errors import UserError

ENTRY_POINT_GROUP = "selective_kd.plugins"
NO_ENTRY_POINTS = "SELECTIVE_KD_NO_ENTRY_POINTS"


@dataclass(frozen=True)
class Plugin:
    """One imported plugin."""

    spec: str  # what imports it again: an absolute .py path or a module name (also the components' origin)
    label: str  # how messages and identities name it: the file name, or the module name
    sha256: str
    root: str | None = None  # the sys.path entry a module plugin was found under (workers need it too)


_LOADED: dict[str, Plugin] = {}  # spec -> plugin, in load order
_ENTRY_POINTS_DONE = False


def is_file_spec(text: str) -> bool:
    """A ``.py`` file (or any path with a separator), not a module name."""
    return text.endswith(".py") or "/" in text or os.sep in text


def resolve(text: str, base: Path) -> str:
    """A plugin as a config keeps it: a file made absolute against ``base``, a module name as is."""
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"config key 'plugins': {text!r} is not a module name or a .py file")
    text = text.strip()
    if not is_file_spec(text):
        return text
    return str((base / Path(text).expanduser()).resolve())


def load(specs: Iterable[str]) -> list[Plugin]:
    """Import the entry-point plugins (once per process) and each of ``specs``; the plugins named."""
    load_entry_points()
    return [_load(spec) for spec in dict.fromkeys(specs)]


def loaded() -> list[Plugin]:
    return list(_LOADED.values())


def by_origin(origin: str) -> Plugin | None:
    return _LOADED.get(origin)


def digests_of(components: Iterable[Any]) -> dict[str, str]:
    """``{plugin label: sha256}`` of the plugins that registered any of ``components`` (empty: all built in)."""
    found = {c.origin for c in components if getattr(c, "origin", None)}
    plugins = sorted((p for p in (_LOADED.get(o) for o in found) if p is not None), key=lambda p: p.label)
    return {p.label: p.sha256 for p in plugins}


def import_roots() -> list[str]:
    """Folders module plugins were imported from: a child process puts them on its path."""
    return list(dict.fromkeys(p.root for p in _LOADED.values() if p.root))


# --------------------------------------------------------------------------- importing


def _load(spec: str, then: Callable[[], Any] | None = None) -> Plugin:
    """Import ``spec`` (again, if edited since) with what it registers marked as its own; ``then`` runs inside."""
    if is_file_spec(spec):
        path = Path(spec)
        if not path.is_file():
            raise UserError(f"plugin {spec}: no such file (a config's plugin files are relative to the config, "
                            f"--plugin ones to the current folder)")
        source = path.read_bytes()
        digest = hashlib.sha256(source).hexdigest()
        label, root = path.name, None
    else:
        source, (digest, root) = None, _module_digest(spec)
        label = spec
    known = _LOADED.get(spec)
    if known is not None and known.sha256 == digest:
        return known
    if known is not None:  # edited since this process imported it: forget its components, import it again
        unload(spec)
    if any(p.label == label for p in _LOADED.values()):
        label = spec  # two files of one name: tell them apart by their paths
    plugin = Plugin(spec, label, digest, root)
    registry._loading.append(spec)
    try:
        if source is not None:
            _exec_file(Path(spec), source)
        else:
            importlib.import_module(spec)
            for table in registry.ALL:  # imported before it was named a plugin: its components are still its own
                table.claim(spec, spec)
        if then is not None:
            then()
    except registry.DuplicateName as exc:
        unload(spec)
        other = _LOADED.get(exc.origin) if exc.origin else None
        where = f"plugin {other.label if other else exc.origin}" if exc.origin else "selective_kd"
        raise UserError(f"plugin {label}: registers {exc.kind} {exc.name!r}, which already exists (from {where}): "
                        f"give it another name") from None
    except UserError:
        unload(spec)
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure of the user's code is one line naming it
        unload(spec)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserError(f"plugin {label} failed to import: {_where(exc, spec)}{type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")) from None
    finally:
        registry._loading.pop()
    _LOADED[spec] = plugin
    return plugin


def _module_name(path: Path) -> str:
    """The name a plugin file's module gets in ``sys.modules`` (unique per path)."""
    return f"_selective_kd_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def _exec_file(path: Path, source: bytes) -> None:
    """Run exactly the bytes that were hashed, as a module (so dataclasses and pickling find it)."""
    name = _module_name(path)
    module_spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    assert module_spec is not None
    module = importlib.util.module_from_spec(module_spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - the user's own plugin, by its path


def _module_digest(name: str) -> tuple[str, str | None]:
    """sha256 over a module's file (or its package's .py files), and the sys.path entry it is under."""
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        found, why = None, f" ({type(exc).__name__}: {exc})"
    else:
        why = ""
    if found is None:
        raise UserError(f"plugin {name}: no module of that name{why}: install it, put its folder on PYTHONPATH, "
                        f"or name its .py file")
    package = found.submodule_search_locations is not None
    files: list[Path] = []
    for folder in found.submodule_search_locations or []:
        files += sorted(Path(folder).rglob("*.py"))
    if not package and found.origin and Path(found.origin).is_file():
        files = [Path(found.origin)]
    h = hashlib.sha256()
    for f in files:
        h.update(f.as_posix().encode() + b"\0" + f.read_bytes())
    root = None
    if found.origin and Path(found.origin).is_file():  # <root>/a/b.py, or <root>/a/b/__init__.py for a package
        parts = name.count(".") + 1
        root = str(Path(found.origin).resolve().parents[parts if package else parts - 1])
    return h.hexdigest(), root


def unload(spec: str) -> None:
    """Forget a plugin: its components, its module, its record (before it is imported again; tests)."""
    for table in registry.ALL:
        table.forget(spec)
    _LOADED.pop(spec, None)
    if is_file_spec(spec):
        sys.modules.pop(_module_name(Path(spec)), None)
    else:
        for name in [m for m in sys.modules if m == spec or m.startswith(spec + ".")]:
            sys.modules.pop(name, None)


def _where(exc: BaseException, spec: str) -> str:
    """``file.py line 12: `` of the deepest frame in the plugin's own code, when there is one."""
    here = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == spec or (not is_file_spec(spec) and spec.replace(".", os.sep) in frame.filename):
            here = frame
    return f"{Path(here.filename).name} line {here.lineno}: " if here is not None else ""


def load_entry_points() -> list[Plugin]:
    """The installed packages' plugins (group ``selective_kd.plugins``), once per process."""
    global _ENTRY_POINTS_DONE
    if _ENTRY_POINTS_DONE or os.environ.get(NO_ENTRY_POINTS):
        return []
    _ENTRY_POINTS_DONE = True
    from importlib.metadata import entry_points

    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:  # `module` registers on import; `module:function` also calls the function
            out.append(_load(ep.module, (lambda ep=ep: ep.load()()) if ep.attr else None))
        except UserError as exc:
            raise UserError(f"{exc} (entry point {ep.name!r} of an installed package; "
                            f"{NO_ENTRY_POINTS}=1 skips them)") from None
    return out


def load_from(values: Sequence[Any], base: Path) -> list[str]:
    """A config's ``plugins`` list resolved against ``base`` (checked to be names or files)."""
    if not isinstance(values, list):
        raise UserError(f"config key 'plugins': expected a list of module names or .py files, got {values!r}")
    return [resolve(v, base) for v in values]
