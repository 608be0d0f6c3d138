"""The edge runner needs only the base dependencies: rich, psutil and matplotlib are extras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "floorwalker" / "rules" / "catalog"
DATA = ROOT / "floorwalker" / "simulators" / "data"
EXTRA_MODULES = ("rich", "psutil", "matplotlib", "starlette", "uvicorn")

# Runs the command line with the extras blocked: importing one raises ImportError,
# as if it were not installed.
WITHOUT_EXTRAS = f"""
import sys
for name in {EXTRA_MODULES!r}:
    sys.modules[name] = None
from floorwalker.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def _without_extras(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *argv],
        capture_output=True,
        check=False,
        timeout=120,
    )


def test_importing_the_runner_and_the_cli_imports_no_extra() -> None:
    code = (
        "import sys, floorwalker.cli, floorwalker.engine.runners.edge, "
        "floorwalker.engine.runners.replay, floorwalker.simulators.store\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({EXTRA_MODULES!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_check_and_replay_run_without_the_extras() -> None:
    check = _without_extras("check", str(CATALOG))
    assert check.returncode == 0, check.stderr.decode()
    replay = _without_extras(
        "replay",
        "--registry", str(DATA / "demo-store.yaml"),
        "--profiles", str(DATA / "demo-profiles.jsonl"),
        "--rules", str(CATALOG),
        str(DATA / "demo-capture.jsonl"),
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr.decode()
    assert b'"topic"' in replay.stdout, "the replay wrote actions"


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (("bench", "core"), "bench"),
        (("demo",), "demo"),
        (("run", "--registry", str(DATA / "demo-store.yaml"), "--http-port", "0"), "web"),
    ],
)
def test_bench_and_demo_name_the_extra_they_need(argv: tuple[str, ...], extra: str) -> None:
    done = _without_extras(*argv)
    assert done.returncode == 1
    assert f"pip install 'floorwalker[{extra}]'" in done.stderr.decode()
