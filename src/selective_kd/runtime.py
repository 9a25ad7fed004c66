"""Where and how tensors compute, resolved once from the config, and the facts a result records.

Three process-wide switches live here because each changes what a CPU computes:

* **oneDNN** (``onednn``). torch 2.13.0's oneDNN 3.12 writes out of bounds in the weight
  gradient of a strided 1×1 convolution whose input has fewer channels than one SIMD
  register holds (below 16 on AVX-512, below 8 on AVX2) in channels_last, when the batch
  is odd and more than one thread runs it (AVX-512; one thread is enough under AVX2): the
  heap is corrupted ("double free or corruption", "free(): invalid next size", a segfault,
  or a hang in malloc). That is the downsample convolution of a ResNet-18 at width
  0.0625-0.125. By default (``onednn: null``) a model that has such a convolution trains
  with oneDNN off (ATen's own convolutions, either layout; :func:`onednn_unsafe`), every
  other model and every forward-only pass keep oneDNN, which is 2-6× faster on the CPU
  (benchmarks/RESULTS.md); ``onednn: false`` turns it off everywhere, ``true`` keeps it on.
* **threads**. The default is the cores this process may run on (its CPU affinity), never
  more; ``threads: N`` fixes it. Results are bit-identical only at one thread count.
* **deterministic** (strict mode): ``torch.use_deterministic_algorithms(True)`` and one
  thread unless ``threads`` says otherwise, so the run repeats on another machine with the
  same CPU kind and torch build (a GPU run on the same GPU model and CUDA).

:func:`runtime_record` is what every checkpoint and result.json carries, so a resumed
stage or a reused result made under another thread count or device says so in the log.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selective_kd.config import Config
from selective_kd.distributed import Dist, init_from_env
from selective_kd.errors import UserError

#: The thread count strict mode uses when ``threads`` is not given: the same on every machine.
DETERMINISTIC_THREADS = 1
#: Keys of :func:`runtime_record` that make numbers differ when they change between two runs.
NUMERIC_KEYS = ("device", "device_model", "threads", "channels_last", "onednn", "deterministic", "torch")


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors compute: resolved once from the config."""

    device: torch.device
    autocast_dtype: torch.dtype | None  # bf16 on GPUs by default, None (fp32) on CPU
    channels_last: bool
    compile: bool | str  # False, True (torch.compile's default mode) or a torch.compile mode name
    dist: Dist = Dist()  # this process's rank under torchrun; a single process by default
    onednn: bool | None = None  # oneDNN on the CPU: None = off only to train a model it would crash on
    deterministic: bool = False  # torch.use_deterministic_algorithms(True) was set
    threads: int = 0  # torch intra-op threads (0: not set by us; runtime_record reads torch)

    def autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def compiled(self, model: nn.Module) -> nn.Module:
        """``model`` under ``torch.compile`` in the configured mode, or as it is when compile is off."""
        if self.compile is False:
            return model
        mode = None if self.compile is True else self.compile
        return torch.compile(model, mode=mode)  # type: ignore[return-value]

    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def onednn_for(self, model: nn.Module) -> bool:
        """Whether training ``model`` uses oneDNN: as configured, or (auto) unless it has a convolution oneDNN crashes on."""
        if self.onednn is not None:
            return self.onednn
        return self.device.type == "cpu" and not onednn_unsafe(model)

    @contextmanager
    def training_kernels(self, model: nn.Module) -> Iterator[None]:
        """oneDNN on or off while ``model`` trains (:meth:`onednn_for`), as it was afterwards.

        Decided by the model alone, never by what ran before in the process, so a stage's
        numbers do not depend on the order of stages in a grid.
        """
        before, threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
        on_cpu = self.device.type == "cpu"
        torch.backends.mkldnn.enabled = self.onednn_for(model) if on_cpu else before
        # ATen's own convolutions hang in backward with 2 threads on such a model (ResNet-18 at
        # width 0.125, 16×16, batch 32): the models oneDNN is turned off for train on one thread.
        if on_cpu and self.onednn is None and not torch.backends.mkldnn.enabled:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.backends.mkldnn.enabled = before
            torch.set_num_threads(threads)


