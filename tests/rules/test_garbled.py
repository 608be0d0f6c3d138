"""Garbled rule files: each is one `file:line:col: message` problem, never a traceback.

The YAML-level refusals are tested in test_yamlpos.py; these go through the
loader (`load_rules`, `check_directory`, `floorwalker check`) as a reload does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from floorwalker.errors import RuleProblem, RuleSetError
from floorwalker.rules import loader
from floorwalker.rules.loader import MAX_RULE_FILE_BYTES, check_directory, load_rules
from floorwalker.rules.model import OfferSpec
from floorwalker.rules.schema import MAX_DURATION_S

CATALOG = Path(__file__).parents[2] / "floorwalker" / "rules" / "catalog"
BOGO = (CATALOG / "chilled-dwell-bogo.yaml").read_bytes()
POSITIONED = re.compile(r"^.+:\d+:\d+: \S")


def _laughs() -> bytes:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, 9)]
    return ("id: bomb\n" + "\n".join(lines) + "\n").encode()


GARBLED: dict[str, tuple[bytes, str]] = {
    "nul": (BOGO.replace(b"chilled-dwell", b"chilled\x00dwell", 1), "a NUL byte is not allowed"),
    "record separator": (BOGO.replace(b"chilled", b"chil\x1eled", 1), "control character U+001E"),
    "deep": (b"id: x\nwhen: " + b"[" * 2000 + b"]" * 2000 + b"\n", "nested more than"),
    "alias bomb": (_laughs(), "YAML anchors and aliases"),
    "utf-16": (BOGO.decode().encode("utf-16"), "is UTF-16 text"),
    "latin-1": (BOGO.replace(b"Buy", "Ach\xe9te".encode("latin-1"), 1), "byte 0xE9 is not UTF-8"),
    "inf": (BOGO.replace(b"at_least: 10s", b"at_least: .inf", 1), "`inf` is not a duration"),
    "nan": (BOGO.replace(b"cost: 1.20", b"cost: .nan", 1), "should be a finite number"),
    "1e300": (BOGO.replace(b"at_least: 10s", b"at_least: 1.0e+300", 1), "is too long"),
    "400d": (BOGO.replace(b"expires: 2h", b"expires: 400d", 1), "at most 366d"),
    "negative": (BOGO.replace(b"at_least: 10s", b"at_least: -5s", 1), "`-5s` is not a duration"),
    "huge int": (
        BOGO.replace(b"priority: 50", b"priority: " + b"9" * 4000, 1),
        "too large a number",
    ),
    "big int": (BOGO.replace(b"priority: 50", b"priority: 1" + b"0" * 20, 1), "too large a number"),
    "huge scalar": (BOGO.replace(b"Buy one", b"x" * 200_000, 1), "a value of 200,046 characters"),
    "tag": (BOGO.replace(b"chilled-dwell-bogo", b"!!binary aGk=", 1), "the tag `!!binary`"),
}


@pytest.mark.parametrize(("data", "message"), GARBLED.values(), ids=GARBLED.keys())
def test_each_garbled_file_is_one_positioned_problem(
    tmp_path: Path, data: bytes, message: str
) -> None:
    (tmp_path / "rule.yaml").write_bytes(data)
    started = time.monotonic()
    with pytest.raises(RuleSetError) as caught:
        load_rules(tmp_path)
    assert time.monotonic() - started < 5.0
    problems = caught.value.problems
    assert problems, "refused with at least one problem"
    for p in problems:
        assert POSITIONED.match(str(p)), p
        assert len(str(p)) < 400, "a huge value is clipped in the message"
    assert message in problems[0].message, problems


def test_a_bom_is_fine(tmp_path: Path) -> None:
    (tmp_path / "rule.yaml").write_bytes(b"\xef\xbb\xbf" + BOGO)
    assert [r.id for r in load_rules(tmp_path).rules] == ["chilled-dwell-bogo"]


def test_durations_up_to_a_year_are_fine(tmp_path: Path) -> None:
    (tmp_path / "rule.yaml").write_bytes(BOGO.replace(b"expires: 2h", b"expires: 366d", 1))
    (rule,) = load_rules(tmp_path).rules
    assert [a.expires_s for a in rule.actions if isinstance(a, OfferSpec)] == [MAX_DURATION_S]


def test_a_file_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "rule.yaml"
    path.write_bytes(BOGO + b"#" * MAX_RULE_FILE_BYTES)
    (problem,) = check_directory(tmp_path)
    assert (problem.line, problem.col) == (1, 1)
    assert "over the limit of 256 KiB for a rule file" in problem.message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_a_rule_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    (problem,) = check_directory(tmp_path)
    assert problem.message == "is not a regular file"


def test_an_unforeseen_failure_is_a_problem_of_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.yaml").write_bytes(BOGO)
    (tmp_path / "b.yaml").write_bytes(BOGO.replace(b"chilled-dwell-bogo", b"other", 1))

    def boom(*args: object) -> None:
        raise RecursionError("a bug")

    monkeypatch.setattr(loader, "compile_rule", boom)
    problems = check_directory(tmp_path)
    assert [(Path(p.file).name, p.line, p.col) for p in problems] == [
        ("a.yaml", 1, 1),
        ("b.yaml", 1, 1),
    ]
    assert "could not be read (RecursionError)" in problems[0].message

    monkeypatch.setattr(loader, "_read_yaml", boom)
    (problem, _) = check_directory(tmp_path)
    assert isinstance(problem, RuleProblem) and "RecursionError" in problem.message


def test_floorwalker_check_reports_every_garbled_file_and_exits_1(tmp_path: Path) -> None:
    for i, (data, _) in enumerate(GARBLED.values()):
        (tmp_path / f"r{i:02d}.yaml").write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "floorwalker.cli", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    files = {line.split(":", 1)[0] for line in done.stdout.splitlines()}
    assert files == {str(tmp_path / f"r{i:02d}.yaml") for i in range(len(GARBLED))}
    assert all(POSITIONED.match(line) for line in done.stdout.splitlines())
