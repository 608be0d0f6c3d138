"""``bench live``'s plots: latency against offered rate, one line per target, from the JSON.

``write_plots(report, directory)`` draws, for every series (single sightings,
gateway batches), press -> step-1 alert p50 and p99 against offered sightings/s
for the floor, Floorwalker and Node-RED (whichever the run measured), and the
timer lateness (escalations and dwell offers) p99 of the targets that have
timers. Points where a target did not keep up are drawn hollow: their latency is
queueing, not the path. ``python -m floorwalker.simulators.bench.live_plots
FILE.json DIR`` redraws a saved run.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

STYLE: Final = {
    "floor": ("tab:gray", "floor (paho echo)"),
    "floorwalker": ("tab:blue", "Floorwalker edge runner"),
    "floorwalker-thread": ("tab:cyan", "Floorwalker, paho network thread"),
    "floorwalker-memory": ("tab:green", "Floorwalker, no Redis"),
    "nodered": ("tab:red", "Node-RED 4.1 flow"),
}


def _series(report: Mapping[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for steps in report["targets"].values():
        for s in steps:
            seen.setdefault(s["series"])
    return list(seen)


def _points(steps: Sequence[Mapping[str, Any]], series: str, key: str, q: str) -> list[Any]:
    rows = sorted((s for s in steps if s["series"] == series), key=lambda s: s["offered_rate"])
    return [(s["offered_rate"], s[key][q], bool(s["kept_up"])) for s in rows if s[key][q]]


def _draw(ax: Any, report: Mapping[str, Any], series: str, key: str, qs: Sequence[str]) -> None:
    for name, steps in report["targets"].items():
        color, label = STYLE.get(name, ("black", name))
        for q, dash in zip(qs, ("-", "--"), strict=False):
            pts = _points(steps, series, key, q)
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.plot(xs, ys, dash, color=color, label=f"{label} {q.split('_')[0]}")
            ok = [p for p in pts if p[2]]
            bad = [p for p in pts if not p[2]]
            ax.scatter([p[0] for p in ok], [p[1] for p in ok], color=color, s=18)
            ax.scatter([p[0] for p in bad], [p[1] for p in bad], facecolors="none",
                       edgecolors=color, s=36)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered sightings/s")
    ax.grid(True, which="both", alpha=0.3)


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def write_plots(report: Mapping[str, Any], directory: Path) -> list[Path]:
    """One PNG per series in ``directory``; returns their paths."""
    import matplotlib  # noqa: PLC0415 - an optional dependency (the bench extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for series in _series(report):
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
        _draw(left, report, series, "latency_ms", ("p50_ms", "p99_ms"))
        left.set_ylabel("bell press -> step-1 alert (ms)")
        left.set_title(f"{series}: press latency (hollow: did not keep up)")
        _legend(left)
        _draw(right, report, series, "timer_lateness_ms", ("p99_ms",))
        right.set_ylabel("timer lateness p99 (ms)")
        right.set_title(f"{series}: escalation and dwell lateness")
        _legend(right)
        fig.tight_layout()
        path = directory / f"live-{series}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import orjson  # noqa: PLC0415

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m floorwalker.simulators.bench.live_plots FILE.json DIR")
        return 2
    report = orjson.loads(Path(args[0]).read_bytes())
    for path in write_plots(report, Path(args[1])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
