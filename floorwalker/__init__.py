"""Floorwalker: a real-time in-store engagement engine."""

__version__ = "0.1.0"
