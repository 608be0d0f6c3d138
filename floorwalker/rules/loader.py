"""Rule files in, a validated :class:`~floorwalker.rules.model.RuleSet` out.

A rules directory holds one rule per ``*.yaml`` / ``*.yml`` file, plus the
optional reserved files ``policy.yaml`` (guards across all rules) and
``vocabulary.yaml`` (zone tags and roles besides the built-in ones). Loading is
all or nothing: every problem of every file is collected and reported together,
and a directory with any problem yields no rule set at all, so a half-loaded set
can never replace the rules already running.

Loading never raises anything but :class:`~floorwalker.errors.RuleSetError`
(a running engine's reload catches exactly that): a file over
:data:`MAX_RULE_FILE_BYTES`, one that is not UTF-8, holds control characters,
YAML anchors or aliases, nests deeper than
:data:`~floorwalker.yamlpos.MAX_DEPTH` or is otherwise garbled is one
``file:line:col: message`` problem, and any unexpected failure while reading
one file becomes a problem of that file too (see :mod:`floorwalker.yamlpos`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from floorwalker.errors import RuleProblem, RuleSetError
from floorwalker.rules.compiler import compile_policy, compile_rule
from floorwalker.rules.model import Policy, Rule, RuleSet, SourceRef
from floorwalker.rules.problems import Issue, issues_from, to_problem
from floorwalker.rules.schema import (
    ACTION_KEYS,
    NO_ACTION_MESSAGE,
    PolicyFile,
    RuleFile,
    VocabularyFile,
)
from floorwalker.rules.vocabulary import DEFAULT_VOCABULARY, Vocabulary, closest
from floorwalker.yamlpos import YamlDocument, YamlError, read_yaml_file

if TYPE_CHECKING:
    from floorwalker.devices.registry import Registry

RULE_SUFFIXES = (".yaml", ".yml")
MAX_RULE_FILE_BYTES = 256 * 1024
"""Largest rule, policy or vocabulary file (the largest catalog rule is under 1 KiB)."""
POLICY_STEM = "policy"
VOCABULARY_STEM = "vocabulary"

log = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)
_RULE_KEYS = frozenset(f.alias or name for name, f in RuleFile.model_fields.items())


@dataclass
class _Parsed(Generic[_M]):
    """One file's outcome: its validated surface model, or the problems that prevented it."""

    file: str
    doc: YamlDocument | None = None
    spec: _M | None = None
    problems: list[RuleProblem] = field(default_factory=list)


# --------------------------------------------------------------------------- public API


def load_rule_file(path: str | Path, vocab: Vocabulary = DEFAULT_VOCABULARY) -> Rule:
    """Load one rule file; raises :class:`RuleSetError` listing each of its problems."""
    parsed = _parse_rule(Path(path), vocab)
    if parsed.spec is None or parsed.doc is None:
        raise RuleSetError(parsed.problems)
    rule = _compile(parsed)
    if isinstance(rule, RuleProblem):
        raise RuleSetError([rule])
    return rule


def load_rules(
    directory: str | Path, *, extra_tags: Iterable[str] = (), extra_roles: Iterable[str] = ()
) -> RuleSet:
    """Load a rules directory; raises :class:`RuleSetError` listing every problem of every file.

    ``extra_tags`` and ``extra_roles`` are the words store registries use besides the
    built-in vocabulary and ``vocabulary.yaml``.
    """
    rule_set, problems = _load_directory(Path(directory), extra_tags, extra_roles)
    if problems:
        raise RuleSetError(problems)
    return rule_set


def check_directory(
    directory: str | Path, *, extra_tags: Iterable[str] = (), extra_roles: Iterable[str] = ()
) -> list[RuleProblem]:
    """Every problem in a rules directory, by file, line and column (``floorwalker check``)."""
    return _load_directory(Path(directory), extra_tags, extra_roles)[1]


def load_vocabulary(
    directory: str | Path, *, extra_tags: Iterable[str] = (), extra_roles: Iterable[str] = ()
) -> Vocabulary:
    """The words a rules directory accepts: built-in, ``vocabulary.yaml`` (if any), extras."""
    root = Path(directory)
    vocab = DEFAULT_VOCABULARY.extended(zone_tags=extra_tags, roles=extra_roles)
    files = [root / f"{VOCABULARY_STEM}{suffix}" for suffix in RULE_SUFFIXES]
    problems: list[RuleProblem] = []
    vocab = _directory_vocabulary(
        _reserved([p for p in files if p.is_file()], VOCABULARY_STEM, problems), vocab, problems
    )
    if problems:
        raise RuleSetError(problems)
    return vocab


