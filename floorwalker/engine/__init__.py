"""The engine: a deterministic core, its runners and its state stores.

The core (:mod:`floorwalker.engine.core`) never reads the wall clock and never does
I/O; runners feed it events and the time and publish the actions it returns.
"""
