"""Reading one YAML config file strictly, with one-line errors.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word, so a setting
written twice (``epochs: 5`` near the top, ``epochs: 50`` further down) would silently
win or lose. Here a key given twice in one mapping is refused, naming both lines; a file
that is not UTF-8 text or not valid YAML is refused the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from selective_kd.errors import UserError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(Exception):
    """A mapping names the same key twice: ``key`` (dotted path) at ``first`` and ``second`` (1-based lines)."""

    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(f"key {key!r} appears twice (lines {first} and {second})")
        self.key, self.first, self.second = key, first, second


class StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys at any depth before building the document."""

    def construct_document(self, node: yaml.Node) -> Any:
        self._refuse_duplicates(node, "", set())
        return super().construct_document(node)

    def _refuse_duplicates(self, node: yaml.Node, path: str, visited: set[int]) -> None:
        if id(node) in visited:  # anchors and aliases share nodes, and may even be recursive
            return
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._refuse_duplicates(item, f"{path}[{i}]", visited)
            return
        if not isinstance(node, yaml.MappingNode):
            return
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *defaults` may be overridden by the mapping's own keys
                self._refuse_duplicates(value_node, path, visited)
                continue
            key = self.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else None
            full = f"{path}.{key}" if path else str(key)
            line = key_node.start_mark.line + 1
            if key is not None:
                if key in lines:
                    raise DuplicateKeyError(full, lines[key], line)
                lines[key] = line
            self._refuse_duplicates(value_node, full, visited)


def read_yaml_mapping(path: Path, what: str = "config file") -> dict[str, Any]:
    """The mapping a YAML file holds (``{}`` when empty); any problem is a one-line :class:`UserError`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror}): check the path and its permissions") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{what} {path} is not UTF-8 text (undecodable byte at offset {exc.start}): pass a YAML file such as configs/digits.yaml"
        ) from None
    try:
        loaded = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except DuplicateKeyError as exc:
        raise UserError(f"{what} {path}: {exc}: keep one of them") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{what} {path} is not valid YAML{where}: fix the syntax") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"{what} {path} must hold a mapping of keys, not a {type(loaded).__name__}")
    return loaded
