"""Rules: the language marketers write (YAML files) and the compiled model the engine runs.

- :mod:`floorwalker.rules.model` — the compiled, frozen rule values.
- :mod:`floorwalker.rules.loader` — files in, a validated :class:`~floorwalker.rules.model.RuleSet`
  out, or every problem with its file, line and column.
- :mod:`floorwalker.rules.schema` — the surface syntax as pydantic models, also the source of
  the JSON Schema (:mod:`floorwalker.rules.schema_gen`).
"""
