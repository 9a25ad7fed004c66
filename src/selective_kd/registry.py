"""Components by name: one small table per kind (datasets, orders, pacing, scorers, λ policies, losses).

A component is a function (or class) registered under a name with the parameters it
takes (name → default; the default's type is the parameter's type) and what it needs
from a run ("teacher", "curriculum", "progress", "student", ...). Configs name
components and give parameters; both are checked here, so a typo is a one-line error
that lists what exists, and the parameters become part of the run's identity. Adding a
component is one function and one decorator line:

    @PACING.register("linear", params={"a": 0.8, "b": 0.2})
    def linear(progress: float, a: float, b: float) -> float: ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from selective_kd.errors import UserError

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class Component(Generic[T]):
    """One registered component: the callable, its parameters with defaults, and its needs."""

    name: str
    fn: T
    params: Mapping[str, Any] = field(default_factory=dict)
    needs: frozenset[str] = frozenset()
    doc: str = ""
    origin: str | None = None  # the plugin that registered it (selective_kd.plugins); None: built in


class DuplicateName(ValueError):
    """A name registered twice: a bug in our code, or a plugin reusing a name (see selective_kd.plugins)."""

    def __init__(self, kind: str, name: str, origin: str | None) -> None:
        self.kind, self.name, self.origin = kind, name, origin
        where = f"plugin {origin}" if origin else "selective_kd"
        super().__init__(f"{kind} {name!r} registered twice (it already exists, from {where})")


#: The plugin whose import is under way (set by selective_kd.plugins): what it registers is its own.
_loading: list[str] = []
#: Every registry, so a plugin's components can be found (and forgotten when it is re-imported).
ALL: list[Registry[Any]] = []


class Registry(Generic[T]):
    """A name → component table of one kind (e.g. "pacing function")."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind  # what users call it, for messages
        self.key = key  # the config key that names one, for messages
        self._table: dict[str, Component[T]] = {}
        ALL.append(self)

    def register(
        self, name: str, *, params: Mapping[str, Any] | None = None, needs: Iterable[str] = ()
    ) -> Callable[[T], T]:
        """Decorator: add ``fn`` under ``name``; a second use of a name is a bug."""

        def add(fn: T) -> T:
            if name in self._table:
                raise DuplicateName(self.kind, name, self._table[name].origin)
            doc = (fn.__doc__ or "").strip().splitlines()
            # a plugin's own code, not ours that it happens to import first
            ours = (getattr(fn, "__module__", "") or "").startswith("selective_kd.")
            origin = _loading[-1] if _loading and not ours else None
            self._table[name] = Component(name, fn, dict(params or {}), frozenset(needs), doc[0] if doc else "", origin)
            return fn

        return add

    def names(self) -> list[str]:
        return list(self._table)

    def components(self) -> list[Component[T]]:
        return list(self._table.values())

    def claim(self, module: str, origin: str) -> None:
        """Mark built-in-looking components defined in ``module`` (or under it) as ``origin``'s."""
        for name, comp in list(self._table.items()):
            where = getattr(comp.fn, "__module__", "") or ""
            if comp.origin is None and (where == module or where.startswith(module + ".")):
                self._table[name] = replace(comp, origin=origin)

    def forget(self, origin: str) -> None:
        """Drop what plugin ``origin`` registered (before it is imported again, edited)."""
        self._table = {k: c for k, c in self._table.items() if c.origin != origin}

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def get(self, name: str) -> Component[T]:
        """The component called ``name``; an unknown name is a :class:`UserError` listing the known ones."""
        if name not in self._table:
            raise UserError(f"config key {self.key!r}: unknown {self.kind} {name!r}, choose one of {', '.join(self._table)}")
        return self._table[name]

    def params(self, name: str, given: Mapping[str, Any] | None, where: str | None = None) -> dict[str, Any]:
        """``given`` checked against ``name``'s parameters, defaults filled in, in declared order.

        Types follow the defaults (an int is accepted for a float); non-finite numbers and
        unknown parameters are refused, naming the key.
        """
        comp = self.get(name)
        where = where or f"{self.key}_params"
        given = dict(given or {})
        unknown = sorted(set(given) - set(comp.params))
        if unknown:
            allowed = ", ".join(comp.params) or "none"
            raise UserError(f"config key '{where}.{unknown[0]}': {self.kind} {name!r} takes no such parameter (allowed: {allowed})")
        out: dict[str, Any] = {}
        for k, default in comp.params.items():
            out[k] = _check_value(given.get(k, default), default, f"{where}.{k}")
        return out


def _check_value(value: Any, default: Any, key: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"config key '{key}': expected true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise UserError(f"config key '{key}': expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config key '{key}': expected a number, got {value!r}")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond any float (10**400)
            finite = False
        if not finite:
            raise UserError(f"config key '{key}': must be a finite number, got {str(value)[:40]}")
        if isinstance(default, int) and not isinstance(default, bool):
            if float(value) != int(value):
                raise UserError(f"config key '{key}': expected a whole number, got {value!r}")
            return int(value)
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list):
            raise UserError(f"config key '{key}': expected a list, got {value!r}")
        if default:
            return [_check_value(v, default[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return list(value)
    if isinstance(default, str) or default is None:
        if value is not None and not isinstance(value, str):
            raise UserError(f"config key '{key}': expected text, got {value!r}")
        return value
    return value
