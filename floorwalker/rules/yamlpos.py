"""Load YAML into plain Python values, remembering where every key and value was written.

Rule files are checked long after PyYAML has forgotten the text, so this module
keeps a 1-based line and column for each node, addressed by its path from the
root (``("when", "dwell", "at_least")``, ``("alert", "escalate", 1)``).

Scalars follow YAML 1.1 as PyYAML reads it, with two exceptions that bite rule
authors: ``10:00`` stays the text "10:00" instead of the base-60 number 600, and
``2024-05-01`` stays text (the schema turns it into a date and says so if it is
not one). Keys are always the text as written, so ``on:`` is the key "on", not
True. Duplicate keys are refused rather than silently overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

NodePath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Pos:
    """1-based line and column of a node's first character."""

    line: int
    col: int


@dataclass(frozen=True, slots=True)
class YamlIssue:
    line: int
    col: int
    message: str


class YamlError(Exception):
    """The text is not YAML we accept; ``issues`` says where and why."""

    def __init__(self, issues: list[YamlIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i.line}:{i.col}: {i.message}" for i in issues))


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    """dicts (str keys, in file order), lists, str, int, float, bool and None."""
    values: Mapping[NodePath, Pos]
    keys: Mapping[NodePath, Pos]
    """For a mapping entry, where its key was written (path of the entry's value)."""

    def value_pos(self, path: NodePath) -> Pos:
        """Where the value at ``path`` was written, else its nearest written ancestor."""
        for prefix in _prefixes(path):
            if prefix in self.values:
                return self.values[prefix]
        return Pos(1, 1)

    def key_pos(self, path: NodePath) -> Pos:
        """Where the key of the entry at ``path`` was written, else :meth:`value_pos`."""
        return self.keys.get(path) or self.value_pos(path)


def _prefixes(path: NodePath) -> Iterator[NodePath]:
    for end in range(len(path), -1, -1):
        yield path[:end]


class _Loader(yaml.SafeLoader):
    """SafeLoader without base-60 numbers and timestamps (see the module docstring)."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}  # noqa: RUF012


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same resolvers on libyaml's parser: composing 1,000 rule files takes 0.35 s
    instead of 3.35 s. Its error messages are terser, so a file it refuses is parsed
    again with :class:`_Loader` to say what is wrong and where."""

    yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
    list("yYnNtTfFoO"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"
        r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


def _pos(node: Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def load_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raises :class:`YamlError` on syntax errors or duplicate keys."""
    try:
        return _load(_FastLoader(text))
    except YamlError:
        return _load(_Loader(text))


def _load(loader: Any) -> YamlDocument:
    builder = _Builder(loader)
    try:
        root = loader.get_single_node()
        data = None if root is None else builder.build(root, ())
    except yaml.MarkedYAMLError as exc:
        raise YamlError([_syntax_issue(exc)]) from exc
    except yaml.YAMLError as exc:
        raise YamlError([YamlIssue(1, 1, f"YAML syntax error: {exc}")]) from exc
    finally:
        loader.dispose()
    if builder.issues:
        raise YamlError(builder.issues)
    if root is None:
        return YamlDocument(None, {(): Pos(1, 1)}, {})
    return YamlDocument(data, builder.values, builder.keys)


def _syntax_issue(exc: yaml.MarkedYAMLError) -> YamlIssue:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or "invalid YAML"
    if "\\t" in problem or "\t" in problem:
        problem += "; indent with spaces, not tabs"
    if "another document" in problem:
        return YamlIssue(line, col, "a file holds one YAML document; remove the extra `---`")
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return YamlIssue(line, col, f"YAML syntax error: {problem}{context}")


class _Builder:
    """Turns composed nodes into plain values, recording positions on the way."""

    def __init__(self, loader: _Loader) -> None:
        self._loader = loader
        self._open: set[int] = set()
        self.values: dict[NodePath, Pos] = {}
        self.keys: dict[NodePath, Pos] = {}
        self.issues: list[YamlIssue] = []

    def build(self, node: Node, path: NodePath) -> Any:
        self.values[path] = _pos(node)
        if isinstance(node, ScalarNode):
            return self._loader.construct_object(node)
        # An alias may point back at a node that contains it; following it would never end.
        if id(node) in self._open:
            self.issues.append(_issue(_pos(node), "an alias refers to itself"))
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            return None
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: MappingNode, path: NodePath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_at = _pos(key_node)
            if not isinstance(key_node, ScalarNode):
                self.issues.append(_issue(key_at, "a key must be a plain word"))
                continue
            key = str(key_node.value)
            if key in result:
                first = self.keys[(*path, key)]
                self.issues.append(
                    _issue(
                        key_at,
                        f"duplicate key `{key}` (first written at line {first.line}); "
                        "each key may appear once in a mapping",
                    )
                )
                continue
            self.keys[(*path, key)] = key_at
            result[key] = self.build(value_node, (*path, key))
        return result


def _issue(pos: Pos, message: str) -> YamlIssue:
    return YamlIssue(pos.line, pos.col, message)
