"""The strict YAML walker shared by the loaders of the config file and the web config file.

Nodes (not Python values) are kept so that every error can point at the line of the
offending value: a problem with one node is raised as `Invalid(node, reason)`, which the
loader turns into an error naming the file and that line. Each parser takes the node and
its key path ("modules.mx.port") and returns a plain Python value.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping, TypeVar

import yaml

from .model import RESERVED_LABELS, ConfigError
from .values import DURATION_HELP, format_duration, parse_duration, read_regular_file

T = TypeVar("T")

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_SCALAR_KINDS = {_BOOL: "a boolean", "tag:yaml.org,2002:timestamp": "a date"}

# Its construct_yaml_int/float turn scalars into numbers as YAML defines them (0x1F, 1_000, .inf).
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class Invalid(Exception):
    """A problem with one node; load_yaml_file turns it into an error with the node's line."""

    def __init__(self, node: yaml.Node, reason: str):
        super().__init__(reason)
        self.node = node
        self.reason = reason


def load_yaml_file(path: str, parse: Callable[[yaml.Node | None], T], error: type[ConfigError]) -> T:
    """`parse` run on the YAML node tree of the file at `path` (None for a file with no
    content); every problem, with the file or in it, raised as an `error`."""
    try:
        data = read_regular_file(path)
    except ValueError as exc:
        raise error(path, None, f"cannot read the file: {exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(path, line, "the file is not valid UTF-8") from None
    root = _compose_yaml(text, path, error)
    try:
        return parse(root)
    except Invalid as exc:
        raise error(path, exc.node.start_mark.line + 1, exc.reason) from None


def _compose_yaml(text: str, path: str, error: type[ConfigError]) -> yaml.Node | None:
    """The YAML node tree of `text`, or None for a document with no content."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise error(path, mark.line + 1 if mark else None, f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise error(path, line, f"invalid YAML: character U+{exc.character:04X} is not allowed") from None
    except RecursionError:
        raise error(path, None, "invalid YAML: nested too deeply") from None


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def describe(node: yaml.Node) -> str:
    """A YAML value as quoted in error messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping" if node.tag == _MAP else f"a mapping tagged {node.tag}"
    if isinstance(node, yaml.SequenceNode):
        return "a list" if node.tag == _SEQ else f"a list tagged {node.tag}"
    if node.tag == _STR:
        return repr(node.value if len(node.value) <= 60 else node.value[:60] + "...")
    if node.tag in (_INT, _FLOAT):
        return node.value
    if node.tag == _NULL:
        return "null"
    if node.tag in _SCALAR_KINDS:
        return f"{node.value} ({_SCALAR_KINDS[node.tag]})"
    return f"a value tagged {node.tag}"


def did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def entries(node: yaml.Node | None, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(key, key node, value node) of a mapping whose keys are strings, each at most once."""
    if node is None:
        return []
    if not isinstance(node, yaml.MappingNode) or node.tag != _MAP:
        raise Invalid(node, f"{path}: must be a mapping, got {describe(node)}")
    where = path or "the top level"
    found: list[tuple[str, yaml.Node, yaml.Node]] = []
    first_lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            raise Invalid(key_node, f"{where}: merge keys (<<) are not supported")
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
            raise Invalid(key_node, f"{where}: keys must be strings, got {describe(key_node)}")
        key = key_node.value
        key_path = f"{path}.{key}" if path else key
        if key in first_lines:
            raise Invalid(key_node, f"{key_path}: duplicate key (first on line {first_lines[key]})")
        first_lines[key] = key_node.start_mark.line + 1
        found.append((key, key_node, value_node))
    return found


@dataclass(frozen=True)
class Fields:
    """The keys of one YAML mapping, all known to be allowed there."""

    node: yaml.Node | None      # None when the mapping was left out or null
    path: str
    values: Mapping[str, yaml.Node]

    def path_of(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> yaml.Node | None:
        """The value node of `key`; None when the key is absent or null (null means "not set")."""
        node = self.values.get(key)
        return None if node is None or is_null(node) else node

    def require(self, key: str) -> yaml.Node:
        node = self.get(key)
        if node is None:
            where = self.values.get(key) or self.node
            assert where is not None, "a mapping with required keys is never left out, only null"
            raise Invalid(where, f"{self.path}: {key!r} is required")
        return node


_NOTHING_REFUSED: Mapping[str, str] = MappingProxyType({})


def fields(
    node: yaml.Node | None, path: str, allowed: tuple[str, ...], refused: Mapping[str, str] = _NOTHING_REFUSED
) -> Fields:
    """The keys of a mapping, each in `allowed`. A key of `refused` is refused with its own
    reason (a known key that is not implemented, say) rather than as an unknown one."""
    values = {}
    for key, key_node, value_node in entries(node, path):
        key_path = f"{path}.{key}" if path else key
        if key in refused:
            raise Invalid(key_node, f"{key_path}: {refused[key]}")
        if key not in allowed:
            raise Invalid(
                key_node,
                f"{key_path}: unknown key{did_you_mean(key, list(allowed))}; allowed here: {', '.join(allowed)}",
            )
        values[key] = value_node
    return Fields(node, path, values)


def items(node: yaml.Node | None, path: str) -> list[yaml.Node]:
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode) or node.tag != _SEQ:
        raise Invalid(node, f"{path}: must be a list, got {describe(node)}")
    return list(node.value)


def string(node: yaml.Node, path: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
        hint = "; put it in quotes to make it text" if isinstance(node, yaml.ScalarNode) else ""
        raise Invalid(node, f"{path}: must be a string, got {describe(node)}{hint}")
    return node.value


def checked_string(check: Callable[[str], Any], node: yaml.Node, path: str) -> Any:
    """A string run through one of the parsers above, whose ValueError becomes an Invalid."""
    try:
        return check(string(node, path))
    except ValueError as exc:
        raise Invalid(node, f"{path}: {exc}") from None


def integer(node: yaml.Node, path: str, low: int, high: int | None = None) -> int:
    value = _CONSTRUCTOR.construct_yaml_int(node) if node.tag == _INT else None
    if value is None or value < low or (high is not None and value > high):
        expected = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
        raise Invalid(node, f"{path}: must be {expected}, got {describe(node)}")
    return value


port = functools.partial(integer, low=1, high=65535)


def choice(choices: tuple[str, ...], node: yaml.Node, path: str) -> str:
    if node.tag != _STR or node.value not in choices:
        raise Invalid(node, f"{path}: must be one of {', '.join(choices)}; got {describe(node)}")
    return node.value


def duration(node: yaml.Node, path: str, *, maximum: float, allow_zero: bool = False) -> float:
    if node.tag in (_INT, _FLOAT):
        construct = _CONSTRUCTOR.construct_yaml_int if node.tag == _INT else _CONSTRUCTOR.construct_yaml_float
        seconds = float(construct(node))
        if not math.isfinite(seconds):
            raise Invalid(node, f"{path}: must be {DURATION_HELP}; got {describe(node)}")
    elif node.tag == _STR:
        seconds = checked_string(parse_duration, node, path)
    else:
        raise Invalid(node, f"{path}: must be {DURATION_HELP}; got {describe(node)}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        expected = "must not be negative" if allow_zero else "must be greater than 0"
        raise Invalid(node, f"{path}: {expected}, got {describe(node)}")
    if seconds > maximum:
        raise Invalid(node, f"{path}: must be at most {format_duration(maximum)}, got {describe(node)}")
    return seconds


def labels(node: yaml.Node | None, path: str) -> Mapping[str, str]:
    """The labels of a target or domain, refusing names that would clash in Prometheus."""
    parsed = {}
    for name, key_node, value_node in entries(node, path):
        label_path = f"{path}.{name}"
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
            raise Invalid(
                key_node,
                f"{label_path}: not a valid label name (letters, digits and _, not starting with a digit)",
            )
        if name.startswith("__"):
            raise Invalid(key_node, f"{label_path}: label names starting with __ are reserved for Prometheus")
        if name in RESERVED_LABELS:
            raise Invalid(
                key_node,
                f"{label_path}: the exporter sets a label named {name!r} itself; choose another name",
            )
        value = string(value_node, label_path)
        if not value:
            raise Invalid(value_node, f"{label_path}: must not be empty (Prometheus drops empty labels)")
        parsed[name] = value
    return MappingProxyType(parsed)


def given(section: Fields, parsers: Mapping[str, Callable[[yaml.Node, str], Any]]) -> dict[str, Any]:
    """The parsed values of the keys that are set; the dataclass defaults fill in the others."""
    return {
        key: parse(node, section.path_of(key))
        for key, parse in parsers.items()
        if (node := section.get(key)) is not None
    }


def boolean(node: yaml.Node, path: str) -> bool:
    if node.tag != _BOOL:
        raise Invalid(node, f"{path}: must be true or false, got {describe(node)}")
    return bool(_CONSTRUCTOR.construct_yaml_bool(node))


def top_level(
    root: yaml.Node | None, allowed: tuple[str, ...], refused: Mapping[str, str] = _NOTHING_REFUSED
) -> Fields:
    """The keys of a file's top level, which may also be empty or null (nothing set)."""
    if root is not None and is_null(root):
        root = None
    if root is not None and (not isinstance(root, yaml.MappingNode) or root.tag != _MAP):
        raise Invalid(root, f"the top level must be a mapping with keys {', '.join(allowed)}; got {describe(root)}")
    return fields(root, "", allowed, refused)

