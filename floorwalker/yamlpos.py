"""Load YAML into plain Python values, remembering where every key and value was written.

Rule files are checked long after PyYAML has forgotten the text, so this module
keeps a 1-based line and column for each node, addressed by its path from the
root (``("when", "dwell", "at_least")``, ``("alert", "escalate", 1)``).

Scalars follow YAML 1.1 as PyYAML reads it, with two exceptions that bite rule
authors: ``10:00`` stays the text "10:00" instead of the base-60 number 600, and
``2024-05-01`` stays text (the schema turns it into a date and says so if it is
not one). Keys are always the text as written, so ``on:`` is the key "on", not
True. Duplicate keys are refused rather than silently overwritten.

Rule and registry files are written by people, and a garbled one must be refused
with a position, in bounded time and memory, never with a traceback:

* :func:`read_yaml_file` reads at most ``max_bytes`` (the caller's stated cap) and
  decodes strictly as UTF-8, a leading BOM allowed; UTF-16/32 text and stray
  Latin-1 bytes are refused with the line and column of the first bad byte;
* control characters other than tab, line feed and carriage return are refused
  with their line and column (YAML forbids them; PyYAML's own error has no
  position);
* anchors and aliases (``&name``, ``*name``) are refused outright, so an alias
  "billion laughs" bomb costs nothing: rule files never need them, and writing a
  value out in full is clearer for the next reader;
* mappings and lists nest at most :data:`MAX_DEPTH` deep (rule files use about 6);
* a key or value holds at most :data:`MAX_SCALAR_CHARS` characters;
* a scalar is one of text, number, true/false or null: an explicit tag such as
  ``!!binary`` is refused, and so is a whole number beyond :data:`MAX_INT`
  (what JSON and the Lua scripts of the guard store hold exactly);
* the terse libyaml parser does the work; a file it refuses is parsed again with
  the pure-Python parser only when it is at most :data:`EXPLAIN_MAX_CHARS` long,
  which bounds the time a refusal takes.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

NodePath = tuple[str | int, ...]

MAX_DEPTH = 32
"""Deepest nesting of mappings and lists (the top-level mapping is depth 1)."""
MAX_SCALAR_CHARS = 4096
"""Longest key or value (an offer message is a sentence; a store's id a word)."""
MAX_INT = 2**53
"""Largest whole number (either sign) a file may hold."""
EXPLAIN_MAX_CHARS = 16 * 1024
"""Files up to this long that libyaml refuses are parsed again for a better message."""
ANCHOR_MESSAGE = (
    "YAML anchors and aliases (`&name`, `*name`) are not allowed; write the value out in full"
)
DEPTH_MESSAGE = f"nested more than {MAX_DEPTH} levels deep; a rule or registry needs far fewer"
_SCALAR_TYPES = (str, int, float, bool, type(None))
# YAML's printable set (as PyYAML's reader checks it) without NEL (U+0085): tab,
# LF and CR are the only control characters a file may hold.
_NOT_ALLOWED = re.compile(r"[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SHOWN_CHARACTERS = 5
_BREAKS = re.compile(r"\r\n|\r|\n")


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

    def __init__(self, issues: list[YamlIssue], *, syntax: bool = False) -> None:
        self.issues = issues
        self.syntax = syntax
        """A syntax error as libyaml words it: parsing again in Python may say it better."""
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


class _Refused(yaml.MarkedYAMLError):
    """Something this module refuses although YAML allows it; the message is ours."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(problem=message, problem_mark=mark)


class _Loader(yaml.SafeLoader):
    """SafeLoader without base-60 numbers and timestamps (see the module docstring),
    refusing anchors, aliases and deep nesting while it composes."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}  # noqa: RUF012

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(event.start_mark, ANCHOR_MESSAGE)
        # The composer recurses once per level: refuse before Python's stack runs out.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark, DEPTH_MESSAGE)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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


# --------------------------------------------------------------------------- files and text


def read_yaml_file(path: Path, *, max_bytes: int, what: str = "a file") -> YamlDocument:
    """Read, decode and parse one YAML file of at most ``max_bytes`` bytes.

    Raises :class:`YamlError` for everything wrong with the content (too big, not
    a regular file, not UTF-8, refused YAML) and :class:`OSError` when the file
    cannot be opened or read at all. ``what`` names the file in the size message
    ("a rule file").
    """
    return load_yaml(decode_text(read_capped(path, max_bytes=max_bytes, what=what)))


def read_capped(path: Path, *, max_bytes: int, what: str = "a file") -> bytes:
    """The bytes of a regular file, refusing one over ``max_bytes`` without reading it all."""
    # O_NONBLOCK: opening a FIFO named like a rule file must not hang a reload.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise YamlError([YamlIssue(1, 1, "is not a regular file")])
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        size = max(info.st_size, len(data))
        raise YamlError(
            [YamlIssue(1, 1, f"is {_size(size)}, over the limit of {_size(max_bytes)} for {what}")]
        )
    return data


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n:,} bytes"


_OTHER_ENCODINGS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def decode_text(data: bytes) -> str:
    """Strict UTF-8 (a leading BOM is dropped); :class:`YamlError` with a position otherwise."""
    for bom, name in _OTHER_ENCODINGS:
        if data.startswith(bom):
            raise YamlError([YamlIssue(1, 1, f"is {name} text; save the file as UTF-8")])
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    head = data[:256]
    if head and head.count(0) * 4 >= len(head):
        # NUL is valid UTF-8 but never in YAML: this many is UTF-16/32 without a BOM.
        raise YamlError([YamlIssue(1, 1, "is UTF-16 or UTF-32 text; save the file as UTF-8")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        col = len(data[start : exc.start].decode("utf-8", errors="replace")) + 1
        bad = data[exc.start]
        looks = " (the file looks like UTF-16 text)" if b"\x00" in data[:64] else ""
        if not looks and bad >= 0x80:
            looks = " (perhaps Latin-1 or Windows-1252 text)"
        message = f"byte 0x{bad:02X} is not UTF-8{looks}; save the file as UTF-8"
        raise YamlError([YamlIssue(line, col, message)]) from None


def _control_characters(text: str) -> list[YamlIssue]:
    issues: list[YamlIssue] = []
    found = _NOT_ALLOWED.finditer(text)
    for match in found:
        if len(issues) == _SHOWN_CHARACTERS:
            more = sum(1 for _ in found) + 1
            issues.append(_issue(issues[-1], f"and {more} more such character(s)"))
            break
        line, col = _line_col(text, match.start())
        char = match.group()
        name = "a NUL byte" if char == "\x00" else f"control character U+{ord(char):04X}"
        issues.append(
            YamlIssue(line, col, f"{name} is not allowed; only tab and line breaks may be used")
        )
    return issues


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, counting line breaks as YAML does."""
    line, start = 1, 0
    for brk in _BREAKS.finditer(text, 0, index):
        line, start = line + 1, brk.end()
    return line, index - start + 1


# --------------------------------------------------------------------------- parsing


def load_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raises :class:`YamlError` on syntax errors or duplicate keys,
    and on anything the module docstring lists as refused."""
    if issues := _control_characters(text):
        raise YamlError(issues)
    if "&" in text or "*" in text:
        _prescan(text)
    try:
        return _load(_FastLoader, text)
    except YamlError as exc:
        # Only libyaml's syntax errors are worth a second, slower parse: every other
        # issue has the same position and words in both.
        if not exc.syntax or len(text) > EXPLAIN_MAX_CHARS:
            raise
        # Deep nesting before the error would make the Python scanner slow (it
        # rechecks every open level per token); libyaml's events find it first.
        _prescan(text)
        return _load(_Loader, text)


def _prescan(text: str) -> None:
    """Refuse the first anchor, alias or too deep node, from libyaml's events.

    libyaml composes an alias as the anchored node itself, so the nodes cannot
    tell where an anchor was written; its events can. A syntax error ends the
    scan silently: composing reports it.
    """
    loader = _FastLoader(text)
    depth = 0
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, CollectionEndEvent):
                depth -= 1
                continue
            if not isinstance(event, NodeEvent):
                continue
            if isinstance(event, AliasEvent) or event.anchor is not None:
                raise YamlError([_mark_issue(event.start_mark, ANCHOR_MESSAGE)])
            if depth + 1 > MAX_DEPTH:
                raise YamlError([_mark_issue(event.start_mark, DEPTH_MESSAGE)])
            if isinstance(event, CollectionStartEvent):
                depth += 1
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def _load(loader_class: type[Any], text: str) -> YamlDocument:
    try:
        loader = loader_class(text)
    except yaml.YAMLError as exc:  # the reader refused the text (no position)
        raise YamlError([YamlIssue(1, 1, f"YAML syntax error: {exc}")]) from exc
    builder = _Builder(loader)
    try:
        root = loader.get_single_node()
        data = None if root is None else builder.build(root, ())
    except _Refused as exc:
        raise YamlError([_mark_issue(exc.problem_mark, str(exc.problem))]) from exc
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in str(exc.problem):
            _prescan(text)  # says where the nesting went past MAX_DEPTH
            raise YamlError([_mark_issue(exc.problem_mark, DEPTH_MESSAGE)]) from exc
        raise YamlError([_syntax_issue(exc)], syntax=True) from exc
    except yaml.YAMLError as exc:
        raise YamlError([YamlIssue(1, 1, f"YAML syntax error: {exc}")], syntax=True) from exc
    finally:
        loader.dispose()
    if builder.issues:
        raise YamlError(builder.issues)
    if root is None:
        return YamlDocument(None, {(): Pos(1, 1)}, {})
    return YamlDocument(data, builder.values, builder.keys)


def _mark_issue(mark: Any, message: str) -> YamlIssue:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return YamlIssue(line, col, message)


def _syntax_issue(exc: yaml.MarkedYAMLError) -> YamlIssue:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    if "\\t" in problem or "\t" in problem:
        problem += "; indent with spaces, not tabs"
    if "another document" in problem:
        return _mark_issue(mark, "a file holds one YAML document; remove the extra `---`")
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return _mark_issue(mark, f"YAML syntax error: {problem}{context}")


class _Builder:
    """Turns composed nodes into plain values, recording positions on the way."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._seen: set[int] = set()
        self.values: dict[NodePath, Pos] = {}
        self.keys: dict[NodePath, Pos] = {}
        self.issues: list[YamlIssue] = []

    def build(self, node: Node, path: NodePath) -> Any:
        at = _pos(node)
        self.values[path] = at
        # A node reached twice was written once and referred to by an alias; this
        # also stops an alias that refers back to a node containing it.
        if id(node) in self._seen:
            self.issues.append(_issue(at, ANCHOR_MESSAGE))
            return None
        self._seen.add(id(node))
        if len(path) >= MAX_DEPTH:
            self.issues.append(_issue(at, DEPTH_MESSAGE))
            return None
        if isinstance(node, ScalarNode):
            return self._scalar(node, at)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        return None

    def _scalar(self, node: ScalarNode, at: Pos) -> Any:
        if len(node.value) > MAX_SCALAR_CHARS:
            self.issues.append(_issue(at, _too_long(node.value)))
            return None
        try:
            value = self._loader.construct_object(node)
        except yaml.YAMLError:
            raise
        except Exception:  # e.g. `!!bool x`, or an int of more than 4,300 digits
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            message = f"`{_clip(node.value)}` cannot be read as `{tag}`"
            if node.tag == "tag:yaml.org,2002:int" and len(node.value) > len(str(MAX_INT)):
                message = f"`{_clip(node.value)}` has too many digits for a number"
            self.issues.append(_issue(at, message + "; write it in quotes if it is text"))
            return None
        if not isinstance(value, _SCALAR_TYPES):
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            message = f"the tag `{tag}` is not allowed; write plain text or numbers"
            self.issues.append(_issue(at, message))
            return None
        if type(value) is int and not -MAX_INT <= value <= MAX_INT:
            self.issues.append(
                _issue(
                    at,
                    f"`{_clip(node.value)}` is too large a number (at most {MAX_INT:,}); "
                    "write it in quotes if it is a name",
                )
            )
            return None
        return value

    def _mapping(self, node: MappingNode, path: NodePath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_at = _pos(key_node)
            if not isinstance(key_node, ScalarNode):
                self.issues.append(_issue(key_at, "a key must be a plain word"))
                continue
            key = str(key_node.value)
            if len(key) > MAX_SCALAR_CHARS:
                self.issues.append(_issue(key_at, _too_long(key)))
                continue
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


def _issue(pos: Pos | YamlIssue, message: str) -> YamlIssue:
    return YamlIssue(pos.line, pos.col, message)


def _too_long(text: str) -> str:
    return f"a value of {len(text):,} characters is over the limit of {MAX_SCALAR_CHARS:,}"


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
