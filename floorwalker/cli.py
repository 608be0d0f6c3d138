"""``floorwalker``: the one command-line entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from floorwalker.errors import ConfigError, FloorwalkerError, RuleSetError
from floorwalker.rules.durations import parse_duration

DATA = Path(__file__).parent / "simulators" / "data"
CATALOG = Path(__file__).parent / "rules" / "catalog"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.func(args)
    except RuleSetError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except (ConfigError, FloorwalkerError) as exc:
        print(f"floorwalker: {exc}", file=sys.stderr)
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floorwalker", description="Real-time in-store engagement engine."
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    check = sub.add_parser("check", help="validate every rule file in a directory")
    check.add_argument("directory", type=Path)
    check.add_argument(
        "--registry", action="append", type=Path, default=[],
        help="also accept the zone tags of these store registries",
    )
    check.set_defaults(func=_cmd_check)

    replay = sub.add_parser("replay", help="replay a capture on a virtual clock")
    replay.add_argument("--registry", action="append", type=Path, required=True)
    replay.add_argument("--profiles", type=Path, required=True)
    replay.add_argument("--rules", type=Path, required=True)
    replay.add_argument("--lateness", type=parse_duration, default=0.0,
                        help="reorder window: hold events this long, decide in ts order")
    replay.add_argument("--tail", type=parse_duration, default=86400.0,
                        help="after the last message, let pending timers fire for this long")
    replay.add_argument("--no-deadletters", action="store_true",
                        help="do not write dead letters to stdout")
    replay.add_argument("--decisions", type=Path, help="write every decision as JSON Lines")
    replay.add_argument("--summary-json", type=Path, help="write the summary as JSON")
    replay.add_argument("capture", type=Path)
    replay.set_defaults(func=_cmd_replay)

    demo = sub.add_parser("demo", help="the demo store: replay bundled traffic, show what happened")
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks (core)")
    bench.add_argument("which", choices=["core"])
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_cmd_bench)
    return parser


def _cmd_check(args: argparse.Namespace) -> int:
    from floorwalker.devices.registry import load_registry
    from floorwalker.rules.loader import check_directory

    tags: set[str] = set()
    for path in args.registry:
        tags |= load_registry(path).tags
    problems = check_directory(args.directory, extra_tags=tuple(sorted(tags)))
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.directory}", file=sys.stderr)
        return 1
    print(f"{args.directory}: all rule files are valid", file=sys.stderr)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from floorwalker.engine.core import EngineSettings
    from floorwalker.engine.replay import ReplaySettings

    settings = ReplaySettings(
        engine=EngineSettings(lateness_s=args.lateness),
        tail_s=args.tail,
        deadletters=not args.no_deadletters,
    )
    return _replay(
        args.registry, args.profiles, args.rules, args.capture, settings,
        decisions=args.decisions, summary_json=args.summary_json,
    )


def _replay(
    registries: list[Path],
    profiles: Path,
    rules_dir: Path,
    capture: Path,
    settings: object,
    *,
    decisions: Path | None = None,
    summary_json: Path | None = None,
    quiet: bool = False,
) -> int:
    from floorwalker.devices.registry import load_registry
    from floorwalker.engine.profiles import ProfileBook
    from floorwalker.engine.replay import Replay, ReplaySettings, read_capture, write_jsonl
    from floorwalker.engine.summary import format_summary
    from floorwalker.rules.loader import load_rules

    assert isinstance(settings, ReplaySettings)
    regs = {}
    for path in registries:
        reg = load_registry(path)
        regs[reg.store] = reg
    tags = tuple(sorted({t for r in regs.values() for t in r.tags}))
    ruleset = load_rules(rules_dir, extra_tags=tags)
    book = ProfileBook.load(profiles)
    if not capture.exists():
        raise ConfigError("capture file not found", file=str(capture))
    decision_fh = decisions.open("wb") if decisions else None
    on_decision = None
    if decision_fh is not None:
        fh = decision_fh

        def on_decision(d: object) -> None:
            fh.write(orjson.dumps(d.to_json()) + b"\n")  # type: ignore[attr-defined]

    replay = Replay(ruleset, regs, book, settings, on_decision=on_decision)
    out = write_jsonl(sys.stdout.buffer) if not quiet else (lambda at, topic, payload: None)
    try:
        with _progress(capture) as advance:
            for line in read_capture(capture):
                replay.feed(line, out)
                advance(line)
        replay.finish(out)
    finally:
        sys.stdout.flush()
        if decision_fh is not None:
            decision_fh.close()
    stats = replay.engine.stats
    sys.stderr.write(format_summary(stats))
    if summary_json is not None:
        summary_json.write_bytes(orjson.dumps(stats.to_json(), option=orjson.OPT_INDENT_2))
    return 0


class _progress:
    """A progress bar over the capture's bytes, only when stderr is a terminal."""

    def __init__(self, capture: Path) -> None:
        self.capture = capture
        self._bar: object | None = None

    def __enter__(self) -> object:
        if not sys.stderr.isatty():
            return lambda line: None
        from rich.progress import Progress

        size = self.capture.stat().st_size
        bar = Progress(transient=True, console=None)
        bar.start()
        task = bar.add_task("replaying", total=size)
        self._bar = bar
        counter = {"n": 0}

        def advance(line: object) -> None:
            counter["n"] += 1
            if counter["n"] % 2000 == 0:
                payload = getattr(line, "payload", b"")
                bar.update(task, advance=len(payload) * 2000 + 60 * 2000)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()  # type: ignore[attr-defined]


def _cmd_demo(args: argparse.Namespace) -> int:
    from floorwalker.engine.replay import ReplaySettings

    print("Floorwalker demo: replaying 10 minutes of the demo store on a virtual clock.\n"
          "Actions (coupons to phones, alerts to staff wristbands) follow as JSON Lines;\n"
          "the per-rule summary comes at the end.\n", file=sys.stderr)
    return _replay(
        [DATA / "demo-store.yaml"], DATA / "demo-profiles.jsonl", CATALOG,
        DATA / "demo-capture.jsonl", ReplaySettings(),
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from floorwalker.simulators.bench_core import main as bench_core

    return int(bench_core(list(args.rest)))


if __name__ == "__main__":
    raise SystemExit(main())
