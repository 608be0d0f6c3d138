"""``floorwalker``: the one command-line entry point."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from floorwalker.errors import ConfigError, FloorwalkerError, RuleSetError
from floorwalker.rules.durations import parse_duration

if TYPE_CHECKING:
    from floorwalker.engine.core.actions import Decision
    from floorwalker.engine.runners.broker import BrokerAddress
    from floorwalker.engine.runners.cluster.shards import Shards
    from floorwalker.engine.runners.floorfeed import FloorFeed
    from floorwalker.engine.runners.replay import (
        Capture,
        Replay,
        ReplaySettings,
        ReplayState,
        Stop,
    )
    from floorwalker.rules.model import RuleSet

DATA = Path(__file__).parent / "simulators" / "data"
CATALOG = Path(__file__).parent / "rules" / "catalog"
EXTRAS = {
    "bench": ("psutil", "matplotlib"),
    "demo": ("rich", "starlette", "uvicorn"),
    "web": ("starlette", "uvicorn"),
}
"""The optional dependencies (``pip install 'floorwalker[bench]'``) and what they bring.
``run``, ``check``, ``replay`` and ``simulate`` need none of them."""


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


def _duration(text: str) -> float:
    return parse_duration(text, allow_zero=True)


def _interval(text: str) -> float:
    """A settings duration: seconds, or ``500ms``, ``1s``, ``5m``; 0 allowed."""
    from floorwalker.engine.runners.settings import parse_interval

    try:
        return parse_interval(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floorwalker", description="Real-time in-store engagement engine."
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    check = sub.add_parser("check", help="validate every rule file in a directory")
    check.add_argument("directory", type=Path)
    check.add_argument(
        "--registry",
        action="append",
        type=Path,
        default=[],
        help="also accept the zone tags of these store registries",
    )
    check.set_defaults(func=_cmd_check)

    _add_replay(sub)

    _add_run(sub)
    _add_profiles(sub)
    _add_simulate(sub)
    _add_broker_config(sub)
    _add_kafka(sub)
    _add_worker(sub)
    _add_bridge(sub)
    from floorwalker.dashboards.report.command import add_report

    add_report(sub, _duration)
    from floorwalker.dashboards.cluster_cli import add_parser as add_cluster_demo

    add_cluster_demo(sub)
    from floorwalker.authoring import add_rules

    add_rules(sub)
    from floorwalker.simulators.faults.cli import add_parser as add_faults

    add_faults(sub)

    demo = sub.add_parser(
        "demo", help="live: broker, Redis, engine and a simulated store, with a dashboard"
    )
    demo.add_argument(
        "--minutes", type=float, help="stop after N minutes, print a summary (default: Ctrl-C)"
    )
    demo.add_argument(
        "--shoppers", type=int, default=100, help="shoppers arriving per 10 store minutes"
    )
    demo.add_argument("--seed", type=int, default=7, help="traffic seed (default 7)")
    demo.add_argument("--speed", type=float, default=1.0, help="store time runs N times faster")
    demo.add_argument(
        "--real-clock",
        action="store_true",
        help="keep the store's timezone (default: one where it is 08:xx now, breakfast time)",
    )
    demo.add_argument(
        "--replay", action="store_true", help="replay the bundled capture instead (no servers)"
    )
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks (core)")
    bench.add_argument("which", choices=["core", "live", "accuracy", "scaling", "cluster"])
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_cmd_bench)
    return parser


REPLAY_PIECES = """\
replay in pieces:
  floorwalker replay ... --until TS --save-state STATE CAPTURE > out-1.jsonl
  tail -n +K CAPTURE > REST        # K: stderr says "stopped at line K ..."
  floorwalker replay ... --load-state STATE REST > out-2.jsonl
out-1.jsonl then out-2.jsonl is exactly what one replay of CAPTURE writes
(actions and dead letters).

TS is epoch seconds or an ISO-8601 time with an offset
(2026-11-23T09:30:00+08:00, ...Z). The first piece stops at the first line
whose ts is past TS: a line's ts is that of its first message (a batch's first
item); a line with no readable ts (one whose first message is rejected:
malformed, unknown device, bad ts, ...) goes with the lines before it. The
clock then moves to TS, so timers due by TS fire and are written; there is no
tail. If the capture ends before a line past TS, the
clock stays where it ended and REST is empty (or the next capture).
--save-state without --until saves at the end of the capture, without the tail.

