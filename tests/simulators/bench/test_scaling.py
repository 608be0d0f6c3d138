"""``floorwalker bench scaling --quick``: JSON and PNG plots."""

from __future__ import annotations

from pathlib import Path

import orjson

from floorwalker import cli


def test_quick_mode_writes_json_and_plots(tmp_path: Path) -> None:
    out, plots = tmp_path / "scaling.json", tmp_path / "plots"
    code = cli.main(
        ["bench", "scaling", "--quick", "--rules", "10", "--shoppers", "100", "--quiet",
         "--json", str(out), "--plots", str(plots)]
    )  # fmt: skip
    assert code == 0
    data = orjson.loads(out.read_bytes())
    assert [r["rules"] for r in data["rules"]] == [10, 10]
    (point,) = data["shoppers"]
    assert point["tracked_shoppers"] > 0 and point["us_per_event"] > 0
    assert point["bytes_per_tracked_shopper"] > 0
    for name in ("scaling-rules.png", "scaling-shoppers.png"):
        png = (plots / name).read_bytes()
        assert png.startswith(b"\x89PNG")
