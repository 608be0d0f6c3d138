"""The alert book's routing figures stay equal to a recount whatever staff do."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from floorwalker.engine.core.alerts import AlertBook, holder
from floorwalker.engine.core.testing import T0
from tests.engine.conftest import STORE
from tests.engine.core.test_alert_lifecycle import BELL, rules, staffed

ANSWERS = st.lists(
    st.tuples(
        st.integers(1, 120),
        st.sampled_from(["ack", "decline", "done"]),
        st.sampled_from(["band-07", "band-08"]),
    ),
    max_size=12,
)


def recount(book: AlertBook) -> dict[str, int]:
    out: dict[str, int] = {}
    for alert in book.alerts.values():
        band = holder(alert)
        if band is not None:
            out[band] = out.get(band, 0) + 1
    return out


@settings(max_examples=25, deadline=None)
@given(presses=st.lists(st.integers(0, 200), min_size=1, max_size=6), answers=ANSWERS)
def test_held_pages_and_acknowledged_alerts_match_a_recount(
    tmp_path_factory: object, presses: list[int], answers: list[tuple[int, str, str]]
) -> None:
    tmp = Path(str(tmp_path_factory.mktemp("book")))  # type: ignore[attr-defined]
    sc = staffed(rules(tmp, BELL))
    for at in sorted(presses):
        sc.bell(T0 + at, "bell-dairy")
    book = sc.engine.stores[STORE["store"]].state.alerts
    now = T0
    for delay, action, band in sorted(answers):
        now = max(now, T0 + delay)
        sc.run_until(now)
        for alert in list(book.alerts.values()):
            sc.ack(now, band, alert.id, action)
        sc.run_until(now + 0.5)
        assert book.held == recount(book)
        assert set(book.acked) == {
            a.id
            for a in book.alerts.values()
            if a.acked_at is not None and a.closed_at is None and a.ended_at is None
        }
    sc.run_until(T0 + 400)
    assert book.held == recount(book)
