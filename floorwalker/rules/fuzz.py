"""Fuzzing the rule loader, the registry loader and the wire decoder.

Garbled input in, a refusal out: never a traceback, never a hang, never a
runaway allocation. Each target takes mutated copies of real inputs (the rule
catalog, the demo registry, wire payloads built from it) and checks the
contract of its loader:

* ``rules``: :func:`~floorwalker.rules.loader.load_rules` on a directory holding
  one mutated rule (and sometimes a mutated ``policy.yaml``) returns a rule set
  or raises :class:`~floorwalker.errors.RuleSetError` whose every problem reads
  ``file:line:col: message``;
* ``registry``: :func:`~floorwalker.devices.registry.load_registry` returns a
  registry or raises :class:`~floorwalker.errors.ConfigError` naming the file;
* ``decoder``: :meth:`~floorwalker.devices.decode.Decoder.decode` returns events
  and rejections with a known reason.

Any other exception is a failure, and so is a refusal that only the safety nets
produced ("could not be read (XxxError)" from a loader, "the decoder could not
read this message" from the decoder): those hide a bug. So is one input taking
more than ``--slow`` seconds.

Run it for a while (``python -m floorwalker.rules.fuzz --minutes 10``); it
prints what it tried and found, and writes each failing input to ``--save``.
The CI test (tests/rules/test_fuzz.py) drives the same mutations from
hypothesis for a few hundred inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import random
import re
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from floorwalker.devices.decode import Decoder
from floorwalker.devices.events import REJECTION_REASONS, Rejection
from floorwalker.devices.registry import Registry, load_registry
from floorwalker.devices.topics import (
    ack_topic,
    beacon_topic,
    bell_topic,
    deadletter_topic,
    pos_topic,
    status_topic,
)
from floorwalker.errors import ConfigError, RuleSetError
from floorwalker.rules.loader import load_rules

PACKAGE = Path(__file__).resolve().parents[1]
CATALOG = PACKAGE / "rules" / "catalog"
DEMO_REGISTRY = PACKAGE / "simulators" / "data" / "demo-store.yaml"
TARGETS = ("rules", "registry", "decoder")
POSITIONED = re.compile(r"^.+:\d+:\d+: \S")
_DIGITS = re.compile(r"#x[0-9a-fA-F]+|0x[0-9a-fA-F]+|\d+")
SAFETY_NET = ("could not be read (", "the decoder could not read this message")

# --------------------------------------------------------------------------- mutations


def _laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


SNIPPETS: tuple[str, ...] = (
    # characters YAML or the loaders must refuse or survive
    "\x00", "\x01", "\x1e", "\x7f", "\x85", "\ufeff", "\u2028", "\t", "\r", "\r\n", "é", "😀",
    # YAML features the loaders refuse
    "&a ", "*a", "&a [1, 2]", "<<: *a\n", "!!binary aGk=", "!!python/object:os.system x",
    "!!timestamp 2001-12-14", "!!int x", "!!float .x", "!!set {a}", "!!str", "!custom x",
    "%YAML 1.1\n", "---\n", "...\n", "? ", ": ", "- ", "|", ">", "#", '"', "'", "`", "{", "}",
    "[", "]", ",", "[" * 40, "{a: " * 40, "- " * 40,
    # numbers and durations at the edges
    ".inf", "-.inf", ".nan", "1e300", "1.0e+300", "1.0e+400", "-5s", "0s", "0", "-1",
    "1e300s", "9" * 30, "9" * 5000, "0x" + "f" * 20, "0b1", "0o7", "1_000", "10:00",
    "2024-13-45", "366d", "367d", "100000000d", "1h30m", "1.5.5s",
    # values of the wrong kind
    "~", "null", "yes", "off", "[]", "{}", "x" * 5000, "{zone}", "{nope}", "{", "}}",
    "role: manager", "to: next", "per: campaign", "zone_tag: [chilled, chilled]",
)  # fmt: skip
NUMBERS: tuple[str, ...] = (".inf", ".nan", "1e300", "1.0e+300", "-5", "0", "9" * 40, "1.5")
ENCODINGS = ("utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252")
WORD = re.compile(rb"[A-Za-z0-9_.:+-]+")


def _pos(rng: random.Random, data: bytes) -> int:
    return rng.randrange(len(data) + 1)


def _insert(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    at = _pos(rng, data)
    return data[:at] + rng.choice(SNIPPETS).encode() + data[at:]


def _replace_word(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    words = list(WORD.finditer(data))
    if not words:
        return _insert(rng, data, seeds)
    m = rng.choice(words)
    new = rng.choice(NUMBERS if rng.random() < 0.3 else SNIPPETS).encode()
    return data[: m.start()] + new + data[m.end() :]


def _delete(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    a = _pos(rng, data)
    return data[:a] + data[a + rng.randint(1, 40) :]


def _duplicate(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    a = _pos(rng, data)
    piece = data[a : a + rng.randint(1, 200)]
    b = _pos(rng, data)
    return data[:b] + piece * rng.randint(1, 8) + data[b:]


def _flip(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    at = rng.randrange(len(data))
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]


def _splice(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    other = rng.choice(seeds)
    a, b = _pos(rng, data), _pos(rng, other)
    return data[:a] + other[b : b + rng.randint(1, 400)] + data[a:]


def _swap_lines(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    lines = data.split(b"\n")
    if len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _indent(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    lines = data.split(b"\n")
    i = rng.randrange(len(lines))
    lines[i] = b" " * rng.randint(1, 6) + lines[i] if rng.random() < 0.5 else lines[i].lstrip()
    return b"\n".join(lines)


def _reencode(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    text = data.decode("utf-8", errors="replace")
    return text.encode(rng.choice(ENCODINGS), errors="replace")


def _bom(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    return b"\xef\xbb\xbf" + data


def _bomb(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    depth = rng.choice((33, 999, 1001, 5000, 50_000))
    extra = rng.choice(
        (_laughs(), "x: " + "[" * depth + "]" * depth, "x: " + "[" * depth, "x: " * depth)
    )
    return data + b"\n" + extra.encode()


def _truncate(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    return data[: _pos(rng, data)]


Mutator = Callable[[random.Random, bytes, Sequence[bytes]], bytes]
MUTATORS: tuple[tuple[Mutator, int], ...] = (
    (_insert, 8),
    (_replace_word, 8),
    (_delete, 4),
    (_duplicate, 3),
    (_flip, 4),
    (_splice, 3),
    (_swap_lines, 2),
    (_indent, 3),
    (_truncate, 1),
    (_reencode, 1),
    (_bom, 1),
    (_bomb, 1),
)
_FUNCS = [m for m, _ in MUTATORS]
_WEIGHTS = [w for _, w in MUTATORS]


def mutate(rng: random.Random, seeds: Sequence[bytes], max_steps: int = 4) -> bytes:
    """A seed changed by one to ``max_steps`` random mutations."""
    data = rng.choice(seeds)
    for func in rng.choices(_FUNCS, _WEIGHTS, k=rng.randint(1, max_steps)):
        data = func(rng, data, seeds)
    return data


# --------------------------------------------------------------------------- wire payloads


JSON_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, 2**63, -(2**64), 1e308, -1e308, "", "x", "x" * 129,
    "y" * 128, "a/b", "a+b", "#", "a\x00b", "é", [], {}, [1, [2, [3]]], {"a": {"b": {}}},
    1717000000.25, 946684799.0, 4102444801.0, "1717000000", -60, -131, 21, "ack", "done",
)  # fmt: skip
WIRE_KEYS = (
    "ts", "beacon", "rssi", "shopper", "band", "dwell_s", "id", "reason", "receipt", "sku",
    "category", "qty", "price", "coupon", "checkout", "total", "alert", "action", "online",
    "battery",
)  # fmt: skip


@dataclass(frozen=True)
class Wire:
    """Topics and payloads of one registry, to start mutations from."""

    topics: tuple[str, ...]
    payloads: dict[str, tuple[bytes, ...]]


def wire_seeds(registry: Registry, prefix: str = "fw") -> Wire:
    store = registry.store
    ts = 1717000000.25
    beacon = sorted(registry.beacons)[0]
    gateway = sorted(registry.gateways)[0]
    band = sorted(registry.staff)[0]
    objects: dict[str, list[dict[str, Any]]] = {
        beacon_topic(store, gateway, prefix=prefix): [
            {"ts": ts, "beacon": beacon, "rssi": -60, "shopper": "app-1"},
            {"ts": ts, "beacon": beacon, "rssi": -70, "band": band, "dwell_s": 3.5},
        ],
        pos_topic(store, sorted(registry.terminals)[0], prefix=prefix): [
            {"id": "l-1", "ts": ts, "receipt": "r-1", "sku": "4001", "qty": 2, "price": 3.5},
            {"id": "l-2", "ts": ts, "receipt": "r-1", "coupon": "ABCD-EFGH", "shopper": "app-1"},
            {"id": "l-3", "ts": ts, "receipt": "r-1", "checkout": True, "total": 7.0},
        ],
        ack_topic(store, band, prefix=prefix): [
            {"id": "a-1", "ts": ts, "alert": "al-1", "action": "ack"}
        ],
        status_topic(store, gateway, prefix=prefix): [{"ts": ts, "online": False, "battery": 0.5}],
    }
    if registry.bells:
        bell = sorted(registry.bells)[0]
        objects[bell_topic(store, bell, prefix=prefix)] = [
            {"id": "p-1", "ts": ts, "reason": "help"}
        ]
    payloads: dict[str, tuple[bytes, ...]] = {}
    for topic, objs in objects.items():
        batch = orjson.dumps(objs * 3)
        payloads[topic] = (*(orjson.dumps(o) for o in objs), batch)
    # Topics no builder may make (that is the point): written out by hand.
    head = f"{prefix}/{store}"
    odd = (
        f"{prefix}/other/beacon/{gateway}",
        f"{head}/beacon/nope",
        f"{head}/beacon/{'g' * 129}",
        f"{prefix}/{'s' * 129}/bell/x",
        f"{head}/beacon/+",
        f"{head}/#",
        deadletter_topic(store, prefix=prefix),
        f"{head}/beacon",
        "",
        "fw",
    )
    return Wire((*objects, *odd), payloads)


def mutate_wire(rng: random.Random, wire: Wire) -> tuple[str, bytes]:
    """A topic and a payload: structured JSON changes, byte mutations, or both."""
    good = [t for t in wire.topics if t in wire.payloads]
    topic = rng.choice(wire.topics if rng.random() < 0.15 else good)
    seeds = wire.payloads.get(topic) or wire.payloads[rng.choice(good)]
    payload = rng.choice(seeds)
    if rng.random() < 0.7:
        payload = _mutate_json(rng, payload)
    if rng.random() < 0.4:
        payload = mutate(rng, [payload], max_steps=2)
    return topic, payload


def _mutate_json(rng: random.Random, payload: bytes) -> bytes:
    value = orjson.loads(payload)
    for _ in range(rng.randint(1, 4)):
        value = _change(rng, value)
    try:
        out = orjson.dumps(value)
    except orjson.JSONEncodeError:  # an int beyond 64 bits
        out = json.dumps(value).encode()
    if rng.random() < 0.05 and len(out) < 1000:  # a batch at the limit, or just over
        out = b"[" + b",".join([out] * rng.choice((999, 1000, 1001))) + b"]"
    if rng.random() < 0.05:  # nesting, written as text: orjson writes at most 254 levels
        depth = rng.choice((10, 300, 2000, 100_000))
        out = b"[" * depth + out + b"]" * depth
    return out


def _value(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(JSON_VALUES))  # fresh: a shared one could nest in itself


def _change(rng: random.Random, value: Any) -> Any:
    target = rng.choice(value) if isinstance(value, list) and value else value
    if not isinstance(target, dict):
        return _value(rng)
    roll = rng.random()
    if roll < 0.55:
        target[rng.choice(WIRE_KEYS)] = _value(rng)
    elif roll < 0.8 and target:
        del target[rng.choice(list(target))]
    elif roll < 0.9:
        target["pad"] = "x" * rng.choice((10, 70_000, 300_000))
    else:
        return [target, _value(rng)]
    return value


# --------------------------------------------------------------------------- targets


@dataclass
class Failure:
    target: str
    kind: str
    """The exception type, or "safety-net" / "slow" / "bad-output"."""
    detail: str
    data: bytes
    topic: str | None = None

    @property
    def signature(self) -> tuple[str, str, str]:
        """Failures alike but for numbers and positions count once."""
        first = self.detail.splitlines()[0] if self.detail else ""
        return self.target, self.kind, _DIGITS.sub("N", first)[:120]


@dataclass
class Report:
    tried: Counter[str] = field(default_factory=Counter)
    spent: dict[str, float] = field(default_factory=dict)
    """Seconds inside the target (not counting making the inputs)."""
    refused: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    slowest: dict[str, float] = field(default_factory=dict)

    def unique_failures(self) -> dict[tuple[str, str, str], Failure]:
        found: dict[tuple[str, str, str], Failure] = {}
        for f in self.failures:
            found.setdefault(f.signature, f)
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "inputs": dict(self.tried),
            "seconds_in_target": {k: round(v, 1) for k, v in self.spent.items()},
            "refused": dict(self.refused),
            "failures": len(self.failures),
            "unique_failures": [list(sig) for sig in self.unique_failures()],
            "slowest_s": {k: round(v, 3) for k, v in self.slowest.items()},
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


class _TimeoutError(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt an input running over ``seconds`` (main thread only; else unchecked)."""
    usable = seconds > 0 and hasattr(signal, "setitimer")
    try:
        if usable:

            def on_alarm(signum: int, frame: FrameType | None) -> None:
                raise _TimeoutError

            previous = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main thread
        usable = False
    try:
        if usable:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        yield
    finally:
        if usable:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


