"""A faust agent that copies the events topic to another topic: ``bench cluster``'s baseline.

Same faust settings as a worker (:func:`~.worker.faust_app`: the transport with the
same fetch wait, the same group timeouts), one plain agent that sends every
record on, as it came, and acknowledges it as faust does by default. What a
worker costs beyond this is the engine, the core thread and the checkpoints.

``python -m floorwalker.engine.runners.cluster.passthrough --kafka HOST:PORT
--prefix fw --to TOPIC [--app-id ID]``; runs until SIGTERM, then prints how
many records it copied and when the first and the last came.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from faust.types import StreamT
from faust.worker import Worker

from floorwalker.engine.runners.cluster.names import events_topic
from floorwalker.engine.runners.cluster.worker import RateMeter, WorkerSettings, faust_app


def build_passthrough(settings: WorkerSettings, to: str) -> Any:
    app = faust_app(settings)
    source = app.topic(
        events_topic(settings.prefix),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    sink = app.topic(to, key_serializer="raw", value_serializer="raw")
    rate = RateMeter("passthrough")

    async def copy(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            await sink.send(key=event.key, value=event.value)
            rate.add(1)

    async def shutdown(_sender: Any, *_args: Any, signal: Any = None, **_kw: Any) -> None:
        rate.report()

    app.agent(source, name="floorwalker.passthrough")(copy)
    app.on_before_shutdown.connect(shutdown)  # type: ignore[arg-type]
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="floorwalker-passthrough")
    parser.add_argument("--kafka", required=True)
    parser.add_argument("--prefix", default="fw")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--to", required=True)
    parser.add_argument("--app-id", default="floorwalker-passthrough")
    args = parser.parse_args(argv)
    settings = WorkerSettings(
        kafka=args.kafka, app_id=args.app_id, prefix=args.prefix, partitions=args.partitions
    )
    app = build_passthrough(settings, args.to)
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
    return 0  # pragma: no cover (execute_from_commandline exits)


if __name__ == "__main__":
    raise SystemExit(main())
