"""Write the JSON Schemas of rule, policy and vocabulary files, generated from
:mod:`floorwalker.rules.schema`.

Run ``python -m floorwalker.rules.schema_gen`` after changing the surface models: it
writes the repository's copies in ``schemas/`` and the installed copies beside the
shipped catalog (``floorwalker/rules/catalog/floorwalker-*.schema.json``, package
data: what ``floorwalker rules init`` copies next to a marketer's rules). With a
directory argument it writes only the ``schemas/`` names there. The output is
deterministic, so tests compare the committed files with a fresh generation.

The zone tags and staff roles a schema offers as completions are a vocabulary's
(``examples``, not an enum, so a word added in ``vocabulary.yaml`` is still valid).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from floorwalker.rules.schema import (
    ROLE_TITLE,
    ZONE_TAG_TITLE,
    PolicyFile,
    RuleFile,
    VocabularyFile,
)
from floorwalker.rules.vocabulary import DEFAULT_VOCABULARY, Vocabulary

DRAFT = "https://json-schema.org/draft/2020-12/schema"
MODELS: dict[str, type[BaseModel]] = {
    "rule": RuleFile,
    "policy": PolicyFile,
    "vocabulary": VocabularyFile,
}
REPO_NAMES: dict[str, str] = {kind: f"{kind}.schema.json" for kind in MODELS}
"""The copies under ``schemas/`` in the repository."""
INSTALLED_NAMES: dict[str, str] = {
    "rule": "floorwalker-rules.schema.json",
    "policy": "floorwalker-policy.schema.json",
    "vocabulary": "floorwalker-vocabulary.schema.json",
}
"""The copies beside a rules directory (and the shipped catalog); rule files name them
``# yaml-language-server: $schema=./floorwalker-rules.schema.json``."""
SCHEMAS: dict[str, type[BaseModel]] = {REPO_NAMES[k]: m for k, m in MODELS.items()}
DEFAULT_DIR = Path("schemas")
CATALOG_DIR = Path(__file__).parent / "catalog"


def generate(model: type[BaseModel], vocabulary: Vocabulary = DEFAULT_VOCABULARY) -> dict[str, Any]:
    schema = {"$schema": DRAFT, **model.model_json_schema(by_alias=True, mode="validation")}
    words = {ZONE_TAG_TITLE: sorted(vocabulary.zone_tags), ROLE_TITLE: sorted(vocabulary.roles)}
    _set_examples(schema, words)
    return schema


def _set_examples(node: Any, words: Mapping[str, list[str]]) -> None:
    if isinstance(node, dict):
        title = node.get("title")
        if isinstance(title, str) and title in words and "examples" in node:
            node["examples"] = list(words[title])
        for value in node.values():
            _set_examples(value, words)
    elif isinstance(node, list):
        for value in node:
            _set_examples(value, words)


def render(model: type[BaseModel], vocabulary: Vocabulary = DEFAULT_VOCABULARY) -> str:
    return json.dumps(generate(model, vocabulary), indent=2, ensure_ascii=False) + "\n"


def write_schemas(
    directory: Path = DEFAULT_DIR,
    *,
    names: Mapping[str, str] = REPO_NAMES,
    vocabulary: Vocabulary = DEFAULT_VOCABULARY,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, name in names.items():
        path = directory / name
        path.write_text(render(MODELS[kind], vocabulary), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        written = write_schemas(Path(args[0]))
    else:
        written = write_schemas(DEFAULT_DIR) + write_schemas(CATALOG_DIR, names=INSTALLED_NAMES)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
