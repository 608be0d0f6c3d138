"""``floorwalker faults [--quick] [--only NAME ...] [--json FILE] [--workdir DIR]``.

Runs the fault scenarios one after another (each with its own broker, Redis
and runner processes on free loopback ports, all stopped at its end), prints
one summary line per scenario as it finishes and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import orjson

from floorwalker.errors import FloorwalkerError
from floorwalker.simulators.faults import NAMES


def add_parser(sub: Any) -> None:
    faults = sub.add_parser(
        "faults",
        help="the fault suite: kill -9, broker and Redis outages, overload, forged clients",
        description="Inject faults into a real runner on loopback and count what survived.",
    )
    faults.add_argument(
        "--quick", action="store_true", help="scaled-down scenarios (about 2 minutes in all; CI)"
    )
    faults.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(NAMES)}",
    )
    faults.add_argument("--json", type=Path, help="write every scenario's result here")
    faults.add_argument(
        "--workdir", type=Path, help="keep the scenarios' files (logs, configs) here"
    )
    faults.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("psutil") is None:
        raise FloorwalkerError(
            "`floorwalker faults` needs psutil: pip install 'floorwalker[bench]'"
        )
    names = args.only or list(NAMES)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return _run_all(names, args.workdir, args.quick, args.json)
    with tempfile.TemporaryDirectory(prefix="floorwalker-faults-") as tmp:
        return _run_all(names, Path(tmp), args.quick, args.json)


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _run_all(names: list[str], workdir: Path, quick: bool, out: Path | None) -> int:
    from floorwalker.simulators.faults.scenarios import SCENARIOS, Context, Result  # noqa: PLC0415

    ctx = Context(workdir, quick, _say)
    results: list[Result] = []
    workdir = workdir.resolve()
    for name in names:
        started = time.monotonic()
        try:
            result = SCENARIOS[name](ctx)
        except Exception as exc:  # a scenario that broke is a failed scenario, with its reason
            result = Result(name)
            result.fail(f"{type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
        result.seconds = time.monotonic() - started
        results.append(result)
        print(result.line(), flush=True)
        for problem in result.problems:
            print(f"    problem: {problem}", flush=True)
        if out is not None:
            payload = {"quick": quick, "results": [r.to_json() for r in results]}
            out.write_bytes(
                orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
            )
    failed = [r.name for r in results if not r.ok]
    print(
        f"faults: {len(results) - len(failed)} of {len(results)} scenarios ok"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0
