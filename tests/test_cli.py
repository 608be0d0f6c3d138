"""The command line as a user runs it: `floorwalker check`, `replay`, `demo`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from floorwalker.cli import main

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "floorwalker" / "rules" / "catalog"
DATA = ROOT / "floorwalker" / "simulators" / "data"


def test_check_accepts_the_shipped_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(CATALOG)]) == 0
    assert "valid" in capsys.readouterr().err


def test_check_refuses_a_bad_rule_with_file_line_col_and_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.yaml").write_text((CATALOG / "service-bell.yaml").read_text())
    (tmp_path / "bad.yaml").write_text(
        "id: cold-promo\n"
        "when:\n"
        "  dwell: {zone_tag: chiled, at_least: 10s}\n"
        "offer: {id: x, message: hi, expires: 1h}\n"
    )
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"{tmp_path / 'bad.yaml'}:3:")
    assert "chiled" in out[0] and "chilled" in out[0]


def test_check_accepts_tags_from_a_registry(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "id: aquarium\nwhen:\n  dwell: {zone_tag: aquarium, at_least: 5s}\n"
        "offer: {id: fish, message: hi, expires: 1h}\n"
    )
    registry = tmp_path / "reg.yaml"
    registry.write_text("store: s9\ntimezone: UTC\nzones:\n  tanks: {tags: [aquarium]}\n")
    assert main(["check", str(rules)]) == 1
    assert main(["check", str(rules), "--registry", str(registry)]) == 0


def _replay(capture: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [
        sys.executable, "-m", "floorwalker.cli", "replay",
        "--registry", str(DATA / "demo-store.yaml"),
        "--profiles", str(DATA / "demo-profiles.jsonl"),
        "--rules", str(CATALOG),
        *extra, str(capture),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, check=False, timeout=120)


def test_replay_writes_actions_as_jsonl_and_a_summary() -> None:
    done = _replay(DATA / "demo-capture.jsonl")
    assert done.returncode == 0, done.stderr.decode()
    lines = [orjson.loads(x) for x in done.stdout.splitlines()]
    assert lines, "the demo capture should make the engine act"
    assert all(set(x) == {"at", "topic", "payload"} for x in lines)
    offers = [x for x in lines if x["topic"].endswith("/offer")]
    alerts = [x for x in lines if x["topic"].endswith("/alert")]
    assert offers and alerts
    assert all({"id", "ts", "rule", "offer", "code", "message", "expires"} <= set(o["payload"])
               for o in offers)  # fmt: skip
    assert len({o["payload"]["code"] for o in offers}) == len(offers)
    err = done.stderr.decode()
    assert "Per-rule summary" in err and "chilled-dwell-bogo" in err
    assert "invalid input" in err


def test_replay_is_deterministic() -> None:
    first = _replay(DATA / "demo-capture.jsonl")
    second = _replay(DATA / "demo-capture.jsonl")
    assert first.stdout == second.stdout and first.stdout


def test_replay_dead_letters_bad_input_and_keeps_going(tmp_path: Path) -> None:
    good = (DATA / "demo-capture.jsonl").read_bytes().splitlines()[:2000]
    bad = [
        b"not json at all",
        orjson.dumps({"topic": "fw/s001/bell/bell-nowhere", "payload": {"id": "x", "ts": 1.0}}),
        orjson.dumps({"topic": "fw/s999/bell/b", "payload": {"id": "x", "ts": 1.0}}),
        orjson.dumps({"topic": "fw/s001/pos/pos-1", "payload": '{"id": 3'}),
    ]
    capture = tmp_path / "mixed.jsonl"
    capture.write_bytes(b"\n".join(good[:1000] + bad + good[1000:]) + b"\n")
    done = _replay(capture, "--summary-json", str(tmp_path / "s.json"))
    assert done.returncode == 0, done.stderr.decode()
    dead = [orjson.loads(x) for x in done.stdout.splitlines() if b"/deadletter" in x]
    reasons = sorted(d["payload"]["reason"] for d in dead)
    assert reasons == ["malformed_json", "malformed_json", "unknown_device", "unknown_store"]
    summary = orjson.loads((tmp_path / "s.json").read_bytes())
    assert sum(summary["invalid"].values()) == 4
    assert summary["events_in"]["Sighting"] > 1000
    assert "pages" in summary
    for row in summary["rules"].values():
        if "staff" in row:
            assert {"answered", "unanswered", "response_target_s"} <= set(row["staff"])


def test_replay_reports_a_broken_rule_directory(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("id: x\nwhen: {dwel: {zone_tag: chilled}}\n")
    cmd = [
        sys.executable, "-m", "floorwalker.cli", "replay",
        "--registry", str(DATA / "demo-store.yaml"),
        "--profiles", str(DATA / "demo-profiles.jsonl"),
        "--rules", str(tmp_path), str(DATA / "demo-capture.jsonl"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, check=False, timeout=60)
    assert done.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:2:" in done.stderr.decode()
    assert done.stdout == b""


# --------------------------------------------------------------------------- replay in pieces


def _args(capture: Path, *extra: str) -> list[str]:
    return [
        "replay",
        "--registry", str(DATA / "demo-store.yaml"),
        "--profiles", str(DATA / "demo-profiles.jsonl"),
        "--rules", str(CATALOG),
        *extra, str(capture),
    ]  # fmt: skip


def test_replay_in_pieces_writes_what_one_replay_writes(tmp_path: Path) -> None:
    capture = DATA / "demo-capture.jsonl"
    one = _replay(capture)
    state = tmp_path / "state.fwrp"
    first = _replay(capture, "--until", "2026-11-23T08:37:30+08:00", "--save-state", str(state))
    assert first.returncode == 0, first.stderr.decode()
    err = first.stderr.decode()
    found = re.search(
        r"stopped at line (\d+) \(ts ([0-9.]+) > 1795394250\.0\); "
        r"continue with: tail -n \+(\d+) (\S+) > REST",
        err,
    )
    assert found, err
    k = int(found[1])
    assert found[3] == found[1] and found[4] == str(capture)
    assert "Per-rule summary" in err  # of this piece
    rest = tmp_path / "rest.jsonl"
    rest.write_bytes(b"".join(capture.read_bytes().splitlines(keepends=True)[k - 1 :]))
    second = _replay(rest, "--load-state", str(state))
    assert second.returncode == 0, second.stderr.decode()
    assert "warning" not in second.stderr.decode()
    assert first.stdout and second.stdout
    assert first.stdout + second.stdout == one.stdout


def test_replay_saved_at_the_end_of_a_capture_goes_on_with_the_next(tmp_path: Path) -> None:
    lines = (DATA / "demo-capture.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_bytes(b"".join(lines[:5000]))
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines[5000:]))
    state = tmp_path / "s"
    first = _replay(tmp_path / "a.jsonl", "--save-state", str(state))
    assert first.returncode == 0, first.stderr.decode()
    assert "without the tail" in first.stderr.decode()
    second = _replay(tmp_path / "b.jsonl", "--load-state", str(state))
    assert first.stdout + second.stdout == _replay(DATA / "demo-capture.jsonl").stdout


def test_replay_refuses_a_damaged_state_or_an_unknown_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = tmp_path / "c.jsonl"
    capture.write_bytes(b"".join((DATA / "demo-capture.jsonl").read_bytes().splitlines(True)[:300]))
    state = tmp_path / "state"
    assert main(_args(capture, "--until", "1795393820", "--save-state", str(state))) == 0
    good = state.read_bytes()
    capsys.readouterr()
    for name, data, message in [
        ("damaged", good[: len(good) // 3], "replay state is damaged"),
        ("other", b"PK\x03\x04 not ours", "not a Floorwalker replay state"),
        ("newer", good[:4] + b"\x00\x07" + good[6:], "schema version 7 is not one this build"),
    ]:
        bad = tmp_path / name
        bad.write_bytes(data)
        assert main(_args(capture, "--load-state", str(bad))) == 2
        out = capsys.readouterr()
        assert f"floorwalker: cannot load {bad}: " in out.err and message in out.err
        assert "Traceback" not in out.err and out.out == ""
    assert main(_args(capture, "--load-state", str(tmp_path / "missing"))) == 2
    assert "cannot read replay state" in capsys.readouterr().err


def test_replay_until_needs_save_state_and_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    capture = DATA / "demo-capture.jsonl"
    assert main(_args(capture, "--until", "1795394000")) == 2
    out = capsys.readouterr()
    assert "--until needs --save-state" in out.err and out.out == ""
    with pytest.raises(SystemExit) as exc:
        main(_args(capture, "--until", "2026-11-23T08:37:30", "--save-state", "x"))
    assert exc.value.code == 2
    assert "no UTC offset" in capsys.readouterr().err


def test_replay_help_explains_the_pieces(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--until TS" in text and "--load-state FILE" in text
    assert "tail -n +K" in text and "a batch's first item" in text