# --------------------------------------------------------------------------- directory


def _load_directory(
    root: Path, extra_tags: Iterable[str], extra_roles: Iterable[str]
) -> tuple[RuleSet, list[RuleProblem]]:
    try:
        files = sorted(
            p for p in root.iterdir() if p.suffix in RULE_SUFFIXES and not p.name.startswith(".")
        )
    except OSError as exc:
        problem = "is not a directory of rule files"
        if root.is_dir():
            problem = f"cannot be listed: {exc.strerror or exc}"
        return RuleSet(()), [RuleProblem(str(root), 1, 1, problem)]
    problems: list[RuleProblem] = []
    vocab = DEFAULT_VOCABULARY.extended(zone_tags=extra_tags, roles=extra_roles)
    vocab = _directory_vocabulary(_reserved(files, VOCABULARY_STEM, problems), vocab, problems)
    policy = _directory_policy(_reserved(files, POLICY_STEM, problems), problems)
    rules: list[Rule] = []
    ids: list[tuple[str, SourceRef]] = []
    for path in files:
        if path.stem in (POLICY_STEM, VOCABULARY_STEM):
            continue
        parsed = _parse_rule(path, vocab)
        problems.extend(parsed.problems)
        if parsed.doc is not None and (declared := _declared_id(parsed.file, parsed.doc)):
            ids.append(declared)
        if parsed.spec is not None and parsed.doc is not None:
            rule = _compile(parsed)
            if isinstance(rule, RuleProblem):
                problems.append(rule)
            else:
                rules.append(rule)
    problems.extend(_duplicate_ids(ids))
    problems.sort(key=lambda p: (p.file, p.line, p.col))
    return RuleSet(tuple(rules), policy), problems


def _reserved(files: list[Path], stem: str, problems: list[RuleProblem]) -> Path | None:
    found = [p for p in files if p.stem == stem]
    for extra in found[1:]:
        problems.append(
            RuleProblem(str(extra), 1, 1, f"{found[0].name} already exists; keep only one of them")
        )
    return found[0] if found else None


def _directory_vocabulary(
    path: Path | None, vocab: Vocabulary, problems: list[RuleProblem]
) -> Vocabulary:
    if path is None:
        return vocab
    parsed = _parse(path, VocabularyFile, empty_ok=True)
    problems.extend(parsed.problems)
    if parsed.spec is None:
        return vocab
    return vocab.extended(zone_tags=parsed.spec.zone_tags, roles=parsed.spec.roles)


def _directory_policy(path: Path | None, problems: list[RuleProblem]) -> Policy:
    if path is None:
        return Policy()
    parsed = _parse(path, PolicyFile, empty_ok=True)
    problems.extend(parsed.problems)
    if parsed.spec is None:
        return Policy()
    try:
        return compile_policy(parsed.spec)
    except Exception as exc:
        problems.append(_unexpected(parsed.file, exc))
        return Policy()


def _declared_id(file: str, doc: YamlDocument) -> tuple[str, SourceRef] | None:
    rule_id = doc.data.get("id") if isinstance(doc.data, dict) else None
    if not isinstance(rule_id, str):
        return None
    pos = doc.value_pos(("id",))
    return rule_id, SourceRef(file, pos.line, pos.col)


def _duplicate_ids(ids: list[tuple[str, SourceRef]]) -> list[RuleProblem]:
    where: dict[str, list[SourceRef]] = {}
    for rule_id, ref in ids:
        where.setdefault(rule_id, []).append(ref)
    problems: list[RuleProblem] = []
    for rule_id, refs in where.items():
        if len(refs) < 2:
            continue
        first, *others = refs
        also = ", ".join(str(ref) for ref in others)
        problems.append(_at(first, f"id: `{rule_id}` is also used by {also}; ids must be unique"))
        problems.extend(
            _at(ref, f"id: `{rule_id}` is already used by {first}; ids must be unique")
            for ref in others
        )
    return problems


def _at(ref: SourceRef, message: str) -> RuleProblem:
    return RuleProblem(ref.file, ref.line, ref.col, message)


# --------------------------------------------------------------------------- one file


def _parse_rule(path: Path, vocab: Vocabulary) -> _Parsed[RuleFile]:
    return _parse(path, RuleFile, context={"vocabulary": vocab}, also=_missing_action)