The state file (written atomically) holds every store's engine state, the
guard state (caps, budgets, coupons), the profiles as the visits changed them
and the replay's own clock; load it with the same --registry stores and
--lateness (else exit 2). The summary on stderr covers each piece only.
"""


def _until(text: str) -> float:
    from floorwalker.engine.runners.replay import parse_until

    try:
        return parse_until(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_replay(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="replay a capture on a virtual clock",
        description="Replay a capture on a virtual clock: actions and dead letters to stdout\n"
        "(JSON Lines), the per-rule summary to stderr. No broker, no Redis, no real budget.",
        epilog=REPLAY_PIECES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("--registry", action="append", type=Path, required=True)
    replay.add_argument("--profiles", type=Path, required=True)
    replay.add_argument("--rules", type=Path, required=True)
    replay.add_argument(
        "--lateness",
        type=_duration,
        default=0.0,
        help="reorder window: hold events this long, decide in ts order",
    )
    replay.add_argument(
        "--tail",
        type=_duration,
        default=86400.0,
        help="after the last message, let pending timers fire for this long",
    )
    replay.add_argument(
        "--no-deadletters", action="store_true", help="do not write dead letters to stdout"
    )
    replay.add_argument("--decisions", type=Path, help="write every decision as JSON Lines")
    replay.add_argument("--summary-json", type=Path, help="write the summary as JSON")
    replay.add_argument(
        "--until",
        type=_until,
        metavar="TS",
        help="stop before the first line past TS, fire timers due by TS, no tail;"
        " needs --save-state (see below)",
    )
    replay.add_argument(
        "--save-state", type=Path, metavar="FILE", help="at the end, write the state here"
    )
    replay.add_argument(
        "--load-state",
        type=Path,
        metavar="FILE",
        help="start from a state --save-state wrote; CAPTURE is the rest",
    )
    replay.add_argument(
        "capture", type=Path, help="JSON Lines capture (with --load-state: the rest of one)"
    )
    replay.set_defaults(func=_cmd_replay)


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="the live edge runner (MQTT in, engine, MQTT out)")
    run.add_argument("--config", type=Path, help="TOML settings file (FLOORWALKER_CONFIG)")
    run.add_argument(
        "--mqtt",
        help="broker URL, mqtt://host:port or mqtts://host:port for TLS, credentials as"
        " mqtt://user:password@host:port (FLOORWALKER_MQTT)",
    )
    _add_mqtt_identity(run, dest_prefix="mqtt_")
    run.add_argument("--redis", help="Redis URL, redis://host:port/db (FLOORWALKER_REDIS)")
    run.add_argument(
        "--registry",
        dest="registries",
        action="append",
        type=Path,
        help="store registry; repeat for several stores (FLOORWALKER_REGISTRIES)",
    )
    run.add_argument("--rules", type=Path, help="rules directory (FLOORWALKER_RULES)")
    run.add_argument(
        "--profiles", type=Path, help="profiles JSON Lines, when running without Redis"
    )
    run.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    run.add_argument("--client-id", help="MQTT client id; keep it stable for a persistent session")
    run.add_argument("--prefix", help="topic prefix (default fw)")
    run.add_argument("--redis-prefix", help="Redis key prefix (default fw:)")
    run.add_argument("--lateness", dest="lateness_s", type=_duration, help="reorder window")
    run.add_argument(
        "--network-loop",
        choices=["core", "thread"],
        help="who drives the MQTT socket: the core thread (default) or paho's own thread",
    )
    run.add_argument(
        "--outbox-dir",
        type=Path,
        help="the durable outbox's directory (FLOORWALKER_OUTBOX_DIR,"
        " default ~/.local/state/floorwalker)",
    )
    run.add_argument(
        "--snapshot-every",
        dest="snapshot_every_s",
        type=_interval,
        help="seconds between writes of changed stores' state to Redis, e.g. 1s or 500ms;"
        " 0 disables (FLOORWALKER_SNAPSHOT_EVERY_S, default 1s)",
    )
    _add_floor_page(run)
    run.set_defaults(func=_cmd_run)


def _add_floor_page(run: argparse.ArgumentParser) -> None:
    page = run.add_argument_group("live floor page (pip install 'floorwalker[web]')")
    page.add_argument("--http-port", type=int, help="serve the floor page on this port (0: free)")
    page.add_argument("--http-host", help="address to bind (default 127.0.0.1)")
    page.add_argument(
        "--http-token",
        help="the page's access token; prefer FLOORWALKER_HTTP_TOKEN or --http-token-file"
        " (a command line is public); default: generated into a 0600 file",
    )
    page.add_argument("--http-token-file", type=Path, help="file with the token (made if missing)")
    page.add_argument("--http-report", type=Path, help="HTML file served at /report")


def _add_profiles(sub: Any) -> None:
    profiles = sub.add_parser("profiles", help="shopper profiles in Redis")
    psub = profiles.add_subparsers(metavar="ACTION")
    pimport = psub.add_parser("import", help="load profiles (JSON Lines) into Redis")
    pimport.add_argument("file", type=Path)
    pimport.add_argument("--redis", required=True)
    pimport.add_argument("--redis-prefix", default="fw:")
    pimport.set_defaults(func=_cmd_profiles_import)
    psegment = psub.add_parser("segment", help="recompute RFM segments and tiers from POS history")
    psegment.add_argument("--redis", required=True)
    psegment.add_argument("--redis-prefix", default="fw:")
    psegment.set_defaults(func=_cmd_profiles_segment)
    forget = psub.add_parser("forget", help="erase a shopper from every store (privacy)")
    forget.add_argument("shopper")
    forget.add_argument("--redis", required=True)
    forget.add_argument("--redis-prefix", default="fw:")
    forget.set_defaults(func=_cmd_profiles_forget)


def _add_kafka(sub: Any) -> None:
    kafka = sub.add_parser(
        "kafka", help="the cluster runner's topics: load a capture, read actions"
    )
    ksub = kafka.add_subparsers(metavar="ACTION")
    kload = ksub.add_parser(
        "load", help="produce a capture to the events topic as the bridge would (keyed by store)"
    )
    kload.add_argument("--kafka", required=True, metavar="HOST:PORT", help="bootstrap server")
    kload.add_argument("--prefix", default="fw", help="topic prefix (default fw)")
    kload.add_argument(
        "--partitions", type=int, default=8, help="partitions of topics it creates (default 8)"
    )
    kload.add_argument("capture", type=Path)
    kload.set_defaults(func=_cmd_kafka_load)
    kact = ksub.add_parser("actions", help="print the actions topic as replay's JSON Lines")
    kact.add_argument("--kafka", required=True, metavar="HOST:PORT", help="bootstrap server")
    kact.add_argument("--prefix", default="fw", help="topic prefix (default fw)")
    kact.add_argument(
        "--idle", type=_duration, default=5.0, help="exit after this long without a record"
    )
    kact.add_argument(
        "--wait", type=_duration, default=60.0, help="how long to wait for the first record"
    )
    kact.set_defaults(func=_cmd_kafka_actions)


def _add_worker(sub: Any) -> None:
    worker = sub.add_parser(
        "worker", help="a faust worker running the core for the stores of its partitions"
    )
    worker.add_argument("--kafka", required=True, metavar="HOST:PORT", help="bootstrap server")
    worker.add_argument("--registry", action="append", type=Path, required=True, help="repeatable")
    worker.add_argument("--rules", type=Path, required=True)
    worker.add_argument("--profiles", type=Path, help="shopper profiles (JSON Lines), no --redis")
    worker.add_argument("--redis", help="guards and profiles in Redis (default: in memory)")
    worker.add_argument("--redis-prefix", default="fw:")
    worker.add_argument(
        "--clock",
        choices=["event", "wall"],
        default="event",
        help="event: a store's clock is its events' ts, as replay; wall: timers on the wall clock",
    )
    worker.add_argument("--prefix", default="fw", help="topic prefix (default fw)")
    worker.add_argument(
        "--partitions", type=int, default=8, help="partitions of the events topic (default 8)"
    )
    worker.add_argument("--app-id", default="floorwalker", help="faust app id = consumer group")
    worker.add_argument("--datadir", type=Path, help="faust data directory (default: a temp dir)")
    worker.add_argument("--lateness", type=_duration, default=0.0, help="reorder window")
    worker.add_argument("--loglevel", default="warning", help="faust's log level")
    worker.add_argument("--name", default="", help="worker name in its records (default host:pid)")
    worker.add_argument(
        "--checkpoint-every", type=_duration, default=1.0, help="snapshot interval (default 1s)"
    )
    worker.add_argument(
        "--session-timeout", type=_duration, default=6.0, help="consumer group (default 6s)"
    )
    worker.add_argument("--heartbeat", type=_duration, default=0.5, help="default 0.5s")
    worker.add_argument(
        "--fetch-wait", type=_duration, default=0.02, help="broker fetch wait (default 20ms)"
    )
    worker.add_argument(
        "--metrics-port", type=int, help="serve Prometheus /metrics on this port (0: free)"
    )
    _add_floor_page(worker)
    worker.set_defaults(func=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    import time

    from floorwalker.devices.decode import DecoderSettings
    from floorwalker.devices.registry import load_registries
    from floorwalker.engine.core.guards import GuardStore
    from floorwalker.engine.core.profiles import ProfileBook, ProfileSource
    from floorwalker.engine.core.settings import EngineSettings
    from floorwalker.engine.runners.cluster.shards import Shards
    from floorwalker.engine.runners.cluster.worker import WorkerSettings, run_worker
    from floorwalker.engine.runners.floorfeed import FloorFeed
    from floorwalker.engine.runners.metrics import Metrics
    from floorwalker.rules.loader import load_rules_for

    if args.http_port is not None:
        _require("web", "worker --http-port")

    regs = load_registries(args.registry)
    rules = load_rules_for(args.rules, regs)
    guards: GuardStore | None = None
    profiles: ProfileSource
    closers: list[Callable[[], object]] = []
    if args.redis is None:
        profiles = ProfileBook.load(args.profiles) if args.profiles else ProfileBook()
    else:
        from floorwalker.engine.runners.cluster.names import guard_owner
        from floorwalker.engine.stores.redis_guards import RedisGuardSettings, RedisGuardStore
        from floorwalker.engine.stores.redis_profiles import RedisProfiles

        owner = guard_owner(args.app_id)
        guards = RedisGuardStore.from_url(
            args.redis, RedisGuardSettings(prefix=args.redis_prefix + "guard:", owner=owner)
        )
        redis_profiles = RedisProfiles.from_url(args.redis, prefix=args.redis_prefix)
        redis_profiles.start()
        profiles = redis_profiles
        closers = [redis_profiles.close, guards.close]  # the visits not yet written go out
    shards = Shards(
        rules,
        regs,
        profiles=profiles,
        guards=guards,
        engine_settings=EngineSettings(lateness_s=args.lateness),
        decoder_settings=DecoderSettings(prefix=args.prefix),
        now=time.time if args.clock == "wall" else None,
        metrics=Metrics() if args.metrics_port is not None or args.http_port is not None else None,
    )
    settings = WorkerSettings(
        kafka=args.kafka,
        app_id=args.app_id,
        prefix=args.prefix,
        partitions=args.partitions,
        datadir=args.datadir,
        loglevel=args.loglevel,
        name=args.name,
        checkpoint_every_s=args.checkpoint_every,
        session_timeout_s=args.session_timeout,
        heartbeat_s=args.heartbeat,
        fetch_max_wait_ms=round(args.fetch_wait * 1000),
    )

    def close_all() -> None:
        for close in closers:
            close()

    with contextlib.ExitStack() as shown:
        feed = FloorFeed() if args.http_port is not None else None
        _show_worker(args, shards, feed, shown)
        return run_worker(shards, settings, close_all, feed)


def _show_worker(
    args: argparse.Namespace,
    shards: Shards,
    feed: FloorFeed | None,
    stack: contextlib.ExitStack[bool | None],
) -> None:
    """The worker's /metrics and floor page, each when asked for, until ``stack`` ends."""
    metrics = shards.metrics
    if metrics is None:
        return
    if args.metrics_port is not None:
        served = stack.enter_context(metrics.serve(args.metrics_port))
        print(f"floorwalker worker: metrics on :{served.port}", file=sys.stderr, flush=True)
    if feed is None:
        return
    import os

    from floorwalker.dashboards.web.app import PageSettings
    from floorwalker.dashboards.web.server import page_of, redis_report

    rules, regs = shards.rules, shards.registries
    report = (
        redis_report(args.redis, args.redis_prefix, lambda: (rules, regs)) if args.redis else None
    )
    server = stack.enter_context(
        page_of(
            feed,
            metrics.registry,
            host=args.http_host or "127.0.0.1",
            port=args.http_port,
            token=args.http_token or os.environ.get("FLOORWALKER_HTTP_TOKEN") or None,
            token_file=args.http_token_file,
            settings=PageSettings(report=args.http_report, live_report=report),
        )
    )
    print(f"floorwalker worker: {server.banner()}", file=sys.stderr, flush=True)


