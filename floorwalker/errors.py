"""One root exception and a small, documented tree.

Everything Floorwalker raises on purpose derives from :class:`FloorwalkerError`,
so a runner can tell "our error, report it" from "a bug, crash loudly".

- :class:`ConfigError` — an operator file (registry, profiles, settings) is wrong.
- :class:`RuleError` — a rule file is wrong; carries file, line, column and a
  suggestion so a marketer can fix it.
- :class:`RuleSetError` — several :class:`RuleError` found in one check.
- :class:`ScenarioError` — a scenario of ``floorwalker rules test`` is refused, with
  file:line:col, the offending word and a suggestion, like a rule file.
- :class:`GuardStoreError` — the shared guard state (caps, budgets, dedup) could
  not be reached; offers fail closed on it.
- :class:`StateError` — saved engine state (a store snapshot, a replay state
  file) cannot be restored: bad bytes, or a schema version this build does not know.
- :class:`ServiceError` — a local server (Mosquitto, Redis) that Floorwalker
  starts itself is missing or would not start; says how to fix it.

Bad device input is *not* an exception: decoders return a ``Rejection`` value,
because a malformed message is an expected event on a shop floor, not an error
of the program.
"""

from __future__ import annotations

from dataclasses import dataclass


class FloorwalkerError(Exception):
    """Root of every error Floorwalker raises on purpose."""


class ConfigError(FloorwalkerError):
    """An operator-written file (registry, profiles, settings) is invalid."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.col = col
        """1-based column, when known (``file:line:col: message``)."""
        self.message = message
        """The message without the position."""
        where = file if file else ""
        if file and line:
            where = f"{file}:{line}:{col}" if col else f"{file}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class RuleProblem:
    """One problem in a rule file, positioned for an editor (1-based line and column)."""

    file: str
    line: int
    col: int
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        hint = f" (did you mean `{self.suggestion}`?)" if self.suggestion else ""
        return f"{self.file}:{self.line}:{self.col}: {self.message}{hint}"


class RuleError(FloorwalkerError):
    """A rule file is refused; ``problem`` says where and why."""

    def __init__(self, problem: RuleProblem) -> None:
        self.problem = problem
        super().__init__(str(problem))


class RuleSetError(FloorwalkerError):
    """One or more rule files are refused; the rules already running keep running."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ScenarioError(RuleSetError):
    """A rule scenario (``floorwalker rules test --scenario``) is refused, problem by problem."""


class GuardStoreError(FloorwalkerError):
    """The guard store (caps, budgets, cooldowns, dedup) is unreachable or failed."""


class StateError(FloorwalkerError):
    """Saved engine state cannot be restored (corrupt, or an unknown schema version)."""


class ServiceError(FloorwalkerError):
    """A server Floorwalker starts itself (Mosquitto, Redis) is missing or failed to start."""
