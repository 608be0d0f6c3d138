"""Write the JSON Schemas of rule and policy files, generated from :mod:`floorwalker.rules.schema`.

Run ``python -m floorwalker.rules.schema_gen [OUT_DIR]`` (default ``schemas/``) after
changing the surface models; the output is deterministic, so the committed files
can be compared with a fresh generation in tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from floorwalker.rules.schema import PolicyFile, RuleFile

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS: dict[str, type[BaseModel]] = {
    "rule.schema.json": RuleFile,
    "policy.schema.json": PolicyFile,
}
DEFAULT_DIR = Path("schemas")


def generate(model: type[BaseModel]) -> dict[str, Any]:
    return {"$schema": DRAFT, **model.model_json_schema(by_alias=True, mode="validation")}


def render(model: type[BaseModel]) -> str:
    return json.dumps(generate(model), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = DEFAULT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMAS.items():
        path = directory / name
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    for path in write_schemas(Path(args[0]) if args else DEFAULT_DIR):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