#: Below this many input channels a strided 1×1 convolution's weight gradient is not safe in
#: oneDNN 3.12 (one AVX-512 register of fp32; AVX2 holds 8, so 16 covers both ISAs).
ONEDNN_MIN_CHANNELS = 16


def onednn_unsafe(model: nn.Module) -> bool:
    """``model`` has a strided 1×1 convolution on fewer than :data:`ONEDNN_MIN_CHANNELS` channels."""
    return any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
               and m.in_channels // m.groups < ONEDNN_MIN_CHANNELS for m in model.modules())


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. under taskset or a container), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_runtime(cfg: Config) -> Runtime:
    """The device, precision, layout and CPU switches ``cfg`` asks for, applied to this process."""
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(cfg.device)
        except RuntimeError:
            raise UserError(f"config key 'device': {cfg.device!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError("config key 'device': cuda was asked for but no GPU is visible; use device=cpu or device=auto")
    on_gpu = device.type == "cuda"
    d = init_from_env(on_gpu)
    if on_gpu and d.enabled:
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if on_gpu else "fp32")
    dtype = torch.bfloat16 if precision == "bf16" else None
    if on_gpu and precision == "fp32":  # fp32 means fp32: cuDNN would run convolutions in TF32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    # channels_last by default on GPUs (tensor cores), not on CPUs (it was the layout of the
    # oneDNN heap corruption above; ATen's CPU convolutions gain nothing from it).
    channels_last = on_gpu if cfg.channels_last is None else cfg.channels_last
    onednn = cfg.onednn
    torch.backends.mkldnn.enabled = onednn is not False  # forward passes; training: Runtime.training_kernels
    threads = cfg.threads or (DETERMINISTIC_THREADS if cfg.deterministic else min(torch.get_num_threads(), usable_cores()))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(bool(cfg.deterministic))
    if cfg.deterministic and on_gpu:  # cuBLAS needs a fixed workspace to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    return Runtime(device, dtype, channels_last, cfg.compile, d, onednn, bool(cfg.deterministic), threads)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def runtime_record(runtime: Runtime, model: nn.Module | None = None) -> dict[str, Any]:
    """How a run computed (training ``model``): kept in checkpoints and result.json, compared on resume and reuse.

    Precision is part of a run's identity; these may change on resume, and when one of
    :data:`NUMERIC_KEYS` does, the numbers are no longer bit-identical to one uninterrupted run.
    """
    on_gpu = runtime.device.type == "cuda"
    record = {
        "device": runtime.device.type,
        "device_model": str(torch.cuda.get_device_name(runtime.device)) if on_gpu else cpu_model(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "threads": torch.get_num_threads(),
        "channels_last": runtime.channels_last,
        "onednn": runtime.onednn_for(model) if model is not None and not on_gpu else runtime.onednn,
        "deterministic": runtime.deterministic,
        "compile": runtime.compile,
        "torch": str(torch.__version__),  # a TorchVersion object would not load with weights_only
        "world": runtime.dist.world,
    }
    if model is not None and not on_gpu:
        # ``threads`` is the process's count (what a reuse compares); a model oneDNN is turned off
        # for trains on one thread whatever that count is (training_kernels), and the record says so.
        forced = runtime.onednn is None and not runtime.onednn_for(model)
        record["train_threads"] = 1 if forced else torch.get_num_threads()
    return record


def runtime_changes(before: Any, now: dict[str, Any]) -> str:
    """``"threads 2 → 1, ..."`` for the keys that change numbers; empty when none did (or none recorded)."""
    if not isinstance(before, dict):
        return ""
    changed = [k for k in NUMERIC_KEYS if k in before and now.get(k) is not None and before[k] != now[k]]
    return ", ".join(f"{k} {before[k]} → {now[k]}" for k in changed)
