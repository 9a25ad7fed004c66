"""Typed, validated experiment configuration (schema, parsing, components).

A config is a tree of dataclasses. YAML files and ``key=value`` overrides are checked
against it: an unknown key or a value of the wrong type is a :class:`UserError` that
names the key and what is allowed, so a typo never silently falls back to a default.
"""

from selective_kd.config.components import check_components, resolve_assistant, resolve_curriculum, resolve_variant, variant_table
from selective_kd.config.parse import (
    BUILTIN_BASES,
    MAX_SEED,
    LoadedConfig,
    check,
    config_from_dict,
    dump_yaml,
    load_config,
    parse_override,
    read_config,
)
from selective_kd.config.schema import (
    AssistantConfig,
    DIGITS_DEFAULTS,
    Config,
    CurriculumConfig,
    DataConfig,
    DistillConfig,
    GridConfig,
    StageConfig,
    TeacherConfig,
    VariantConfig,
    to_dict,
)

__all__ = [
    "AssistantConfig", "BUILTIN_BASES", "DIGITS_DEFAULTS", "MAX_SEED", "Config", "CurriculumConfig", "DataConfig", "DistillConfig",
    "GridConfig", "LoadedConfig", "StageConfig", "TeacherConfig", "VariantConfig", "check", "check_components",
    "config_from_dict", "dump_yaml", "load_config", "parse_override", "read_config", "resolve_assistant", "resolve_curriculum",
    "resolve_variant", "to_dict", "variant_table",
]
