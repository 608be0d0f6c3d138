"""The cluster runner against replay: the same capture gives the same actions.

A three-store capture (the demo store cloned, traffic from the simulator) goes
through ``floorwalker kafka load`` into a real Kafka-protocol broker (tansu, in
memory), two event-time ``floorwalker worker`` processes share its partitions,
and ``floorwalker kafka actions`` must print, store by store and in order,
exactly what ``floorwalker replay --tail 0`` prints for that store up to the
store's last event (a worker's store clock never passes its own events), however
the partitions fell between the workers.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from floorwalker import services
from floorwalker.engine.runners.cluster.tansu import tansu

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "floorwalker" / "simulators" / "data"
CATALOG = ROOT / "floorwalker" / "rules" / "catalog"
FLOORWALKER = [sys.executable, "-m", "floorwalker.cli"]
STORES = ("s001", "s002", "s003")
PARTITIONS = 8
_ASSIGNED = re.compile(r"floorwalker worker: assigned partitions \[([0-9, ]*)\]")


def _fw(*args: str | Path | int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*FLOORWALKER, *map(str, args)], capture_output=True, check=False, timeout=120
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    with tansu(tmp_path / "tansu.log") as address:
        yield address


def _registries(tmp_path: Path) -> list[Path]:
    text = (DATA / "demo-store.yaml").read_text()
    paths = []
    for store in STORES:
        path = tmp_path / f"{store}.yaml"
        path.write_text(re.sub(r"(?m)^store: s001$", f"store: {store}", text))
        paths.append(path)
    return paths


def _last_ts(capture: Path) -> dict[str, float]:
    last: dict[str, float] = {}
    for line in capture.read_bytes().splitlines():
        record = orjson.loads(line)
        store = record["topic"].split("/")[1]
        payload = record["payload"]
        for item in payload if isinstance(payload, list) else [payload]:
            last[store] = max(last.get(store, 0.0), float(item["ts"]))
    return last


def _by_store(lines: bytes) -> dict[str, list[dict[str, object]]]:
    """Each store's actions as the bridge would publish them: a repeat of a topic, action
    id and step (re-sent after a move: the topic is at least once) is dropped."""
    out: dict[str, list[dict[str, object]]] = defaultdict(list)
    seen: set[tuple[str, str, str]] = set()
    for line in lines.splitlines():
        record = orjson.loads(line)
        payload = record["payload"]
        key = (record["topic"], str(payload.get("id")), str(payload.get("step", "")))
        if key in seen:
            continue
        seen.add(key)
        out[record["topic"].split("/")[1]].append(record)
    return out


def _replay_per_store(
    tmp_path: Path, capture: Path, registries: list[Path], profiles: Path
) -> dict[str, list[dict[str, object]]]:
    """``floorwalker replay --tail 0`` of each store's lines of the capture, with its registry.

    One replay per store, as each worker runs one engine per store: a store's clock is
    its own events'. (A replay of all the stores at once would move one clock over
    them; it also trips over ``Engine.drain`` when two stores act on one step: the
    second ``take_outbox`` of a store that acted twice is empty, StopIteration.)
    """
    lines = capture.read_bytes().splitlines(keepends=True)
    out: dict[str, list[dict[str, object]]] = {}
    for store, registry in zip(STORES, registries, strict=True):
        part = tmp_path / f"capture-{store}.jsonl"
        part.write_bytes(
            b"".join(li for li in lines if li.startswith(b'{"topic":"fw/%s/' % store.encode()))
        )
        done = _fw(
            "replay", "--registry", registry, "--profiles", profiles,
            "--rules", CATALOG, "--tail", "0", part,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        out[store] = _by_store(done.stdout).get(store, [])
    return out


def _assignments(log: Path) -> list[int] | None:
    found = _ASSIGNED.findall(log.read_text(errors="replace"))
    if not found:
        return None
    return [int(p) for p in found[-1].split(",") if p.strip()]


def _start_worker(
    i: int, tmp_path: Path, address: str, registries: list[Path], store_args: list[str]
) -> subprocess.Popen[bytes]:
    common = [a for r in registries for a in ("--registry", str(r))]
    common += ["--rules", str(CATALOG), "--partitions", str(PARTITIONS), *store_args]
    datadir = tmp_path / f"w{i}"
    with (tmp_path / f"worker-{i}.log").open("wb") as out:
        return subprocess.Popen(
            [*FLOORWALKER, "worker", "--kafka", address, *common, f"--datadir={datadir}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _workers(
    n: int, tmp_path: Path, address: str, registries: list[Path], profiles: Path
) -> Iterator[list[Path]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(n):
            procs.append(
                _start_worker(i, tmp_path, address, registries, ["--profiles", str(profiles)])
            )
        yield [tmp_path / f"worker-{i}.log" for i in range(n)]
    finally:
        _stop(procs)


def _wait_shared(logs: list[Path], timeout_s: float) -> list[list[int]]:
    """Until every worker holds some partitions and together they hold each once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        parts = [_assignments(log) for log in logs]
        if all(parts):
            flat = sorted(p for ps in parts if ps for p in ps)
            if flat == list(range(PARTITIONS)):
                return [ps or [] for ps in parts]
        time.sleep(0.2)
    tails = "\n".join(log.read_text(errors="replace")[-2000:] for log in logs)
    raise AssertionError(f"the workers did not share the partitions:\n{tails}")


Expected = dict[str, list[dict[str, object]]]


