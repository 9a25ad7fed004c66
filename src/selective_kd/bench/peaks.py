"""The GPU's datasheet bf16 peak, found by its name, for "fraction of peak".

A measured matmul peak (``measure.peak_flops``) says what one large product reaches on
this machine today; the datasheet number says what the hardware is sold as, which is
what a reader compares papers and frameworks against. Both are reported. Numbers are
NVIDIA's dense bf16 tensor-core figures (without 2:4 sparsity, which doubles them).
"""

from __future__ import annotations

# (substring of torch.cuda.get_device_name, label, dense bf16 FLOP/s); first match wins,
# so the more specific names come first (an "H100 PCIe" is also an "H100").
DATASHEET_BF16: tuple[tuple[str, str, float], ...] = (
    ("GH200", "GH200", 989e12),
    ("H200 NVL", "H200 NVL", 835e12),
    ("H200", "H200 SXM", 989e12),
    ("H100 PCIe", "H100 PCIe", 756e12),
    ("H100 NVL", "H100 NVL", 835e12),
    ("H100", "H100 SXM", 989e12),
    ("A100", "A100", 312e12),
)


def datasheet_peak(device_name: str) -> tuple[str, float] | None:
    """``(label, FLOP/s)`` of the first table entry whose name occurs in ``device_name``; None if unknown."""
    lowered = device_name.lower()
    for needle, label, flops in DATASHEET_BF16:
        if needle.lower() in lowered:
            return f"{label} bf16 dense", flops
    return None


def peak_fractions(rates: dict[str, float], flops_per_image: dict[str, float], peak: float | None) -> dict[str, float | None]:
    """Model FLOPs per image × images/s ÷ peak, per measured variant (None without a known peak)."""
    return {k: (flops_per_image[k] * rates[k] / peak if peak else None) for k in rates if k in flops_per_image}
