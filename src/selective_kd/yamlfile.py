"""Reading one YAML config file strictly, with one-line errors.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word, so a setting
written twice (``epochs: 5`` near the top, ``epochs: 50`` further down) would silently
win or lose. Here a key given twice in one mapping is refused, naming both lines; a file
that is not UTF-8 text or not valid YAML is refused the same way.

YAML can also describe far more than it spells out: nine lines of anchors and aliases
expand to a billion strings ("billion laughs"), a thousand ``[`` exhaust the recursion
limit, and a 5,000-digit integer exceeds what Python converts. The document graph is
checked before anything is built: at most :data:`MAX_NODES` values after expanding
aliases, :data:`MAX_DEPTH` levels, integers of at most :data:`MAX_INT_DIGITS` digits.
The same bounds hold for ``key=value`` overrides (:func:`load_yaml_text`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from selective_kd.errors import UserError

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"

#: Values in one document once aliases are expanded: a config has a few hundred.
MAX_NODES = 100_000
#: Nesting levels: a config has four.
MAX_DEPTH = 32
#: Digits of one integer: seeds are below 2**63 (19 digits).
MAX_INT_DIGITS = 40
#: Bytes of one config file.
MAX_BYTES = 4 << 20


class TooBigError(Exception):
    """The document exceeds a bound (expanded size, depth, integer digits); the message says which."""


def check_bounds(root: yaml.Node) -> None:
    """Refuse a composed document that would expand past the bounds, before it is constructed.

    Expanded sizes are computed once per node (aliases share nodes), so a bomb is measured
    in time linear in the file, without building it.
    """
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_NODES:
                raise TooBigError(f"it expands to more than {MAX_NODES:,} values (anchors and aliases)")
            continue
        if depth > MAX_DEPTH:
            raise TooBigError(f"it is nested more than {MAX_DEPTH} levels deep")
        if key in size:
            continue
        if key in on_path:
            raise TooBigError("an alias refers to a value that contains it")
        if isinstance(node, yaml.ScalarNode):
            digits = len(str(node.value).lstrip("+-").replace("_", ""))
            if node.tag == _INT_TAG and digits > MAX_INT_DIGITS:
                raise TooBigError(f"an integer has {digits} digits (at most {MAX_INT_DIGITS})")
            size[key] = 1
            continue
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in _children(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class DuplicateKeyError(Exception):
    """A mapping names the same key twice: ``key`` (dotted path) at ``first`` and ``second`` (1-based lines)."""

    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(f"key {key!r} appears twice (lines {first} and {second})")
        self.key, self.first, self.second = key, first, second


class StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys at any depth before building the document."""

    def construct_document(self, node: yaml.Node) -> Any:
        check_bounds(node)
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
    from selective_kd.reading import read_bytes

    raw = read_bytes(path, what, "pass a YAML file such as configs/digits.yaml", MAX_BYTES)
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
    except TooBigError as exc:
        raise UserError(f"{what} {path} is refused: {exc}; a config needs none of that") from None
    except RecursionError:
        raise UserError(f"{what} {path} is refused: it is nested too deeply; a config needs a few levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{what} {path} is not valid YAML{where}: fix the syntax") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"{what} {path} must hold a mapping of keys, not a {type(loaded).__name__}")
    return loaded


def load_yaml_text(text: str, where: str) -> Any:
    """One YAML value (an override's right-hand side), under the same bounds as a file.

    Raises :class:`yaml.YAMLError` for text that is not YAML (the caller may then take it
    as a plain string); a value past the bounds is a one-line :class:`UserError`.
    """
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except DuplicateKeyError as exc:
        raise UserError(f"{where}: {exc}: keep one of them") from None
    except TooBigError as exc:
        raise UserError(f"{where} is refused: {exc}") from None
    except RecursionError:
        raise UserError(f"{where} is refused: it is nested too deeply") from None