def _add_bridge(sub: Any) -> None:
    bridge = sub.add_parser(
        "bridge", help="MQTT -> events topic (keyed by store); actions topic -> MQTT (dedup by id)"
    )
    bridge.add_argument("--mqtt", required=True, help="broker URL, mqtt://host:port")
    _add_mqtt_identity(bridge, dest_prefix="mqtt_")
    bridge.add_argument("--kafka", required=True, metavar="HOST:PORT", help="bootstrap server")
    bridge.add_argument("--redis", help="dedup keys in Redis, shared by every bridge")
    bridge.add_argument("--redis-prefix", default="fw:")
    bridge.add_argument("--dedup-ttl", type=_duration, default=86400.0, help="default 1 day")
    bridge.add_argument("--prefix", default="fw", help="topic prefix (default fw)")
    bridge.add_argument("--client-id", default="floorwalker-bridge", help="MQTT client id")
    bridge.add_argument("--app-id", default="floorwalker", help="the workers' faust app id")
    bridge.add_argument(
        "--partitions", type=int, default=8, help="partitions of topics it creates (default 8)"
    )
    bridge.set_defaults(func=_cmd_bridge)


def _cmd_bridge(args: argparse.Namespace) -> int:
    from floorwalker.engine.runners.cluster.bridge import BridgeSettings, run_bridge

    settings = BridgeSettings(
        mqtt=_broker(args),
        kafka=args.kafka,
        prefix=args.prefix,
        app_id=args.app_id,
        client_id=args.client_id,
        partitions=args.partitions,
        redis_url=args.redis,
        redis_prefix=args.redis_prefix,
        dedup_ttl_s=args.dedup_ttl,
    )
    return run_bridge(settings)


