"""The deterministic core: per-store state units behind a thin router.

Nothing here reads the wall clock, does I/O, or imports a runner, a store
adapter or a simulator. Runners feed it events and the time; it returns actions.
"""
