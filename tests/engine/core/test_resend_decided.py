"""A decision the shared guard store already holds (made before a crash, maybe never sent)."""

from __future__ import annotations

import pytest

from floorwalker.engine.core.guards import InMemoryGuardStore
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PROFILES, STORE


def dwell_once(catalog: RuleSet, guards: InMemoryGuardStore, *, resend: bool) -> StoreScenario:
    settings = EngineSettings(device_silence_s=float("inf"), resend_decided=resend)
    sc = StoreScenario(catalog, STORE, profiles=PROFILES, guards=guards, settings=settings)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=15)
    sc.run_until(T0 + 30)
    return sc


@pytest.mark.parametrize("resend", [False, True])
def test_redecided_offer_is_refused_or_sent_again_with_its_first_id(
    catalog: RuleSet, resend: bool
) -> None:
    guards = InMemoryGuardStore()
    first = dwell_once(catalog, guards, resend=resend).offers("chilled-dwell-bogo")
    assert len(first) == 1
    # The same traffic again on a fresh engine (the state of the first was lost).
    again = dwell_once(catalog, guards, resend=resend)
    if resend:
        assert [(o.id, o.code) for o in again.offers("chilled-dwell-bogo")] == [
            (first[0].id, first[0].code)
        ]
    else:
        assert again.offers("chilled-dwell-bogo") == []
        assert "duplicate" in again.suppressed("chilled-dwell-bogo")
