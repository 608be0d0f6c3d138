"""Turn pydantic validation errors into problems a marketer can act on.

Pydantic reports *where in its types* a value failed (``loc``), in its own words.
A marketer needs *where in the file* and *what to write instead*. This module
maps each ``loc`` back onto the YAML data (dropping the union tags and list
indices pydantic adds for values that were written as a single item), then
rewrites the message as a sentence about the field path, with the nearest
allowed word as a suggestion.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from floorwalker.errors import RuleProblem
from floorwalker.rules.schema import ISSUE_TYPE
from floorwalker.rules.vocabulary import closest
from floorwalker.yamlpos import NodePath, YamlDocument


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem at a path of the YAML data, before it is given a line and column."""

    where: NodePath
    """The field the message is about (its dotted path prefixes the message)."""
    message: str
    suggestion: str | None = None
    at: NodePath | None = None
    """The node to point at, when it is not ``where`` itself."""
    key: bool = False
    """Point at the key of the entry at ``at`` rather than its value."""
    missing: str | None = None
    """For a missing key: its name."""
    home: NodePath | None = None
    """For a key written in the wrong place: the mapping it belongs in."""


def dotted(path: NodePath) -> str:
    """``("alert", "escalate", 1, "after")`` -> ``alert.escalate[1].after``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def to_problem(file: str, doc: YamlDocument, issue: Issue) -> RuleProblem:
    target = issue.where if issue.at is None else issue.at
    pos = doc.key_pos(target) if issue.key else doc.value_pos(target)
    where = dotted(issue.where)
    message = f"{where}: {issue.message}" if where and issue.home is None else issue.message
    if issue.home is not None:
        message += _directions(doc, issue.home, pos.line)
    suggestion = issue.suggestion
    if suggestion is not None and len(suggestion) > _QUOTED_CHARS:
        suggestion = None
    return RuleProblem(file, pos.line, pos.col, clip_quoted(message), suggestion)


_QUOTED_CHARS = 60


def clip_quoted(message: str) -> str:
    """Messages quote the offending value in backticks; a 100 KiB value is shown by its start."""
    parts = message.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the message as it is
        return message
    for i in range(1, len(parts), 2):
        if len(parts[i]) > _QUOTED_CHARS:
            parts[i] = parts[i][:_QUOTED_CHARS] + "…"
    return "`".join(parts)


def issues_from(exc: ValidationError, data: Any, model: type[BaseModel]) -> list[Issue]:
    issues = [_translate(error, data, model) for error in exc.errors(include_url=False)]
    # `at_leest: 10s` makes `at_least` missing too; the misspelling is the one to report.
    # So does `at_least` indented one level too little: the misplaced key is reported.
    misspelt = {(i.where, i.suggestion) for i in issues if i.key and i.suggestion}
    misspelt |= {(i.home, str(i.at[-1])) for i in issues if i.home is not None and i.at}
    return [i for i in issues if i.missing is None or (i.where, i.missing) not in misspelt]


def data_path(loc: Iterable[int | str], data: Any) -> NodePath:
    """The part of ``loc`` that names nodes of ``data``; union tags and the like drop out."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
    return tuple(path)


# --------------------------------------------------------------------------- messages