def _cmd_kafka_load(args: argparse.Namespace) -> int:
    from floorwalker.engine.runners.cluster.kafka import run_load

    if not args.capture.exists():
        raise ConfigError("capture file not found", file=str(args.capture))
    return run_load(args.kafka, args.capture, prefix=args.prefix, partitions=args.partitions)


def _cmd_kafka_actions(args: argparse.Namespace) -> int:
    from floorwalker.engine.runners.cluster.kafka import run_actions

    return run_actions(args.kafka, prefix=args.prefix, idle=args.idle, wait=args.wait)


def _add_simulate(sub: Any) -> None:
    sim = sub.add_parser(
        "simulate", help="the store simulator: a capture, or live traffic over MQTT"
    )
    sim.add_argument("--registry", type=Path, required=True, help="store registry (YAML)")
    sim.add_argument("--shoppers", type=int, required=True, help="shoppers per store")
    sim.add_argument("--minutes", type=float, required=True, help="arrival window, store minutes")
    sim.add_argument("--seed", type=int, required=True)
    where = sim.add_mutually_exclusive_group(required=True)
    where.add_argument("--capture", type=Path, help="write a capture (JSON Lines) here")
    where.add_argument(
        "--mqtt", help="publish live to this broker, mqtt://host:port or mqtts://host:port"
    )
    _add_mqtt_identity(sim, dest_prefix="mqtt_")
    sim.add_argument("--rate", type=float, help="live: mean events/s (default: real time)")
    sim.add_argument("--truth", type=Path, help="write the ground truth (JSON Lines) here")
    sim.add_argument("--sigma", type=float, default=4.0, help="RSSI noise, dB (default 4)")
    sim.add_argument("--stores", type=int, default=1, help="clone the store as s001..sNNN")
    sim.add_argument("--profiles-out", type=Path, help="write the shopper profiles here")
    sim.add_argument("--start", help="store time of the first arrival (ISO, or epoch s)")
    sim.add_argument("--batch", type=float, default=1.0, help="gateway batch interval, s")
    sim.add_argument("--redeem-share", type=float, default=0.3, help="live: offers redeemed")
    sim.add_argument("--prefix", default="fw", help="topic prefix (default fw)")
    loop = sim.add_argument_group("closed loop (backtests: see README)")
    loop.add_argument(
        "--closed-loop",
        action="store_true",
        help="run the engine in the loop: shoppers redeem the coupons they get (needs"
        " --capture and --profiles-out)",
    )
    loop.add_argument("--rules", type=Path, default=CATALOG, help="rules (default: the catalog)")
    loop.add_argument("--response", type=Path, help="response model (YAML; default: built in)")
    sim.set_defaults(func=_cmd_simulate)