class Fuzzer:
    """Runs inputs against the targets and keeps the report."""

    def __init__(self, workdir: Path, *, slow_s: float = 5.0, hang_s: float = 30.0) -> None:
        self.workdir = workdir
        self.slow_s = slow_s
        self.hang_s = hang_s
        self.report = Report()
        self.rule_seeds = [p.read_bytes() for p in sorted(CATALOG.glob("*.yaml"))]
        self.policy_seed = (CATALOG / "policy.yaml").read_bytes()
        self.registry_seeds = [DEMO_REGISTRY.read_bytes()]
        self.registry = load_registry(DEMO_REGISTRY)
        self.decoder = Decoder({self.registry.store: self.registry})
        self.wire = wire_seeds(self.registry)
        self.rules_dir = workdir / "rules"
        self.rules_dir.mkdir(parents=True, exist_ok=True)

    # -- one input per target -----------------------------------------------------

    def rules(self, data: bytes, policy: bytes | None = None) -> None:
        for old in self.rules_dir.iterdir():
            old.unlink()
        (self.rules_dir / "rule.yaml").write_bytes(data)
        if policy is not None:
            (self.rules_dir / "policy.yaml").write_bytes(policy)
        blob = data if policy is None else data + b"\n# --- policy.yaml ---\n" + policy
        self._run("rules", blob, None, self._check_rules)

    def _check_rules(self, data: bytes, topic: str | None) -> str | None:
        try:
            load_rules(self.rules_dir)
        except RuleSetError as exc:
            self.report.refused["rules"] += 1
            for p in exc.problems:
                if not POSITIONED.match(str(p)):
                    return f"bad-output: problem without file:line:col: {p}"
                if p.message.startswith(SAFETY_NET):
                    return f"safety-net: {p}"
        return None

    def registry_file(self, data: bytes) -> None:
        self._run("registry", data, None, self._check_registry)

    def _check_registry(self, data: bytes, topic: str | None) -> str | None:
        path = self.workdir / "registry.yaml"
        path.write_bytes(data)
        try:
            load_registry(path)
        except ConfigError as exc:
            self.report.refused["registry"] += 1
            if exc.file != str(path):
                return f"bad-output: ConfigError without the file: {exc}"
            if getattr(exc, "message", str(exc)).startswith(SAFETY_NET):
                return f"safety-net: {exc}"
        return None

    def wire_message(self, topic: str, payload: bytes) -> None:
        self._run("decoder", payload, topic, self._check_decoder)

    def _check_decoder(self, payload: bytes, topic: str | None) -> str | None:
        out = self.decoder.decode(topic or "", payload, 1717000000.5)
        if not isinstance(out, list):
            return f"bad-output: decode returned {type(out).__name__}"
        for item in out:
            if isinstance(item, Rejection):
                self.report.refused["decoder"] += 1
                if item.reason not in REJECTION_REASONS:
                    return f"bad-output: unknown reason {item.reason!r}"
                if item.detail.startswith(SAFETY_NET):
                    return f"safety-net: {item.detail}"
            elif not isinstance(getattr(item, "order_key", None), str):
                return f"bad-output: not an event: {item!r}"[:300]
        return None

    def _run(
        self,
        target: str,
        data: bytes,
        topic: str | None,
        check: Callable[[bytes, str | None], str | None],
    ) -> None:
        self.report.tried[target] += 1
        started = time.perf_counter()
        problem: tuple[str, str] | None = None
        try:
            with _deadline(self.hang_s):
                verdict = check(data, topic)
            if verdict is not None:
                kind, _, detail = verdict.partition(": ")
                problem = (kind, detail)
        except _TimeoutError:
            problem = ("hang", f"no answer within {self.hang_s:g} s")
        except Exception as exc:
            trace = "".join(traceback.format_exception(exc))[-3000:]
            problem = (type(exc).__name__, f"{str(exc)[:200]}\n{trace}")
        took = time.perf_counter() - started
        self.report.spent[target] = self.report.spent.get(target, 0.0) + took
        self.report.slowest[target] = max(self.report.slowest.get(target, 0.0), took)
        if problem is None and took > self.slow_s:
            problem = ("slow", f"took {took:.1f} s")
        if problem is not None:
            self.report.failures.append(Failure(target, problem[0], problem[1], data, topic))

    # -- random runs --------------------------------------------------------------

    def step(self, rng: random.Random, target: str) -> None:
        if target == "rules":
            policy = mutate(rng, [self.policy_seed]) if rng.random() < 0.1 else None
            self.rules(mutate(rng, self.rule_seeds), policy)
        elif target == "registry":
            self.registry_file(mutate(rng, self.registry_seeds))
        else:
            self.wire_message(*mutate_wire(rng, self.wire))

    def run(self, seconds: float, seed: int, targets: Sequence[str] = TARGETS) -> Report:
        rng = random.Random(seed)
        started = time.monotonic()
        end = started + seconds
        while time.monotonic() < end:
            for target in targets:
                # The decoder is ~1,000x cheaper per input: give it more of them.
                for _ in range(50 if target == "decoder" else 1):
                    self.step(rng, target)
        self.report.seconds = time.monotonic() - started
        return self.report