_EXPECTED = {
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "text",
    "list_type": "a list",
    "model_type": "a mapping of keys and values",
    "model_attributes_type": "a mapping of keys and values",
    "dict_type": "a mapping of keys and values",
}
_TARGET_NAMES = {"nearest", "advisor", "next"}
_BOUNDS = {
    "greater_than": ("gt", "more than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _translate(error: ErrorDetails, data: Any, model: type[BaseModel]) -> Issue:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    path = data_path(error["loc"], data)
    value = error["input"]
    if kind == ISSUE_TYPE:
        at = (*path, *ctx["at"])
        return Issue(path if ctx["key"] else at, ctx["message"], ctx["suggestion"], at, ctx["key"])
    if kind == "missing":
        return _missing(path, str(error["loc"][-1]), model)
    if kind == "extra_forbidden":
        return _unknown_key(path, model, data)
    if kind == "literal_error":
        return _not_allowed(path, value, re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    if kind == "target":
        return Issue(path, f"{error['msg']}, not {_show(value)}")
    if kind in _EXPECTED:
        return Issue(path, f"should be {_EXPECTED[kind]}, not {_show(value)}")
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return Issue(path, f"must be {words} {ctx[name]:g}, not {_show(value)}")
    if kind == "too_short":
        return Issue(path, f"needs at least {ctx['min_length']} value(s)")
    if kind == "string_too_short":
        return Issue(path, "must not be empty")
    return Issue(path, str(error["msg"]))


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _missing(path: NodePath, key: str, model: type[BaseModel]) -> Issue:
    field = next((f for m in models_at(model, path) if (f := _field(m, key))), None)
    purpose = (field.description or "").rstrip(".") if field else ""
    purpose = purpose[:1].lower() + purpose[1:]
    return Issue(path, f"missing `{key}`" + (f" ({purpose})" if purpose else ""), missing=key)


def _unknown_key(path: NodePath, model: type[BaseModel], data: Any) -> Issue:
    parent, key = path[:-1], str(path[-1])
    home = _home(model, data, parent, key)
    if home is not None:
        here = f"under `{dotted(parent)}`" if parent else "at the top level"
        there = f"under `{dotted(home)}`" if home else "at the top level"
        message = f"`{key}` is not allowed {here}; it belongs {there}"
        return Issue(parent, message, at=path, key=True, home=home)
    allowed = sorted({name for m in models_at(model, parent) for name in _keys(m)})
    listed = ", ".join(allowed) if allowed else "none"
    return Issue(
        parent,
        f"unknown key `{key}`; allowed here: {listed}",
        closest(key, allowed),
        at=path,
        key=True,
    )


def _not_allowed(path: NodePath, value: Any, allowed: list[str]) -> Issue:
    if value == "next" and "next" not in allowed:
        return Issue(
            path,
            "`next` (the next nearest staff member not yet alerted) only works inside "
            "`escalate`; the first alert goes to nearest, advisor or {role: NAME}",
        )
    hint = closest(value, allowed) if isinstance(value, str) else None
    if "nearest" in allowed and set(allowed) <= _TARGET_NAMES:
        # `to: manager` is the likeliest slip: a role written where a target goes.
        role = f"{{role: {value}}}" if isinstance(value, str) and hint is None else None
        options = ", ".join(allowed)
        return Issue(
            path,
            f"{_show(value)} is not someone to alert; use {options} or {{role: NAME}}",
            hint or role,
        )
    return Issue(path, f"{_show(value)} is not allowed; use one of {', '.join(allowed)}", hint)


# --------------------------------------------------------------------------- misplaced keys

_MAX_HOME_DEPTH = 6


def _home(model: type[BaseModel], data: Any, parent: NodePath, key: str) -> NodePath | None:
    """Where a key that is not allowed at ``parent`` most likely belongs, if anywhere.

    Mostly an indentation slip: `budget` indented under `when` instead of `limits`, or
    `at_least` one level out of its `dwell`. Of the mappings the key is allowed in, the
    one nearest to where it was written wins, preferring one the file already has.
    """
    best: tuple[int, int, NodePath] | None = None
    for home in _homes(model, key):
        node = _node(data, home)
        if isinstance(node, dict):
            if key in node:
                continue  # already given there: this one is not a slip of that one
            missing = 0
        elif (
            home
            and isinstance(_node(data, home[:-1]), dict)
            and home[-1] not in (_node(data, home[:-1]) or {})
        ):
            missing = 1  # its section is not written yet, but its parent is
        else:
            continue
        common = next(
            (i for i, (a, b) in enumerate(zip(home, parent, strict=False)) if a != b), None
        )
        shared = min(len(home), len(parent)) if common is None else common
        rank = (missing, len(home) + len(parent) - 2 * shared, home)
        if best is None or rank[:2] < best[:2]:
            best = rank
    return None if best is None else best[2]


def _homes(model: type[BaseModel], key: str) -> list[NodePath]:
    """Every mapping (reached through mappings, not lists) of ``model`` that allows ``key``."""
    found: list[NodePath] = []
    todo: list[tuple[type[BaseModel], NodePath]] = [(model, ())]
    while todo:
        current, path = todo.pop(0)
        if key in _keys(current) and path not in found:
            found.append(path)
        if len(path) >= _MAX_HOME_DEPTH:
            continue
        for name, info in current.model_fields.items():
            for member in _members(info.annotation):
                if _is_model(member):
                    todo.append((member, (*path, info.alias or name)))
    return found


def _node(data: Any, path: NodePath) -> Any:
    node = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _directions(doc: YamlDocument, home: NodePath, line: int) -> str:
    """` (2 lines up, indent 2)`: where to move a misplaced key to."""
    if not home:
        return " (indent 0)"
    if home not in doc.values:
        parent = f"under `{dotted(home[:-1])}`" if home[:-1] else "at the top level"
        return f", which is not written yet: add `{home[-1]}:` {parent}"
    key = doc.key_pos(home)
    children = [
        pos for path, pos in doc.keys.items() if len(path) == len(home) + 1 and path[:-1] == home
    ]
    rows = line - key.line
    if rows == 0:
        return f" (line {key.line})"
    lines = f"{abs(rows)} line{'s' if abs(rows) > 1 else ''} {'up' if rows > 0 else 'down'}"
    if any(pos.line == key.line for pos in children):
        return f" ({lines}, inside its braces on line {key.line})"
    indent = min((pos.col for pos in children), default=key.col + 2) - 1
    return f" ({lines}, indent {indent})"


# --------------------------------------------------------------------------- model lookup


def models_at(model: type[BaseModel], path: NodePath) -> list[type[BaseModel]]:
    """The models a mapping at ``path`` of a ``model`` document may be validated as."""
    candidates: list[Any] = [model]
    for part in path:
        candidates = [child for tp in candidates for child in _children(tp, part)]
    return [m for tp in candidates for m in _models(tp)]


def _members(tp: Any) -> list[Any]:
    """``tp`` without Annotated metadata, split into its union members."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _members(arg)]
    return [tp]


def _children(tp: Any, part: str | int) -> list[Any]:
    found: list[Any] = []
    for member in _members(tp):
        if get_origin(member) is list:
            item = get_args(member)[0]
            # A string part under a list: one item written without the list around it.
            found.extend([item] if isinstance(part, int) else _children(item, part))
        elif _is_model(member) and isinstance(part, str) and (field := _field(member, part)):
            found.append(field.annotation)
    return found


def _models(tp: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for member in _members(tp):
        if get_origin(member) is list:
            found.extend(_models(get_args(member)[0]))
        elif _is_model(member):
            found.append(member)
    return found


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _field(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return field
    return None