def _add_mqtt_identity(parser: argparse.ArgumentParser, *, dest_prefix: str) -> None:
    """``--mqtt-username``, ``--mqtt-password-file``, ``--mqtt-ca`` (no password flag: argv is
    public)."""
    parser.add_argument(
        "--mqtt-username", dest=f"{dest_prefix}username", help="MQTT username (wins over the URL's)"
    )
    parser.add_argument(
        "--mqtt-password-file",
        dest=f"{dest_prefix}password_file",
        type=Path,
        help="file whose first line is the MQTT password",
    )
    parser.add_argument(
        "--mqtt-ca",
        dest=f"{dest_prefix}ca",
        type=Path,
        help="CA certificate verifying an mqtts:// broker (default: the system's CAs)",
    )


def _add_broker_config(sub: Any) -> None:
    bc = sub.add_parser(
        "broker-config",
        help="Mosquitto config, passwords, ACLs and credentials.json for the registries' devices",
    )
    bc.add_argument("--registry", action="append", type=Path, required=True, help="repeatable")
    bc.add_argument("--out", type=Path, required=True, help="directory to write into")
    bc.add_argument("--port", type=int, default=1883, help="plain MQTT listener (default 1883)")
    bc.add_argument("--bind", help="listen on this address only (default: every address)")
    bc.add_argument("--tls", action="store_true", help="also a TLS listener, with a new CA")
    bc.add_argument("--tls-port", type=int, default=8883, help="TLS listener (default 8883)")
    bc.add_argument("--tls-bind", help="the TLS listener's address, if not --bind's")
    bc.add_argument(
        "--tls-host",
        action="append",
        default=[],
        help="a name or IP clients use for the broker (in the certificate; repeatable;"
        " localhost and 127.0.0.1 always are)",
    )
    bc.add_argument("--prefix", default="fw", help="topic prefix (default fw; + for any)")
    bc.add_argument(
        "--profiles",
        "--shoppers",
        dest="profiles",
        type=Path,
        help="shopper profiles (JSON Lines): give their tokens broker identities",
    )
    bc.add_argument(
        "--shopper-secret-file",
        type=Path,
        help="the HMAC secret shopper passwords derive from (default: DIR/shopper-secret,"
        " made once)",
    )
    bc.add_argument(
        "--simulator",
        action="store_true",
        help="add the store-simulator identity (every device topic): demos, load tests",
    )
    bc.add_argument(
        "--test-harness",
        action="store_true",
        help="add the test-harness superuser (reads and writes everything): tests only",
    )
    bc.add_argument("--user", help="the user Mosquitto runs as when started as root")
    bc.set_defaults(func=_cmd_broker_config)


