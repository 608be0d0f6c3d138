"""The Redis alert journal: save / load / drop round trip, and a restart through the engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis as redis_py

from floorwalker import services
from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.engine.stores.breaker import BreakerSettings, RedisBreaker
from floorwalker.engine.stores.redis_alerts import RedisAlertJournal, RedisAlertSettings
from floorwalker.errors import GuardStoreError
from floorwalker.rules.model import AlertSpec, RuleSet
from floorwalker.services import RunningService
from tests.engine.conftest import PROFILES, STORE

pytestmark = pytest.mark.integration

SPEC = AlertSpec(to=(), message="Help needed")


def alert(alert_id: str, store: str = "s001", **changes: object) -> OpenAlert:
    a = OpenAlert(
        id=alert_id,
        store=store,
        rule="service-bell",
        spec=SPEC,
        zone="dairy-chilled",
        message="Help needed at dairy",
        created=T0 + 0.125,
        source_key="bell-dairy",
        shopper="app-vip",
        bell="bell-dairy",
        summary={"tier": "vip", "segment": "loyal"},
        advisor="band-08",
        step=2,
        bands=["band-07", "band-08"],
        declined={"band-07"},
        acked_at=None,
    )
    for name, value in changes.items():
        setattr(a, name, value)
    return a


@pytest.fixture
def journal(redis_service: RunningService, unique_prefix: str) -> Iterator[RedisAlertJournal]:
    j = RedisAlertJournal.from_url(
        redis_service.url, RedisAlertSettings(prefix=f"{unique_prefix}:")
    )
    yield j
    j.close()


def test_save_load_drop_round_trip(journal: RedisAlertJournal) -> None:
    first, second = alert("al-1"), alert("al-2", acked_at=T0 + 9.5, acked_by="band-08")
    other_store = alert("al-3", store="s002", shopper=None, summary=None)
    for a in (first, second, other_store):
        journal.save(a)
    records = journal.load()
    assert [(r["store"], r["id"]) for r in records] == [
        ("s001", "al-1"),
        ("s001", "al-2"),
        ("s002", "al-3"),
    ]
    restored = [OpenAlert.from_record(r, SPEC) for r in records]
    assert restored == [first, second, other_store]

    first.step, first.bands = 3, [*first.bands, "band-01"]
    journal.save(first)  # a change overwrites the entry
    journal.drop("s001", "al-2")
    journal.drop("s001", "al-404")  # dropping what is not there is fine
    records = journal.load()
    assert [r["id"] for r in records] == ["al-1", "al-3"]
    assert OpenAlert.from_record(records[0], SPEC) == first


def test_unreadable_entries_are_skipped(
    journal: RedisAlertJournal, redis_service: RunningService
) -> None:
    journal.save(alert("al-1"))
    raw = redis_py.Redis.from_url(redis_service.url)
    raw.hset(journal.settings.key("s001"), "junk", b"{oops")
    raw.close()
    assert [r["id"] for r in journal.load()] == ["al-1"]
    assert journal.bad_records == 1


def test_an_unreachable_redis_is_a_guard_store_error() -> None:
    j = RedisAlertJournal.from_url("redis://127.0.0.1:1/0", RedisAlertSettings(prefix="x:"))
    with pytest.raises(GuardStoreError, match="alert journal save"):
        j.save(alert("al-1"))
    with pytest.raises(GuardStoreError, match="alert journal drop"):
        j.drop("s001", "al-1")
    with pytest.raises(GuardStoreError, match="alert journal load"):
        j.load()
    j.close()


def staffed(catalog: RuleSet, journal: RedisAlertJournal) -> StoreScenario:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES, journal=journal)
    for band, beacon in (("band-07", "b-dairy"), ("band-08", "b-coffee"), ("band-01", "b-door")):
        sc.linger(band, beacon, start=T0 - 5, seconds=400, staff=True)
    return sc


def test_an_engine_restart_resumes_the_escalation_from_redis(
    catalog: RuleSet, journal: RedisAlertJournal
) -> None:
    before = staffed(catalog, journal)
    before.bell(T0 + 10, "bell-dairy", id="press-1")
    before.run_until(T0 + 45)  # steps 1 and 2 sent; the process dies before step 3
    assert [a.step for a in before.alerts("service-bell")] == [1, 2]
    (record,) = journal.load()
    assert record["step"] == 2

    after = staffed(catalog, journal)  # a new process, the same Redis
    assert after.engine.restore_alerts(journal.load()) == 1
    after.run_until(T0 + 200)
    assert [(a.step, a.ts - T0) for a in after.alerts("service-bell")] == [(3, 100.0)]


def test_the_journal_expires_and_drops_stale_entries(
    journal: RedisAlertJournal, redis_service: RunningService
) -> None:
    raw = redis_py.Redis.from_url(redis_service.url, decode_responses=True)
    key = journal.settings.key("s001")
    day = journal.settings.retention_s
    assert day == 86400.0  # location-derived state: the engine's 24 h
    try:
        journal.save(alert("al-old", created=T0))
        assert 0.99 * day * 1000 < raw.pttl(key) <= day * 1000  # a TTL, refreshed on write
        raw.pexpire(key, 5_000)
        journal.save(alert("al-mid", created=T0 + day - 1.0))
        assert raw.pttl(key) > 5_000, "each save refreshes the TTL"
        assert sorted(raw.hkeys(key)) == ["al-mid", "al-old"]
        # An entry whose drop was lost (say, Redis was away) goes once it is a day old,
        # at the next sweep: at most one save a minute (engine clock) reads the hash.
        journal.save(alert("al-new", created=T0 + day + 1.0))
        assert sorted(raw.hkeys(key)) == ["al-mid", "al-new", "al-old"], "swept at T0+day-1"
        journal.save(alert("al-late", created=T0 + day + 60.0))
        assert sorted(raw.hkeys(key)) == ["al-late", "al-mid", "al-new"]
        for gone in ("al-mid", "al-new", "al-late"):
            journal.drop("s001", gone)
        assert raw.exists(key) == 0, "the hash goes with its last entry"
    finally:
        raw.close()


def test_writes_missed_while_redis_is_away_are_flushed_when_it_answers(
    tmp_path: Path, unique_prefix: str
) -> None:
    """Alerts fail open: the failed write waits in the backlog, newest per alert, a drop wins."""
    breaker = RedisBreaker(BreakerSettings(retry_after_s=0.05))
    with services.redis(services.RedisSettings(), tmp_path) as own:
        j = RedisAlertJournal.from_url(
            own.url, RedisAlertSettings(prefix=f"{unique_prefix}:"), breaker=breaker
        )
        try:
            j.save(alert("al-1"))
            own.stop()
            for write in (
                lambda: j.save(alert("al-1", step=3)),
                lambda: j.save(alert("al-2")),
                lambda: j.save(alert("al-3")),
                lambda: j.drop("s001", "al-3"),
            ):
                breaker.begin()
                with pytest.raises(GuardStoreError):
                    write()  # type: ignore[no-untyped-call]
            assert j.backlog == 3, "al-1 newest save, al-2 save, al-3 drop"
            assert breaker.trips == 1
            own.start()
            while j.backlog:  # the circuit lets a probe through after retry_after_s
                time.sleep(0.06)
                breaker.begin()
                j.flush()
            assert [(r["id"], r["step"]) for r in j.load()] == [("al-1", 3), ("al-2", 2)]
        finally:
            j.close()


def test_a_late_save_never_overwrites_a_newer_record(journal: RedisAlertJournal) -> None:
    """A save sent to a paused Redis runs when it resumes: it must not undo a later one."""
    journal.save(alert("al-1", step=3))
    (newer,) = journal.load()
    assert "rev" not in newer, "the revision is the journal's, not the engine's"
    stale = {**newer, "step": 1, "rev": journal._rev - 1}
    day = journal.settings.retention_s
    args = ("al-1", orjson.dumps(stale), repr(T0 - day), int(day * 1000), stale["rev"])
    journal._save(keys=[journal.settings.key("s001")], args=args)
    assert [r["step"] for r in journal.load()] == [3]
