"""Scenario files of ``floorwalker rules test``: a short story in store time and zone names.

A marketer writes what happens on the floor the way they would tell it, not as
MQTT JSON with epoch timestamps and device ids::

    store: s001                # optional when the registry has one store
    date: 2026-03-02           # store-local (default 2026-03-02, a Monday)
    shoppers:                  # optional: a shopper not listed is a member who agreed to offers
      s1: {tier: gold, lifetime_value: 6000, last_visit: 200 days ago}
      s2: anonymous            # no profile: a first-time visitor, no marketing consent
    story:
      - "09:00:00 shopper s1 at dairy for 12 s"
      - "09:01 s1 buys yogurt"
      - "09:02 bell at cosmetics"
      - "09:02:20 band-05 acks"
    expect:
      - "09:00:10 offer chilled-dwell-bogo to s1"

Each story line is a store-local time and one sentence (see :data:`SENTENCES`).
This module only reads and checks the file: every word is resolved against the
registry (zone ids or a tag naming one zone, bells, bands, devices) and a bad one
is refused with ``file:line:col``, the word and the nearest right one.
:mod:`floorwalker.engine.runners.scenario` turns the story into the contract's
events and runs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, NoReturn

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from floorwalker.devices.registry import Registry
from floorwalker.engine.core.profiles import Profile
from floorwalker.errors import RuleProblem, ScenarioError
from floorwalker.rules.loader import MAX_RULE_FILE_BYTES
from floorwalker.rules.model import Segment, Tier
from floorwalker.rules.problems import issues_from, to_problem
from floorwalker.rules.schema import Day, TimeOfDay, issue
from floorwalker.rules.vocabulary import closest
from floorwalker.yamlpos import YamlDocument, YamlError, read_yaml_file

DEFAULT_DATE = date(2026, 3, 2)
DEFAULT_LINGER_S = 5.0
"""``shopper s1 at dairy`` with no ``for``: long enough for presence to place them."""
DEFAULT_PRICE = 9.9
SENTENCES = (
    "shopper S at ZONE [for 12 s]",
    "S buys CATEGORY [sku SKU] [for 3.50]",
    "S pays 42.50  |  S checks out [42.50]",
    "S redeems OFFER",
    "bell at ZONE [reason R] [by S]  |  bell BELL [reason R] [by S]",
    "staff BAND at ZONE [for 5 m]",
    "BAND acks  |  BAND declines  |  BAND done",
    "device DEVICE offline  |  device DEVICE online",
)
"""What a story line may say after its time (the help shown with a refused line)."""
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
}
_SHOPPER_VERBS = ("at", "buys", "pays", "checks", "redeems")
_BAND_VERBS = {
    "at": "at",
    "acks": "ack",
    "ack": "ack",
    "acknowledges": "ack",
    "declines": "decline",
    "decline": "decline",
    "done": "done",
    "finishes": "done",
}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?$")
_DAYS_AGO = re.compile(r"^(\d+(?:\.\d+)?) days? ago$")
_TOKEN = re.compile(r"\S+")


# --------------------------------------------------------------------------- the story


@dataclass(frozen=True, slots=True)
class Where:
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Linger:
    """Sightings of ``subject`` by a beacon of ``zone``, every second for ``seconds``."""

    at: float
    where: Where
    subject: str
    zone: str
    seconds: float
    staff: bool = False


@dataclass(frozen=True, slots=True)
class Buy:
    at: float
    where: Where
    shopper: str
    category: str | None
    sku: str | None
    price: float


@dataclass(frozen=True, slots=True)
class Pay:
    """A checkout; ``total`` None: what the shopper's open receipt adds up to."""

    at: float
    where: Where
    shopper: str
    total: float | None


@dataclass(frozen=True, slots=True)
class Redeem:
    """The coupon of ``offer`` (an offer or rule id) the shopper last received."""

    at: float
    where: Where
    shopper: str
    offer: str


@dataclass(frozen=True, slots=True)
class Press:
    at: float
    where: Where
    bell: str
    reason: str | None
    shopper: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    """The band answers the last alert it was paged with."""

    at: float
    where: Where
    band: str
    action: str