def save_failures(report: Report, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for n, failure in enumerate(report.unique_failures().values()):
        stem = directory / f"{n:03d}-{failure.target}-{failure.kind}"
        stem.with_suffix(".input").write_bytes(failure.data)
        about = {"topic": failure.topic, "kind": failure.kind, "detail": failure.detail}
        stem.with_suffix(".json").write_text(json.dumps(about, indent=2), encoding="utf-8")
        written.append(stem)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m floorwalker.rules.fuzz",
        description="Fuzz the rule loader, the registry loader and the wire decoder.",
    )
    parser.add_argument("--minutes", type=float, default=1.0, help="how long to run (1)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument(
        "--target", action="append", choices=TARGETS, help="only these (repeatable)"
    )
    parser.add_argument(
        "--save", type=Path, default=Path("fuzz-failures"), help="where failing inputs go"
    )
    parser.add_argument("--slow", type=float, default=5.0, help="seconds an input may take (5)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    with tempfile.TemporaryDirectory(prefix="fw-fuzz-") as tmp:
        fuzzer = Fuzzer(Path(tmp), slow_s=args.slow)
        report = fuzzer.run(args.minutes * 60.0, seed, args.target or TARGETS)
    summary = {"seed": seed, **report.summary()}
    print(json.dumps(summary, indent=2))
    if report.failures:
        for path in save_failures(report, args.save):
            print(f"failing input: {path}.input", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
