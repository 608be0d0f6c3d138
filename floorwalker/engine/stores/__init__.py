"""Shared-state implementations of the engine's store interfaces (Redis)."""

from floorwalker.engine.stores.redis_guards import RedisGuardSettings, RedisGuardStore

__all__ = ["RedisGuardSettings", "RedisGuardStore"]