@dataclass(frozen=True, slots=True)
class Status:
    at: float
    where: Where
    device: str
    online: bool


Step = Linger | Buy | Pay | Redeem | Press | Answer | Status


@dataclass(frozen=True, slots=True)
class Expected:
    """One ``expect`` line: an action at a time, to the second or to the minute."""

    at: float
    precision: float
    """1 when written HH:MM:SS, 60 when written HH:MM."""
    kind: str
    rule: str
    target: str
    step: int | None
    where: Where


@dataclass(frozen=True)
class Story:
    file: str
    registry: Registry
    date: date
    profiles: tuple[Profile, ...]
    steps: tuple[Step, ...]
    expect: tuple[Expected, ...] | None
    """None: nothing to compare, just show what happens."""
    until: float | None
    """Seconds after local midnight to run to; None: until every timer has fired."""

    def epoch(self, seconds: float) -> float:
        """Store-local seconds after midnight of the story's date, as epoch seconds."""
        midnight = datetime.combine(self.date, time(0), tzinfo=self.registry.tzinfo)
        whole = int(seconds)
        local = (midnight + timedelta(seconds=whole)).replace(fold=0)
        return local.timestamp() + (seconds - whole)

    def local(self, ts: float) -> str:
        """Epoch seconds as store-local ``HH:MM:SS`` (with the date if it is another day)."""
        moment = datetime.fromtimestamp(round(ts, 3), tz=self.registry.tzinfo)
        clock = moment.strftime("%H:%M:%S")
        return clock if moment.date() == self.date else f"{moment.date().isoformat()} {clock}"

    def seconds_of_day(self, ts: float) -> float:
        moment = datetime.fromtimestamp(round(ts, 3), tz=self.registry.tzinfo)
        days = (moment.date() - self.date).days
        return days * 86400.0 + moment.hour * 3600 + moment.minute * 60 + moment.second


# --------------------------------------------------------------------------- the file


def _past_day(value: Any) -> Any:
    """``last_visit: 2025-08-01`` or ``last_visit: 200 days ago``."""
    if isinstance(value, str) and (m := _DAYS_AGO.match(value.strip())):
        return float(m[1])
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise issue(
            f"`{value}` is not a day; write YYYY-MM-DD or `N days ago`, e.g. 200 days ago"
        ) from None