def _cmd_broker_config(args: argparse.Namespace) -> int:
    from floorwalker.devices.broker_config import read_shopper_tokens, write_broker_config
    from floorwalker.devices.registry import load_registries

    registries = list(load_registries(args.registry).values())
    shoppers = read_shopper_tokens(args.profiles) if args.profiles is not None else []
    config = write_broker_config(
        registries,
        args.out,
        port=args.port,
        bind=args.bind,
        tls=args.tls,
        tls_port=args.tls_port,
        tls_hosts=tuple(args.tls_host),
        tls_bind=args.tls_bind,
        prefix=args.prefix,
        shoppers=shoppers,
        shopper_secret_file=args.shopper_secret_file,
        tester=args.test_harness,
        simulator=args.simulator,
        run_as=args.user,
    )
    creds = config.credentials
    print(
        f"broker-config: {config.config} for {len(registries)} store(s): "
        f"{len(creds.devices)} devices, {len(creds.shoppers)} shoppers, the engine"
        + (f"; TLS on :{config.tls_port} (CA {config.auth.tls.ca_cert})" if config.auth.tls else "")
        + f"\n  passwords in {config.credentials_file} (0600): give each device its own",
        file=sys.stderr,
    )
    return 0


def _broker(args: argparse.Namespace) -> BrokerAddress:
    """The BrokerAddress of ``--mqtt`` and the ``--mqtt-*`` identity flags."""
    from floorwalker.engine.runners.broker import BrokerAddress

    url = args.mqtt if "://" in args.mqtt else f"mqtt://{args.mqtt}"
    return BrokerAddress.from_url(
        url,
        username=args.mqtt_username,
        password_file=args.mqtt_password_file,
        ca_file=args.mqtt_ca,
    )


def _cmd_simulate(args: argparse.Namespace) -> int:
    from floorwalker.devices.registry import load_registry
    from floorwalker.simulators.store import run_simulate, settings_from
    from floorwalker.simulators.traffic import parse_start

    start = None
    if args.start is not None:
        start = parse_start(args.start, load_registry(args.registry).timezone)
    settings = settings_from(
        shoppers=args.shoppers,
        minutes=args.minutes,
        seed=args.seed,
        sigma_db=args.sigma,
        stores=args.stores,
        start=start,
        batch_s=args.batch,
        redeem_share=args.redeem_share,
    )
    if args.closed_loop:
        print(orjson.dumps(_closed_loop(args, settings)).decode())
        return 0
    try:
        summary = run_simulate(
            args.registry,
            settings,
            capture=args.capture,
            mqtt=_broker(args) if args.mqtt is not None else None,
            rate=args.rate,
            truth=args.truth,
            profiles_out=args.profiles_out,
            prefix=args.prefix,
            log_to=sys.stderr,
        )
    except KeyboardInterrupt:
        return 130
    print(orjson.dumps(summary).decode())
    return 0


def _closed_loop(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    from floorwalker.simulators.closed_loop import load_response_model, simulate_closed_loop

    if args.capture is None or args.profiles_out is None:
        raise ConfigError(
            "simulate --closed-loop writes a capture and the profiles to replay it with:"
            " give --capture FILE and --profiles-out FILE"
        )
    model = load_response_model(args.response) if args.response is not None else None
    return simulate_closed_loop(
        args.registry,
        settings,
        args.rules,
        capture=args.capture,
        profiles_out=args.profiles_out,
        model=model,
        truth=args.truth,
        prefix=args.prefix,
    )


def _cmd_check(args: argparse.Namespace) -> int:
    from floorwalker.devices.registry import load_registry
    from floorwalker.rules.loader import check_directory

    tags: set[str] = set()
    roles: set[str] = set()
    for path in args.registry:
        registry = load_registry(path)
        tags |= registry.tags
        roles |= {member.role for member in registry.staff.values()}
    problems = check_directory(
        args.directory, extra_tags=tuple(sorted(tags)), extra_roles=tuple(sorted(roles))
    )
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.directory}", file=sys.stderr)
        return 1
    print(f"{args.directory}: all rule files are valid", file=sys.stderr)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from floorwalker.engine.core.settings import EngineSettings
    from floorwalker.engine.runners.replay import ReplaySettings
    from floorwalker.errors import StateError

    if args.until is not None and args.save_state is None:
        print(
            "floorwalker replay: --until needs --save-state FILE"
            " (where to save the state to continue from)",
            file=sys.stderr,
        )
        return 2
    settings = ReplaySettings(
        engine=EngineSettings(lateness_s=args.lateness),
        tail_s=args.tail,
        deadletters=not args.no_deadletters,
    )
    try:
        return _replay(
            args.registry,
            args.profiles,
            args.rules,
            args.capture,
            settings,
            decisions=args.decisions,
            summary_json=args.summary_json,
            pieces=_Pieces(args.until, args.save_state, args.load_state),
        )
    except StateError as exc:
        print(f"floorwalker: {exc}", file=sys.stderr)
        return 2


@dataclass(frozen=True)
class _Pieces:
    """Replay in pieces: where to stop, where to save and where to start from."""

    until: float | None = None
    save_state: Path | None = None
    load_state: Path | None = None


