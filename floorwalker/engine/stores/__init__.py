"""Shared-state implementations of the engine's store interfaces (Redis)."""

from floorwalker.engine.stores.pos_history import PosHistory, PosHistorySettings
from floorwalker.engine.stores.redis_alerts import RedisAlertJournal, RedisAlertSettings
from floorwalker.engine.stores.redis_guards import RedisGuardSettings, RedisGuardStore
from floorwalker.engine.stores.redis_profiles import RedisProfiles, RedisProfileSettings

__all__ = [
    "PosHistory",
    "PosHistorySettings",
    "RedisAlertJournal",
    "RedisAlertSettings",
    "RedisGuardSettings",
    "RedisGuardStore",
    "RedisProfileSettings",
    "RedisProfiles",
]
