"""The package's layering, read from the imports (ast; functions and TYPE_CHECKING included)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "floorwalker"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _offenders(files: list[Path], forbidden: str) -> list[str]:
    return sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in files
        if any(n == forbidden or n.startswith(forbidden + ".") for n in _imports(path))
    )


def test_simulators_never_import_dashboards() -> None:
    files = sorted((PACKAGE / "simulators").rglob("*.py"))
    assert _offenders(files, "floorwalker.dashboards") == []


def test_generators_never_import_the_benchmarks() -> None:
    generators = sorted((PACKAGE / "simulators").glob("*.py"))
    assert generators, "the generators sit directly in simulators/"
    assert _offenders(generators, "floorwalker.simulators.bench") == []


def test_only_the_runners_mqtt_module_imports_paho() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert _offenders(files, "paho") == ["floorwalker/engine/runners/mqtt.py"]


def test_only_the_cluster_runner_imports_faust_and_aiokafka() -> None:
    cluster = PACKAGE / "engine" / "runners" / "cluster"
    for library in ("faust", "aiokafka", "mode"):
        outside = [p for p in _offenders(sorted(PACKAGE.rglob("*.py")), library)]
        assert all(p.startswith(str(cluster.relative_to(PACKAGE.parent))) for p in outside), (
            library,
            outside,
        )
    assert _offenders(sorted(cluster.glob("*.py")), "faust") == [
        "floorwalker/engine/runners/cluster/passthrough.py",  # bench cluster's baseline agent
        "floorwalker/engine/runners/cluster/recovery.py",  # faust's table recovery, reordered
        "floorwalker/engine/runners/cluster/worker.py",
    ]
