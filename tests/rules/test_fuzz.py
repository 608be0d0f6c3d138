"""Fuzz tests: garbled rule files, registries and wire messages are refused, never crash.

The mutations are those of ``python -m floorwalker.rules.fuzz`` (the long run,
see docs/reliability.md), driven here by hypothesis for a few hundred inputs per
target, well within a minute in all. A failure prints the seed or text to
reproduce it with.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floorwalker.rules.fuzz import CATALOG, SNIPPETS, Failure, Fuzzer, mutate, mutate_wire

SEEDS = st.integers(min_value=0, max_value=2**64 - 1)
CATALOG_LINES = sorted(
    {line for p in CATALOG.glob("*.yaml") for line in p.read_text("utf-8").splitlines()}
)
# Text built from pieces that matter to YAML, so hypothesis can shrink a failure.
PIECES = st.one_of(
    st.sampled_from(SNIPPETS),
    st.sampled_from(CATALOG_LINES).map(lambda line: line + "\n"),
    st.text(alphabet=" \n\t:-[]{},&*!|>#'\"%@`?~0123456789.esdhm", max_size=8),
    st.text(max_size=4),
)
YAMLISH = st.lists(PIECES, max_size=24).map("".join)


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    yield Fuzzer(tmp_path_factory.mktemp("fuzz"), slow_s=10.0)


def _no_failures(fuzzer: Fuzzer) -> None:
    failures: list[Failure] = fuzzer.report.failures
    if failures:
        first = failures[0]
        fuzzer.report.failures = []
        pytest.fail(f"{first.target} {first.kind}: {first.detail}\ninput: {first.data[:300]!r}")


@given(seed=SEEDS)
@settings(max_examples=250, deadline=None)
def test_mutated_rule_files_are_refused_with_positions(fuzzer: Fuzzer, seed: int) -> None:
    rng = random.Random(seed)
    policy = mutate(rng, [fuzzer.policy_seed]) if rng.random() < 0.2 else None
    fuzzer.rules(mutate(rng, fuzzer.rule_seeds), policy)
    _no_failures(fuzzer)


@given(text=YAMLISH)
@settings(max_examples=250, deadline=None)
def test_yamlish_text_is_a_rule_or_positioned_problems(fuzzer: Fuzzer, text: str) -> None:
    fuzzer.rules(text.encode("utf-8", errors="surrogatepass"))
    _no_failures(fuzzer)


@given(seed=SEEDS)
@settings(max_examples=120, deadline=None)
def test_mutated_registries_are_config_errors(fuzzer: Fuzzer, seed: int) -> None:
    fuzzer.registry_file(mutate(random.Random(seed), fuzzer.registry_seeds))
    _no_failures(fuzzer)


@given(text=YAMLISH)
@settings(max_examples=120, deadline=None)
def test_yamlish_registries_are_config_errors(fuzzer: Fuzzer, text: str) -> None:
    fuzzer.registry_file(b"store: s1\nzones: {a: {}}\n" + text.encode(errors="surrogatepass"))
    _no_failures(fuzzer)


@given(seed=SEEDS)
@settings(max_examples=1500, deadline=None)
def test_mutated_wire_messages_never_raise(fuzzer: Fuzzer, seed: int) -> None:
    fuzzer.wire_message(*mutate_wire(random.Random(seed), fuzzer.wire))
    _no_failures(fuzzer)


def test_a_short_random_run_of_every_target_finds_nothing(fuzzer: Fuzzer) -> None:
    report = fuzzer.run(3.0, seed=20240601)
    assert set(report.tried) == {"rules", "registry", "decoder"}
    assert report.tried["rules"] >= 5
    _no_failures(fuzzer)


def test_the_fuzzer_does_report_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It is not a fuzzer if it cannot fail: break the decoder and look."""
    own = Fuzzer(tmp_path)

    def broken(topic: str, payload: bytes, arrival: float) -> list[object]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(own.decoder, "decode", broken)
    own.wire_message("fw/s001/bell/x", b"{}")
    (failure,) = own.report.failures
    assert (failure.target, failure.kind) == ("decoder", "ZeroDivisionError")
    assert failure.signature == ("decoder", "ZeroDivisionError", "a bug")