def _compile(parsed: _Parsed[RuleFile]) -> Rule | RuleProblem:
    assert parsed.doc is not None and parsed.spec is not None
    pos = parsed.doc.key_pos(("id",))
    try:
        return compile_rule(parsed.spec, parsed.doc.data, SourceRef(parsed.file, pos.line, pos.col))
    except Exception as exc:
        return _unexpected(parsed.file, exc)


def _unexpected(file: str, exc: Exception) -> RuleProblem:
    """A failure no check foresaw: still a problem of this file, never a traceback."""
    log.warning("unexpected failure loading %s", file, exc_info=exc)
    return RuleProblem(
        file, 1, 1, f"could not be read ({type(exc).__name__}); please report this file"
    )


def _missing_action(data: dict[str, Any]) -> list[Issue]:
    """The rule model checks for an action only once all else is valid; say it up front."""
    if any(key in data for key in ACTION_KEYS):
        return []
    unknown = [key for key in data if key not in _RULE_KEYS]
    if any(closest(key, ACTION_KEYS) for key in unknown):
        return []  # a misspelt `ofer:` is reported as such, with the suggestion
    return [Issue((), NO_ACTION_MESSAGE)]


def _parse(
    path: Path,
    model: type[_M],
    *,
    context: dict[str, Any] | None = None,
    empty_ok: bool = False,
    also: Callable[[dict[str, Any]], list[Issue]] | None = None,
) -> _Parsed[_M]:
    try:
        return _parse_checked(path, model, context=context, empty_ok=empty_ok, also=also)
    except Exception as exc:
        return _Parsed(str(path), problems=[_unexpected(str(path), exc)])


def _parse_checked(
    path: Path,
    model: type[_M],
    *,
    context: dict[str, Any] | None,
    empty_ok: bool,
    also: Callable[[dict[str, Any]], list[Issue]] | None,
) -> _Parsed[_M]:
    file = str(path)
    doc = _read_yaml(path)
    if isinstance(doc, RuleProblem):
        return _Parsed(file, problems=[doc])
    if isinstance(doc, list):
        return _Parsed(file, problems=doc)
    data = {} if doc.data is None and empty_ok else doc.data
    if not isinstance(data, dict):
        return _Parsed(file, doc, problems=[_not_a_mapping(file, doc, model)])
    try:
        spec = model.model_validate(data, context=context)
    except ValidationError as exc:
        issues = issues_from(exc, data, model)
        # A top-level key written further in (`offer:` under `when:`) is reported as
        # misplaced; the top-level check would only say the same thing less well.
        if also is not None and not any(i.home == () for i in issues):
            issues += also(data)
        return _Parsed(file, doc, problems=_problems(file, doc, issues))
    return _Parsed(file, YamlDocument(data, doc.values, doc.keys), spec)


def _read_yaml(path: Path) -> YamlDocument | RuleProblem | list[RuleProblem]:
    file = str(path)
    try:
        return read_yaml_file(path, max_bytes=MAX_RULE_FILE_BYTES, what="a rule file")
    except OSError as exc:
        return RuleProblem(file, 1, 1, f"cannot be read: {exc.strerror or exc}")
    except YamlError as exc:
        return [RuleProblem(file, i.line, i.col, i.message) for i in exc.issues]


def _not_a_mapping(file: str, doc: YamlDocument, model: type[BaseModel]) -> RuleProblem:
    pos = doc.value_pos(())
    if doc.data is None:
        return RuleProblem(
            file, pos.line, pos.col, "the file is empty; a rule needs `id`, `when` and an action"
        )
    example = "`id:`, `when:`" if model is RuleFile else "`key: value`"
    return RuleProblem(
        file, pos.line, pos.col, f"the file must be a mapping of keys such as {example}"
    )


def _problems(file: str, doc: YamlDocument, issues: list[Issue]) -> list[RuleProblem]:
    unique = dict.fromkeys(to_problem(file, doc, issue) for issue in issues)
    return sorted(unique, key=lambda p: (p.line, p.col))


def load_rules_for(directory: str | Path, registries: Mapping[str, Registry]) -> RuleSet:
    """Load a rules directory accepting the zone tags and staff roles of these stores."""
    tags = sorted({t for r in registries.values() for t in r.tags})
    roles = sorted({m.role for r in registries.values() for m in r.staff.values()})
    return load_rules(directory, extra_tags=tags, extra_roles=roles)
