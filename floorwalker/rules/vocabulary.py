"""The words rules may use for zones and staff, and "did you mean" for the rest.

Rules name zones by tag and staff by role so that one rule set serves every
store. The built-in words cover a typical grocery or department store; a rules
directory extends them with ``vocabulary.yaml`` and the runner with the tags
and roles its store registries actually use.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

BUILTIN_ZONE_TAGS: frozenset[str] = frozenset(
    {
        "entrance",
        "chilled",
        "dairy",
        "frozen",
        "coffee-bar",
        "bakery",
        "produce",
        "cosmetics-testers",
        "high-consideration",
        "checkout",
        "fitting-room",
        "electronics",
        "toys",
        "baby",
        "pharmacy",
    }
)
BUILTIN_ROLES: frozenset[str] = frozenset(
    {"associate", "manager", "supervisor", "cashier", "advisor", "security"}
)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    zone_tags: frozenset[str] = BUILTIN_ZONE_TAGS
    roles: frozenset[str] = BUILTIN_ROLES

    def extended(self, *, zone_tags: Iterable[str] = (), roles: Iterable[str] = ()) -> Vocabulary:
        return Vocabulary(self.zone_tags | frozenset(zone_tags), self.roles | frozenset(roles))


DEFAULT_VOCABULARY = Vocabulary()


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` was most likely meant to be, if any is close enough."""
    by_folded = {c.lower(): c for c in sorted(choices)}
    match = difflib.get_close_matches(word.lower(), list(by_folded), n=1, cutoff=0.6)
    return by_folded[match[0]] if match else None
