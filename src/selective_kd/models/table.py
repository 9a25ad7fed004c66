"""The model table: every architecture a config can name, with the parameters it takes.

A model is a builder ``fn(num_classes, in_channels, **params) -> nn.Module`` registered
under a name with its parameters and their defaults (``registry.Registry``). A config
names it with ``arch`` and gives its parameters in ``arch_params``; the builder's
module returns logits only (the engine's contract). Adding a model is one function and
one line, in this package or in a plugin:

    @MODELS.register("my-net", params={"depth": 3})
    def my_net(num_classes: int, in_channels: int, depth: int) -> nn.Module:
        \"\"\"A small ConvNet of ``depth`` blocks.\"\"\"
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from selective_kd.registry import Registry

ModelBuilder = Callable[..., nn.Module]

#: name → builder; the parameters declared here are what ``arch_params`` may set.
MODELS: Registry[ModelBuilder] = Registry("architecture", "arch")

#: Model parameters that a stage sets with its own top-level keys (``teacher.width``,
#: ``teacher.stem``) rather than in ``arch_params``: the keys every config had before
#: models had parameters of their own. A model that does not declare one takes none.
STAGE_KEYS: dict[str, object] = {"width": 1.0, "stem": "cifar"}
