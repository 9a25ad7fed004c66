"""The benchmark's results as a plain-text table, with the speed-ups over the reference."""

from __future__ import annotations

import os
from typing import Any

from selective_kd.bench.common import FLIP, LAM, NUM_CLASSES, PADDING
from selective_kd.data.augment import Views

_ROWS = (("reference", "(a) reference"), ("engine_online", "(b) engine_online"),
         ("engine_cached", "(c) engine_cached"), ("scoring", "scoring (teacher, eval)"))


def _si(value: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.2f} "


def format_results(r: dict[str, Any]) -> str:
    """The results as a plain-text table; fractions of the datasheet peak where the GPU is known."""
    ref = r["reference"]
    fractions = r.get("peak_fraction") or {}
    sheet = r.get("datasheet_peak")
    mode = r["compile"]
    compiled = "" if not mode else ", compiled" if mode is True else f", compiled ({mode})"
    lines = [
        f"selective-kd bench: teacher {r['teacher']} -> student {r['student']}, batch {r['batch_size']}, "
        f"{r['device']}, {r['precision']}{', channels_last' if r['channels_last'] else ''}"
        f"{compiled}, torch {r['torch']}",
        "",
        f"{'':<26}{'images/s':>12}{'vs reference':>15}{'of ' + sheet if sheet else '':>28}",
    ]
    for key, label in _ROWS:
        ratio = f"{r[key] / ref:>14.2f}x" if key != "scoring" else " " * 15
        frac = fractions.get(key)
        lines.append(f"{label:<26}{r[key]:>12.1f}{ratio}{f'{100 * frac:.1f}%' if frac is not None else '':>28}")
    lines += [
        "",
        f"{'peak matmul FLOP/s':<26}{_si(r['peak_flops']):>12}",
        f"{'achieved FLOP/s (c)':<26}{_si(r['achieved_flops']):>12}"
        f"   {100 * r['achieved_flops'] / r['peak_flops']:.0f}% of peak; student fwd+bwd "
        f"{_si(r['student_step_flops'] / r['batch_size'])}FLOP per image",
    ]
    if r.get("datasheet_peak_flops"):
        lines.append(f"{'datasheet peak FLOP/s':<26}{_si(r['datasheet_peak_flops']):>12}   {sheet}")
    lines += [
        "",
        f"(c)/(a) = {r['engine_cached'] / ref:.2f}   (b)/(a) = {r['engine_online'] / ref:.2f}",
        f"engine_cached looks logits up in a random fp16 table of {r['images']}x{Views(PADDING, FLIP).count}x{NUM_CLASSES}"
        " (timing only; the cache's correctness is covered by the tests)",
    ]
    methods = r.get("methods") or {}
    if methods:
        base = methods.get("kd")
        lines += ["", f"per method: engine_cached step, λ {LAM}, timed interleaved{' (vs kd)' if base else ''}"]
        for name, rate in methods.items():
            lines.append(f"  {name:<24}{rate:>12.1f}{f'{rate / base:>14.2f}x' if base else ''}")
    before, after = r.get("load_average") or (None, None)
    if before is not None and after is not None:  # other processes on the machine slow every number down
        lines.append(f"load average (1 min) before / after: {before:.2f} / {after:.2f} on {os.cpu_count()} logical CPUs")
    return "\n".join(line.rstrip() for line in lines)