def _replay(
    registries: list[Path],
    profiles: Path,
    rules_dir: Path,
    capture_path: Path,
    settings: ReplaySettings,
    *,
    decisions: Path | None = None,
    summary_json: Path | None = None,
    pieces: _Pieces | None = None,
) -> int:
    from floorwalker.devices.registry import load_registries
    from floorwalker.engine.core.profiles import ProfileBook
    from floorwalker.engine.runners.replay import Capture, Replay, write_jsonl
    from floorwalker.engine.runners.summary import never_triggered_records
    from floorwalker.rules.loader import load_rules_for

    pieces = pieces or _Pieces()
    regs = load_registries(registries)
    ruleset = load_rules_for(rules_dir, regs)
    book = ProfileBook.load(profiles)
    if not capture_path.exists():
        raise ConfigError("capture file not found", file=str(capture_path))
    _check_writable(pieces.save_state)
    capture = Capture(capture_path)
    with contextlib.ExitStack() as stack:
        on_decision = None
        if decisions is not None:
            fh = stack.enter_context(decisions.open("wb"))

            def on_decision(d: Decision) -> None:
                fh.write(orjson.dumps(d.to_json()) + b"\n")

        replay = Replay(ruleset, regs, book, settings, on_decision=on_decision)
        resumed = None if pieces.load_state is None else _load(replay, pieces.load_state)
        out = write_jsonl(sys.stdout.buffer)
        tick = stack.enter_context(_progress(capture))
        stop = None
        for line in capture:
            if resumed is not None:
                _warn_if_not_rest(replay, line, resumed, capture_path)
                resumed = None
            stop = replay.feed(line, out, until=pieces.until)
            if stop is not None:
                break
            tick()
        if pieces.save_state is None:
            replay.finish(out)
        elif stop is not None and pieces.until is not None:
            replay.pause(pieces.until, out)
        sys.stdout.flush()
        if decisions is not None:
            for record in never_triggered_records(replay.engine.stats, ruleset):
                fh.write(orjson.dumps(record) + b"\n")
    if pieces.save_state is not None:
        _save(replay, pieces, stop, capture_path)
    _write_summary(replay, ruleset, summary_json)
    return 0


def _write_summary(replay: Replay, ruleset: RuleSet, summary_json: Path | None) -> None:
    """The per-rule summary to stderr (and ``--summary-json``): every rule, with budgets."""
    import math

    from floorwalker.engine.runners.summary import (
        budget_summaries,
        format_summary,
        response_targets,
    )
    from floorwalker.engine.runners.summary import summary_json as summary_json_of

    stats, clock = replay.engine.stats, replay.engine.clock
    targets = response_targets(ruleset)
    rules = [rule.id for rule in ruleset.rules]
    budgets = budget_summaries(ruleset, replay.guards, clock if math.isfinite(clock) else None)
    sys.stderr.write(format_summary(stats, targets, rules=rules, budgets=budgets))
    if summary_json is not None:
        doc = summary_json_of(stats, targets, rules=rules, budgets=budgets)
        summary_json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def _load(replay: Replay, path: Path) -> ReplayState:
    from floorwalker.engine.runners.replay import read_state
    from floorwalker.errors import StateError

    data = read_state(path)
    try:
        return replay.load_state(data)
    except StateError as exc:
        raise StateError(f"cannot load {path}: {exc}") from exc


def _check_writable(path: Path | None) -> None:
    """Refuse before replaying, not after, if the state could not be saved."""
    from floorwalker.errors import StateError

    if path is not None and not path.resolve().parent.is_dir():
        raise StateError(f"cannot save replay state to {path}: no such directory")


def _warn_if_not_rest(replay: Replay, line: Any, state: ReplayState, capture: Path) -> None:
    """A state saved at a stop expects the rest to begin with the line it stopped at."""
    if state.next_ts is None:
        return
    ts = replay.line_ts(line)
    if ts != state.next_ts:
        print(
            f"floorwalker: warning: the state stopped before a line of ts {state.next_ts!r}"
            f" (line {state.next_line} of its capture), but {capture} starts with"
            f" {'a line of ts ' + repr(ts) if ts is not None else 'a line with no ts'};"
            " is it the rest (tail -n +K)?",
            file=sys.stderr,
        )


def _save(replay: Replay, pieces: _Pieces, stop: Stop | None, capture: Path) -> None:
    import shlex

    from floorwalker.engine.runners.replay import write_atomic
    from floorwalker.errors import StateError

    assert pieces.save_state is not None
    data = replay.save_state(until=pieces.until, stop=stop)
    try:
        write_atomic(pieces.save_state, data)
    except OSError as exc:
        raise StateError(f"cannot save replay state to {pieces.save_state}: {exc}") from exc
    if stop is not None:
        cap = shlex.quote(str(capture))
        print(
            f"stopped at line {stop.line} (ts {stop.ts!r} > {pieces.until!r});"
            f" continue with: tail -n +{stop.line} {cap} > REST",
            file=sys.stderr,
        )
    elif pieces.until is not None:
        print(
            f"the capture ended before a line past {pieces.until!r}; continue with the next"
            " capture, or an empty one for the tail",
            file=sys.stderr,
        )
    else:
        print("saved at the end of the capture, without the tail", file=sys.stderr)
    print(f"state saved to {pieces.save_state}", file=sys.stderr)


