"""The ``floorwalker cluster-demo`` command line (light: the demo loads when it runs)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    """``floorwalker cluster-demo``."""
    demo = sub.add_parser(
        "cluster-demo",
        help="live: tansu, Mosquitto, Redis, the bridge, two workers and a simulated store",
    )
    length = demo.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="stop after N seconds (default: Ctrl-C)")
    length.add_argument("--minutes", type=float, help="stop after N minutes")
    demo.add_argument("--shoppers", type=int, default=100, help="per 10 store minutes")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--speed", type=float, default=1.0, help="store time runs N times faster")
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument("--partitions", type=int, default=4)
    demo.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    seconds = args.seconds if args.minutes is None else args.minutes * 60.0
    from floorwalker.dashboards.cluster_demo import (  # noqa: PLC0415 (heavy; only when run)
        ClusterDemoSettings,
        run_cluster_demo,
    )

    try:
        settings = ClusterDemoSettings(
            seconds=seconds,
            shoppers=args.shoppers,
            seed=args.seed,
            speed=args.speed,
            workers=args.workers,
            partitions=args.partitions,
        )
    except ValueError as exc:
        print(f"floorwalker cluster-demo: {exc}", file=sys.stderr)
        return 2
    result = run_cluster_demo(settings)
    return 0 if all(code == 0 for code in result.exit_codes.values()) else 1