def _setup(tmp_path: Path) -> tuple[list[Path], Path, Path, Expected]:
    """Registries, a capture and profiles, and what replay does per store up to its end."""
    registries = _registries(tmp_path)
    capture, profiles = tmp_path / "capture.jsonl", tmp_path / "profiles.jsonl"
    sim = _fw(
        "simulate", "--registry", registries[0], "--stores", len(STORES),
        "--shoppers", 8, "--minutes", 4, "--seed", 5,
        "--capture", capture, "--profiles-out", profiles,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr.decode()
    last = _last_ts(capture)
    assert sorted(last) == list(STORES)
    want = {
        store: [r for r in records if float(r["at"]) <= last[store]]  # type: ignore[arg-type]
        for store, records in _replay_per_store(tmp_path, capture, registries, profiles).items()
    }
    assert sum(map(len, want.values())) > 20, "the capture makes the engine act"
    return registries, capture, profiles, want


def test_two_workers_give_the_actions_of_replay(tmp_path: Path, broker: str) -> None:
    registries, capture, profiles, want = _setup(tmp_path)
    with _workers(2, tmp_path, broker, registries, profiles) as logs:
        _wait_shared(logs, timeout_s=40)
        load = _fw("kafka", "load", "--kafka", broker, "--partitions", PARTITIONS, capture)
        assert load.returncode == 0, load.stderr.decode()
        actions = _fw("kafka", "actions", "--kafka", broker, "--idle", "6s", "--wait", "30s")
        assert actions.returncode == 0, actions.stderr.decode()
    got = _by_store(actions.stdout)
    for store in STORES:
        assert got.get(store, []) == want.get(store, []), store


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_a_worker_that_stops_hands_its_stores_over(
    tmp_path: Path, broker: str, redis_service: services.RunningService, how: str
) -> None:
    """Worker 0 takes every partition and stops after the first third of the capture;
    worker 1 goes on from the state table (guards and profiles in Redis, shared): still
    replay's actions. SIGTERM checkpoints on the way out; ``kill -9`` does not (worker 1
    restores the last periodic checkpoint and takes the records after it again; what
    it decides again carries the same ids, which the bridge drops). Either way worker
    1 gets every record after the checkpoint: none is fetched and thrown away at the
    end of its recovery (docs/cluster.md, "Handoff")."""
    registries, capture, profiles, want = _setup(tmp_path)
    redis = ["--redis", redis_service.url, "--redis-prefix", f"fw-handoff-{time.time_ns()}:"]
    imported = _fw("profiles", "import", profiles, *redis)
    assert imported.returncode == 0, imported.stderr.decode()
    lines = capture.read_bytes().splitlines(keepends=True)
    parts = [tmp_path / "part-1.jsonl", tmp_path / "part-2.jsonl"]
    parts[0].write_bytes(b"".join(lines[: len(lines) // 3]))
    parts[1].write_bytes(b"".join(lines[len(lines) // 3 :]))
    total = sum(map(len, want.values()))
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    procs = [_start_worker(0, tmp_path, broker, registries, redis)]
    try:
        _wait_shared(logs[:1], timeout_s=40)
        load = _fw("kafka", "load", "--kafka", broker, "--partitions", PARTITIONS, parts[0])
        assert load.returncode == 0, load.stderr.decode()
        # Stopped soon after its first actions, mostly with records decided since its
        # last checkpoint: their presses and receipts are in the shared guards already.
        seen = _fw("kafka", "actions", "--kafka", broker, "--idle", "0.2s", "--wait", "20s")
        assert seen.stdout, "worker 0 acted on the first part"
        if how == "kill9":
            procs[0].kill()
            procs[0].wait()
        _stop(procs)
        load = _fw("kafka", "load", "--kafka", broker, "--partitions", PARTITIONS, parts[1])
        assert load.returncode == 0, load.stderr.decode()
        before = _fw("kafka", "actions", "--kafka", broker, "--idle", "1s", "--wait", "5s")
        assert 0 < len(before.stdout.splitlines()) < total
        procs.append(_start_worker(1, tmp_path, broker, registries, redis))
        _wait_shared(logs[1:], timeout_s=60)
        actions = _actions_until(broker, total, timeout_s=90)
    finally:
        _stop(procs)
    # Kept for a failing run's post-mortem (pytest --basetemp keeps the directory).
    (tmp_path / "actions.jsonl").write_bytes(actions)
    (tmp_path / "actions-before.jsonl").write_bytes(before.stdout)
    got = _by_store(actions)
    text = logs[1].read_text(errors="replace")
    assert re.search(r"ready, partitions .*, [1-9][0-9]* store\(s\) restored", text), text[-2000:]
    assert "never delivered" not in text, text[-2000:]
    for store in STORES:
        mine = got.get(store, [])
        if how == "kill9":
            mine = _first_of_each(mine)
        assert mine == want.get(store, []), store


def _actions_until(broker: str, total: int, timeout_s: float) -> bytes:
    """The actions topic once it holds ``total`` distinct actions (or at the deadline),
    read again after 6 s without a record, so an extra one still shows.

    After a ``kill -9`` the dead worker stays in the group until its session times
    out, and the rebalance that follows can hold worker 1 back for seconds after
    its first assignment: an idle reader alone would stop before it starts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = _fw("kafka", "actions", "--kafka", broker, "--idle", "1s", "--wait", "5s")
        assert seen.returncode == 0, seen.stderr.decode()
        if sum(map(len, _by_store(seen.stdout).values())) >= total:
            break
        time.sleep(1.0)
    done = _fw("kafka", "actions", "--kafka", broker, "--idle", "6s", "--wait", "30s")
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _first_of_each(records: list[dict[str, object]]) -> list[dict[str, object]]:
    """The records without repeats (what the bridge's dedup lets through)."""
    seen: set[bytes] = set()
    out = []
    for record in records:
        key = orjson.dumps(record)
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out
