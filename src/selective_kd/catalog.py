"""Every component registry in one tuple, and the listing ``selective-kd components`` prints.

The listing is built from the registries themselves (name, declared parameters with
defaults, needs, the first line of the docstring, the plugin that registered it), so a
component added by us or by a plugin shows up without anyone listing it here.
"""

from __future__ import annotations

import json
from typing import Any

from selective_kd.errors import UserError
from selective_kd.plugins import by_origin
from selective_kd.registry import Component, Registry


def registries() -> tuple[tuple[str, Registry[Any]], ...]:
    """(section name, registry) for every kind of component, in the order a run uses them."""
    from selective_kd.curriculum import ORDERS, PACING, SCORERS
    from selective_kd.data import DATASETS
    from selective_kd.distill.losses import LOSSES
    from selective_kd.distill.policies import POLICIES
    from selective_kd.distill.temperature import TEMPERATURES
    from selective_kd.models import MODELS

    return (("datasets", DATASETS), ("models", MODELS), ("orders", ORDERS), ("pacing", PACING), ("scorers", SCORERS),
            ("policies", POLICIES), ("losses", LOSSES), ("temperatures", TEMPERATURES))


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _row(comp: Component[Any]) -> tuple[str, str, str]:
    params = " ".join(f"{k}={_value(v)}" for k, v in comp.params.items())
    needs = f"needs {', '.join(sorted(comp.needs))}" if comp.needs else ""
    plugin = by_origin(comp.origin) if comp.origin else None
    source = f"[plugin {plugin.label if plugin else comp.origin}]" if comp.origin else ""
    doc = " ".join(p for p in (comp.doc or "(no description)", needs and f"({needs})", source) if p)
    return comp.name, params or "-", doc


def describe(kinds: list[str] | None = None) -> str:
    """The listing: one section per registry (or per kind asked for), one line per component."""
    table = registries()
    names = [name for name, _ in table]
    for kind in kinds or []:
        if kind not in names:
            raise UserError(f"components {kind}: no such kind, choose from {', '.join(names)}")
    lines: list[str] = []
    for name, reg in table:
        if kinds and name not in kinds:
            continue
        rows = [_row(c) for c in reg.components()]
        w_name = max(len(r[0]) for r in rows)
        w_params = max(len(r[1]) for r in rows)
        lines.append(f"{name} ({reg.kind}: {reg.key}: NAME; parameters name=default)")
        lines += [f"  {n:<{w_name}}  {p:<{w_params}}  {d}" for n, p, d in rows]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