@contextlib.contextmanager
def _progress(capture: Capture) -> Iterator[Callable[[], None]]:
    """A progress bar over the capture's bytes, shown only when stderr is a terminal."""
    if not sys.stderr.isatty() or _missing("demo"):
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("replaying", total=capture.size)
        count = 0

        def tick() -> None:
            nonlocal count
            count += 1
            if count % 1000 == 0:
                bar.update(task, completed=capture.position)

        yield tick


def _cmd_run(args: argparse.Namespace) -> int:
    import logging

    from floorwalker.engine.runners.edge import EdgeRunner
    from floorwalker.engine.runners.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    flags = {k: v for k, v in vars(args).items() if k not in ("func", "config")}
    if flags.get("registries"):
        flags["registries"] = tuple(flags["registries"])
    settings = load_settings(flags, config=args.config)
    if settings.http_port is not None:
        _require("web", "run --http-port")
    with EdgeRunner(settings) as runner, contextlib.ExitStack() as page:
        runner.install_signal_handlers()
        where = f", metrics on :{runner.metrics_port}" if runner.metrics_port else ""
        broker = settings.broker.redact()
        print(f"floorwalker: running on {broker}{where}", file=sys.stderr, flush=True)
        if settings.http_port is not None:
            from floorwalker.dashboards.web.server import floor_page

            server = page.enter_context(floor_page(runner))
            print(f"floorwalker: {server.banner()}", file=sys.stderr, flush=True)
        runner.run()
    return 0


def _cmd_profiles_import(args: argparse.Namespace) -> int:
    from floorwalker.engine.stores.redis_profiles import import_profiles

    count = import_profiles(args.redis, args.file, prefix=args.redis_prefix)
    print(f"imported {count} profile(s) into {args.redis}", file=sys.stderr)
    return 0


def _cmd_profiles_segment(args: argparse.Namespace) -> int:
    from floorwalker.engine.stores.segment import segment_profiles

    summary = segment_profiles(args.redis, prefix=args.redis_prefix)
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    return 0


def _cmd_profiles_forget(args: argparse.Namespace) -> int:
    from floorwalker.engine.stores.segment import forget_shopper_everywhere

    counts = forget_shopper_everywhere(args.redis, args.shopper, prefix=args.redis_prefix)
    print(orjson.dumps(counts).decode())
    return 0


def _missing(extra: str) -> list[str]:
    """The modules of an optional extra that cannot be imported here (none imported)."""
    missing = []
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # in sys.modules as None: blocked
            found = False
        if not found:
            missing.append(module)
    return missing


def _require(extra: str, command: str) -> None:
    missing = _missing(extra)
    if missing:
        raise FloorwalkerError(
            f"`floorwalker {command}` needs {', '.join(missing)}: "
            f"pip install 'floorwalker[{extra}]'"
        )


def _cmd_demo(args: argparse.Namespace) -> int:
    if not args.replay:
        _require("demo", "demo")
        from floorwalker.dashboards.demo import DemoSettings, run_demo

        try:
            settings = DemoSettings(
                minutes=args.minutes,
                shoppers=args.shoppers,
                seed=args.seed,
                speed=args.speed,
                real_clock=args.real_clock,
            )
        except ValueError as exc:
            raise ConfigError(f"demo: {exc}") from exc
        try:
            run_demo(settings)
        except KeyboardInterrupt:
            return 130
        return 0

    from floorwalker.engine.runners.replay import ReplaySettings

    print(
        "Floorwalker demo: replaying 10 minutes of the demo store on a virtual clock.\n"
        "Actions (coupons to phones, alerts to staff wristbands) follow as JSON Lines;\n"
        "the per-rule summary comes at the end.\n",
        file=sys.stderr,
    )
    return _replay(
        [DATA / "demo-store.yaml"],
        DATA / "demo-profiles.jsonl",
        CATALOG,
        DATA / "demo-capture.jsonl",
        ReplaySettings(),
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    _require("bench", "bench")
    if args.which == "accuracy":
        from floorwalker.simulators.bench.accuracy import main as bench_accuracy

        return int(bench_accuracy(list(args.rest)))
    if args.which == "scaling":
        from floorwalker.simulators.bench.scaling import main as bench_scaling

        return int(bench_scaling(list(args.rest)))
    if args.which == "cluster":
        from floorwalker.simulators.bench.cluster import main as bench_cluster

        return int(bench_cluster(list(args.rest)))
    if args.which == "live":
        from floorwalker.simulators.bench.live import main as bench_live

        return int(bench_live(list(args.rest)))
    from floorwalker.simulators.bench.core import main as bench_core

    return int(bench_core(list(args.rest)))


if __name__ == "__main__":
    raise SystemExit(main())