PastDay = Annotated[date | float, BeforeValidator(_past_day)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _anonymous(value: Any) -> Any:
    if value == "anonymous":
        return {"anonymous": True}
    if isinstance(value, str):
        raise issue(
            f"`{value}` is not a profile; write `anonymous` or a mapping like {{tier: gold}}"
        )
    return value


class ShopperModel(_Model):
    """A story shopper's profile; what is not said is a member's."""

    anonymous: bool = Field(
        default=False, description="true: no profile (written `s2: anonymous`)."
    )
    tier: Tier = Field(default="member", description="member, silver, gold or vip.")
    segment: Segment = Field(default="regular", description="loyal, growing, dormant, regular.")
    consent: bool = Field(default=True, description="Agreed to marketing offers.")
    birthday: str | None = Field(
        default=None, pattern=r"^\d{2}-\d{2}$", description="MM-DD, e.g. 03-04."
    )
    first_visit: PastDay | None = Field(
        default=None, description="A day, or `N days ago` (default: 365 days ago)."
    )
    last_visit: PastDay | None = Field(
        default=None, description="A day, or `N days ago` (default: 7 days ago)."
    )
    lifetime_value: float = Field(default=0.0, ge=0, description="Lifetime spend.")
    advisor: str | None = Field(default=None, description="Their advisor's band id.")


class ScenarioFile(_Model):
    """A short story to try rules on (``floorwalker rules test RULE --scenario FILE``)."""

    store: str | None = Field(default=None, description="The store, if the registry has several.")
    date: Day = Field(default=DEFAULT_DATE, description="The store-local day, YYYY-MM-DD.")
    shoppers: dict[str, Annotated[ShopperModel, BeforeValidator(_anonymous)]] = Field(
        default_factory=dict, description="Profiles of the story's shoppers, or `anonymous`."
    )
    story: list[str] = Field(min_length=1, description="What happens, one line each.")
    expect: list[str] | None = Field(
        default=None, description="The actions that should follow, one line each."
    )
    until: TimeOfDay | None = Field(
        default=None, description='Run to this store time, "HH:MM" (default: all timers).'
    )


def read_story(
    path: Path, registries: Mapping[str, Registry], rules: Iterable[str] | None
) -> Story:
    """Read and check a scenario; raise :class:`ScenarioError` with every problem found.

    ``rules``: the rule ids ``expect`` lines may name (None: do not read ``expect`` yet).
    """
    file = str(path)
    try:
        doc = read_yaml_file(path, max_bytes=MAX_RULE_FILE_BYTES, what="a scenario")
    except OSError as exc:
        problem = RuleProblem(file, 1, 1, f"cannot be read: {exc.strerror or exc}")
        raise ScenarioError([problem]) from None
    except YamlError as exc:
        problems = [RuleProblem(file, i.line, i.col, i.message) for i in exc.issues]
        raise ScenarioError(problems) from None
    if not isinstance(doc.data, dict):
        raise ScenarioError([RuleProblem(file, 1, 1, "a scenario is a mapping with `story:`")])
    try:
        spec = ScenarioFile.model_validate(doc.data)
    except ValidationError as exc:
        issues = issues_from(exc, doc.data, ScenarioFile)
        raise ScenarioError([to_problem(file, doc, i) for i in issues]) from None
    registry = _registry(file, doc, spec, registries)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    reader = _Reader(file, doc, lines, registry)
    steps = reader.steps(spec.story)
    shoppers = {s for st in steps for s in _shoppers_of(st)} | set(spec.shoppers)
    expect = None
    if spec.expect is not None and rules is not None:
        expect = reader.expected(spec.expect, set(rules), shoppers)
    if reader.problems:
        raise ScenarioError(reader.problems)
    profiles = _profiles(spec, shoppers, registry)
    until = None if spec.until is None else spec.until * 60.0
    return Story(file, registry, spec.date, profiles, tuple(steps), expect, until)


def _registry(
    file: str, doc: YamlDocument, spec: ScenarioFile, registries: Mapping[str, Registry]
) -> Registry:
    if spec.store is None:
        if len(registries) == 1:
            return next(iter(registries.values()))
        names = ", ".join(sorted(registries))
        raise ScenarioError(
            [RuleProblem(file, 1, 1, f"add `store:`; the registries hold several stores: {names}")]
        )
    if spec.store in registries:
        return registries[spec.store]
    pos = doc.value_pos(("store",))
    raise ScenarioError(
        [
            RuleProblem(
                file,
                pos.line,
                pos.col,
                f"store: no registry is of store `{spec.store}`"
                f" (given: {', '.join(sorted(registries))})",
                closest(spec.store, registries),
            )
        ]
    )


def _shoppers_of(step: Step) -> list[str]:
    if isinstance(step, Linger):
        return [] if step.staff else [step.subject]
    if isinstance(step, Buy | Pay | Redeem):
        return [step.shopper]
    if isinstance(step, Press) and step.shopper:
        return [step.shopper]
    return []


def _profiles(
    spec: ScenarioFile, shoppers: Iterable[str], registry: Registry
) -> tuple[Profile, ...]:
    tz = registry.tzinfo
    midnight = datetime.combine(spec.date, time(0), tzinfo=tz).timestamp()
    out = []
    for shopper in sorted(shoppers):
        model = spec.shoppers.get(shopper) or ShopperModel()
        if model.anonymous:
            continue
        birthday = None
        if model.birthday is not None:
            month, day = model.birthday.split("-")
            birthday = (int(month), int(day))
        out.append(
            Profile(
                shopper,
                tier=model.tier,
                segment=model.segment,
                marketing=model.consent,
                birthday=birthday,
                first_visit=_past(model.first_visit, midnight, 365.0, tz),
                last_visit=_past(model.last_visit, midnight, 7.0, tz),
                lifetime_value=model.lifetime_value,
                advisor=model.advisor,
            )
        )
    return tuple(out)


def _past(value: date | float | None, midnight: float, default_days: float, tz: tzinfo) -> float:
    if isinstance(value, date):
        return datetime.combine(value, time(12), tzinfo=tz).timestamp()
    days = default_days if value is None else value
    return midnight - days * 86400.0


# --------------------------------------------------------------------------- lines


class _RefusedError(Exception):
    def __init__(self, col: int, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.col = col
        self.message = message
        self.suggestion = suggestion


class _Reader:
    """Reads story and expect lines, collecting one problem per bad line."""

    def __init__(self, file: str, doc: YamlDocument, text: list[str], registry: Registry) -> None:
        self.file = file
        self.doc = doc
        self.text = text
        self.registry = registry
        self.problems: list[RuleProblem] = []

    def _where(self, path: tuple[str | int, ...]) -> Where:
        pos = self.doc.value_pos(path)
        line = self.text[pos.line - 1] if 0 < pos.line <= len(self.text) else ""
        quoted = pos.col <= len(line) and line[pos.col - 1] in "\"'"
        return Where(pos.line, pos.col + (1 if quoted else 0))

    def _refuse(self, where: Where, exc: _RefusedError) -> None:
        col = where.col + exc.col
        self.problems.append(RuleProblem(self.file, where.line, col, exc.message, exc.suggestion))

    def steps(self, lines: list[str]) -> list[Step]:
        out: list[Step] = []
        last = float("-inf")
        for i, text in enumerate(lines):
            where = self._where(("story", i))
            try:
                step = _Sentence(text, where, self.registry).step()
                if step.at < last:
                    raise _RefusedError(0, "goes back in time; write the story in time order")
            except _RefusedError as exc:
                self._refuse(where, exc)
                continue
            last = step.at
            out.append(step)
        return out

    def expected(
        self, lines: list[str], rules: set[str], shoppers: set[str]
    ) -> tuple[Expected, ...]:
        out: list[Expected] = []
        for i, text in enumerate(lines):
            where = self._where(("expect", i))
            try:
                out.append(_Sentence(text, where, self.registry).expected(rules, shoppers))
            except _RefusedError as exc:
                self._refuse(where, exc)
        return tuple(out)


class _Sentence:
    """One line's words, with their offsets, read left to right."""

    def __init__(self, text: str, where: Where, registry: Registry) -> None:
        body = text.split("#", 1)[0]
        self.tokens = [(m.group(), m.start()) for m in _TOKEN.finditer(body)]
        self.end = len(body.rstrip())
        self.i = 0
        self.where = where
        self.registry = registry

    # ------------------------------------------------------------------ words

    def _peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def _col(self) -> int:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else self.end

    def _take(self, what: str) -> tuple[str, int]:
        if self.i >= len(self.tokens):
            raise _RefusedError(self.end, f"the line ends where {what} should be")
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _fail(
        self, token: tuple[str, int], message: str, suggestion: str | None = None
    ) -> NoReturn:
        raise _RefusedError(token[1], message, suggestion)

    def _done(self) -> None:
        if self.i < len(self.tokens):
            token = self.tokens[self.i]
            self._fail(token, f"unexpected `{token[0]}` after the end of the sentence")

    def _accept(self, *words: str) -> bool:
        nxt = self._peek()
        if nxt is not None and nxt.lower() in words:
            self.i += 1
            return True
        return False

    # ------------------------------------------------------------------ story

    def step(self) -> Step:
        at = self._time()
        token = self._take("what happens")
        word = token[0].lower()
        if word == "shopper":
            step = self._shopper(at, self._take("a shopper id")[0])
        elif word == "staff":
            step = self._band(at, self._known_band(self._take("a band id")))
        elif word == "bell":
            step = self._bell(at)
        elif word == "device":
            step = self._device(at)
        elif token[0] in self.registry.staff:
            step = self._band(at, token[0])
        else:
            step = self._shopper(at, token[0])
        self._done()
        return step

    def _shopper(self, at: float, shopper: str) -> Step:
        token = self._take("what the shopper does (at, buys, pays, checks out, redeems)")
        verb = token[0].lower()
        if verb == "at":
            zone = self._zone()
            seconds = self._duration() if self._accept("for") else DEFAULT_LINGER_S
            return Linger(at, self.where, shopper, zone, seconds)
        if verb == "buys":
            return self._buy(at, shopper)
        if verb == "pays":
            return Pay(at, self.where, shopper, self._amount("the total"))
        if verb == "checks":
            out = self._take("`out`")
            if out[0].lower() != "out":
                self._fail(out, f"`{out[0]}`: write `checks out`", "out")
            self._accept("for", "total")
            total = self._amount("the total") if self._peek() is not None else None
            return Pay(at, self.where, shopper, total)
        if verb == "redeems":
            return Redeem(at, self.where, shopper, self._take("an offer id")[0])
        self._fail(
            token,
            f"`{token[0]}` is not something a shopper does here; write one of: "
            + "; ".join(SENTENCES[:4]),
            closest(verb, _SHOPPER_VERBS),
        )

    def _buy(self, at: float, shopper: str) -> Buy:
        category = sku = None
        if self._accept("sku"):
            sku = self._take("a SKU")[0]
        else:
            category = self._take("a category (or `sku SKU`)")[0]
            if self._accept("sku"):
                sku = self._take("a SKU")[0]
        price = self._amount("the price") if self._accept("for", "at") else DEFAULT_PRICE
        return Buy(at, self.where, shopper, category, sku, price)

    def _band(self, at: float, band: str) -> Step:
        token = self._take("what the band does (at ZONE, acks, declines, done)")
        verb = _BAND_VERBS.get(token[0].lower())
        if verb is None:
            self._fail(
                token,
                f"`{token[0]}` is not something a band does; write `{band} at ZONE`, "
                f"`{band} acks`, `{band} declines` or `{band} done`",
                closest(token[0].lower(), ("at", "acks", "declines", "done")),
            )
        if verb == "at":
            zone = self._zone()
            seconds = self._duration() if self._accept("for") else DEFAULT_LINGER_S
            return Linger(at, self.where, band, zone, seconds, staff=True)
        return Answer(at, self.where, band, verb)

    def _bell(self, at: float) -> Press:
        if self._accept("at"):
            zone_token = self.tokens[self.i] if self.i < len(self.tokens) else ("", self.end)
            zone = self._zone()
            bells = sorted(b for b, z in self.registry.bells.items() if z == zone)
            if not bells:
                placed = ", ".join(sorted(set(self.registry.bells.values()))) or "none"
                self._fail(zone_token, f"zone `{zone}` has no bell; bells are at: {placed}")
            bell = bells[0]
        else:
            token = self._take("`at ZONE` or a bell id")
            bell = token[0]
            if bell not in self.registry.bells:
                self._fail(
                    token,
                    f"unknown bell `{bell}`; write `bell at ZONE` or one of: "
                    + ", ".join(sorted(self.registry.bells)),
                    closest(bell, self.registry.bells),
                )
        reason = shopper = None
        while self._peek() is not None:
            if self._accept("reason"):
                reason = self._take("a reason (help, checkout, ...)")[0]
            elif self._accept("by"):
                shopper = self._take("a shopper id")[0]
            else:
                token = self._take("")
                self._fail(
                    token, f"unexpected `{token[0]}`; a bell press may add `reason R` and `by S`"
                )
        return Press(at, self.where, bell, reason, shopper)

    def _device(self, at: float) -> Status:
        token = self._take("a device id")
        if not self.registry.knows_device(token[0]):
            known = sorted(
                {*self.registry.gateways, *self.registry.beacons, *self.registry.bells}
                | {*self.registry.terminals, *self.registry.staff}
            )
            self._fail(token, f"unknown device `{token[0]}`", closest(token[0], known))
        state = self._take("`online` or `offline`")
        if state[0].lower() not in ("online", "offline"):
            self._fail(
                state,
                f"`{state[0]}`: write `online` or `offline`",
                closest(state[0], ("online", "offline")),
            )
        return Status(at, self.where, token[0], state[0].lower() == "online")

    # ------------------------------------------------------------------ values

    def _time(self) -> float:
        token = self._take("a time, HH:MM or HH:MM:SS")
        m = _TIME.match(token[0])
        if m is None or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3] or 0) > 59:
            self._fail(token, f"`{token[0]}` is not a store time; start with HH:MM or HH:MM:SS")
        return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0) + float(m[4] or 0)

    def _zone(self) -> str:
        token = self._take("a zone")
        name = token[0]
        reg = self.registry
        if name in reg.zones:
            return name
        zones = sorted(reg.zones_by_tag.get(name, ()))
        if len(zones) == 1:
            return zones[0]
        if len(zones) > 1:
            self._fail(
                token, f"several zones are tagged `{name}` ({', '.join(zones)}); name one", zones[0]
            )
        self._fail(
            token,
            f"unknown zone `{name}`; zones are: {', '.join(sorted(reg.zones))}",
            closest(name, [*reg.zones, *reg.zones_by_tag]),
        )

    def _known_band(self, token: tuple[str, int]) -> str:
        if token[0] not in self.registry.staff:
            self._fail(
                token,
                f"unknown band `{token[0]}`; the store's bands are: "
                + ", ".join(sorted(self.registry.staff)),
                closest(token[0], self.registry.staff),
            )
        return token[0]

    def _duration(self) -> float:
        token = self._take("a duration, e.g. 12 s")
        number, unit = _split_unit(token[0])
        nxt = self._peek()
        if number is not None and unit is None and nxt is not None and nxt.lower() in _UNITS:
            self.i += 1
            unit = nxt.lower()
        if number is None or unit is None or unit not in _UNITS or number <= 0:
            self._fail(token, f"`{token[0]}` is not a duration; write e.g. `12 s`, `90s` or `2 m`")
        return number * _UNITS[unit]

    def _amount(self, what: str) -> float:
        token = self._take(what)
        try:
            value = float(token[0].lstrip("$€£¥"))
        except ValueError:
            value = -1.0
        if not 0 <= value < 1e9:
            self._fail(token, f"`{token[0]}` is not an amount; write e.g. 3.50")
        return value

    # ------------------------------------------------------------------ expect

    def expected(self, rules: set[str], shoppers: set[str]) -> Expected:
        first = self._peek() or ""
        at = self._time()
        precision = 1.0 if first.count(":") == 2 else 60.0
        kind_token = self._take("`offer` or `alert`")
        kind = kind_token[0].lower()
        if kind not in ("offer", "alert"):
            self._fail(
                kind_token,
                f"`{kind_token[0]}`: an expected action is `offer` or `alert`",
                closest(kind, ("offer", "alert")),
            )
        rule_token = self._take("the rule id")
        if rule_token[0] not in rules:
            self._fail(
                rule_token,
                f"unknown rule `{rule_token[0]}`; rules tried: {', '.join(sorted(rules))}",
                closest(rule_token[0], rules),
            )
        to = self._take("`to`")
        if to[0].lower() != "to":
            self._fail(to, f"`{to[0]}`: write `{kind} {rule_token[0]} to ...`", "to")
        target = self._take("who gets it")
        known = shoppers if kind == "offer" else set(self.registry.staff)
        if target[0] not in known:
            who = "shopper of the story" if kind == "offer" else "band of the store"
            self._fail(target, f"`{target[0]}` is not a {who}", closest(target[0], known))
        step = None
        if kind == "alert" and self._accept("step"):
            token = self._take("a step number")
            if not token[0].isdigit() or int(token[0]) < 1:
                self._fail(token, f"`{token[0]}` is not a step number (1 = the first page)")
            step = int(token[0])
        self._done()
        return Expected(at, precision, kind, rule_token[0], target[0], step, self.where)


def _split_unit(text: str) -> tuple[float | None, str | None]:
    m = re.match(r"^(\d+(?:\.\d+)?)([a-z]*)$", text.lower())
    if m is None:
        return None, None
    return float(m[1]), (m[2] or None)
