"""The guard store in Redis, shared by every runner process of a deployment.

Same semantics as :class:`~floorwalker.engine.core.guards.InMemoryGuardStore` (the
contract tests run both), with two differences forced by sharing:

* ``admit`` and ``redeem`` are single Lua scripts, so concurrent workers never
  overspend a budget, pass a cap twice or admit one action id twice.
* Decisions compare deadlines stored in the values with the engine's ``now``;
  Redis TTLs (``deadline - now``) only garbage-collect, because the engine clock
  may be virtual and must never be replaced by Redis server time.

Every Redis failure (refused, timed out, script error) becomes
:class:`~floorwalker.errors.GuardStoreError` so the engine fails closed. Without
an owner, commands are never retried: an ``admit`` whose reply timed out may
have been recorded, and a retry would then refuse it as a duplicate. (Likewise
a command sent to a paused Redis runs when it resumes: an offer refused for the
timeout may still hold its reservation until the coupon would have expired,
which errs on the side of spending less.)

**Owner** (the edge runner's MQTT client id, ``settings.owner``): every
``seen`` key also records who set it. A runner killed between recording an
event or an action in Redis and handing its outcome to its durable outbox
would otherwise lose it for good: the broker redelivers the message (or the
restored timer fires again), and Redis says "duplicate". So a repeat *by the
same owner* is not a duplicate to ``first_seen`` (the event is processed
again), and to ``admit`` it is a duplicate only if ``delivered(action_id)``
says the runner's outbox already has the action; otherwise it is admitted
again, without counting it twice against caps or budgets, and the outbox
(which deduplicates by action id) publishes it once. Another owner's key is a
duplicate as always: two runners sharing a budget still spend it once. With
an owner, ``first_seen`` and ``admit`` are idempotent, so the breaker may
retry them once.

With a :class:`~floorwalker.engine.stores.breaker.RedisBreaker` (the edge
runner's), the calls of the decisions (``first_seen``, ``admit``, ``redeem``,
``budget``) go through it, on a client whose timeouts are the breaker's
attempt timeout; ``forget_shopper``, an operator's erasure that scans, keeps
its own client with the settings' timeouts.

Key layout under ``settings.prefix`` (``P``)::

    P seen:<key>       first_seen keys and ``action:<id>`` dedup, value = deadline
                       (and `` <owner>``, with an owner)
    P cd:<key>         cooldown, value = deadline
    P ctr:<key>        hash n, exp (deadline; absent = never)
    P bud:<key>        hash issued, issued_amount, reserved, reserved_amount, spent,
                       spent_amount; never expires
    P budx:<key>       sorted set: the budget's reserved coupon codes by their expiry
    P budr:<key>       hash code -> cost of each reservation (released or spent, it goes)
    P fat:<key>        hash streak, last
    P cpn:<code>       hash of the CouponRecord, redeemed, fatigue_key, and the keys of
                       the budget it was charged to (bud, budx, budr)
    P cpns:<shopper>   set of the shopper's coupon codes, for forget_shopper

Budgets reserve on issue, spend on redemption and release at expiry (see
:mod:`floorwalker.engine.core.guards`): ``admit`` and ``budget`` first release
every reservation whose coupon expired before ``now`` (``ZRANGEBYSCORE budx
-inf (now``), in the in-memory store's order (expiry, then code), so both stores
do the same float arithmetic. A budget hash written by an older release
(``coupons``, ``amount``: charged at issue) reads as that much reserved, for good.

Retention: every key about a shopper expires (budgets are per campaign, not
per shopper, and are kept; a forgotten shopper's reservations stay in them
until their coupons expire):

* ``seen``, ``cd`` and a ``ctr`` with a deadline: at the deadline;
* a ``ctr`` without one (a ``per: campaign`` cap): ``open_counter_retention_s``
  (400 days) after the shopper's last counted offer;
* ``fat``: the fatigue ``backoff`` plus ``fatigue_retention_s`` (30 days) after
  the shopper's last offer - a streak nobody added to for that long starts
  again from zero (the in-memory store keeps it for the process's lifetime);
  a redemption deletes it at once;
* ``cpn`` and ``cpns``: ``coupon_retention_s`` past the coupon's expiry.

Engine keys put the shopper between colons or last (``cap:rule:s1``,
``fatigue:s1``), which is how :meth:`RedisGuardStore.forget_shopper` finds them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import RedisError

from floorwalker.engine.core.guards import BudgetState, CouponRecord, Ticket, fatigue_key
from floorwalker.engine.stores._redis import connect
from floorwalker.engine.stores.breaker import RedisBreaker
from floorwalker.errors import GuardStoreError

log = logging.getLogger("floorwalker.guards")
T = TypeVar("T")

_COUPON_FIELDS = (
    "code",
    "action_id",
    "rule",
    "offer",
    "store",
    "shopper",
    "issued",
    "expires",
    "cost",
)
_SHOPPER_SCOPED = frozenset({"seen", "cd", "ctr", "fat"})
_DELETE_BATCH = 500
_MAX_TTL_MS = 10 * 365 * 86400 * 1000  # "forever" for a deadline of +inf

# Budgets, shared by the scripts below: load a budget hash, release the
# reservations of coupons expired before `now` (in the in-memory store's order:
# expiry, then code), and write it back. Amounts travel as '%.17g' strings, which
# round-trip a double, so the sums are the ones Python computes.
_BUDGET_LUA = """
local BUDGET_FIELDS = {'issued', 'issued_amount', 'reserved', 'reserved_amount',
                       'spent', 'spent_amount'}
local function load_budget(key)
  local v = redis.call('HMGET', key, 'issued', 'issued_amount', 'reserved',
                       'reserved_amount', 'spent', 'spent_amount', 'coupons', 'amount')
  if not v[1] and v[7] then
    -- An older release charged at issue: that much stays reserved.
    local n, a = tonumber(v[7]), tonumber(v[8] or '0')
    return {issued = n, issued_amount = a, reserved = n, reserved_amount = a,
            spent = 0, spent_amount = 0, legacy = true}
  end
  local b = {}
  for i, name in ipairs(BUDGET_FIELDS) do b[name] = tonumber(v[i] or '0') end
  return b
end
local function save_budget(key, b)
  local args = {}
  for _, name in ipairs(BUDGET_FIELDS) do
    local value = b[name]
    if string.find(name, 'amount') then value = string.format('%.17g', value) end
    args[#args + 1] = name
    args[#args + 1] = value
  end
  redis.call('HSET', key, unpack(args))
  if b.legacy then redis.call('HDEL', key, 'coupons', 'amount') end
end
local function unreserve(b, cost)
  b.reserved = b.reserved - 1
  if b.reserved > 0 then b.reserved_amount = b.reserved_amount - cost
  else b.reserved_amount = 0 end
end
local function release_expired(b, budx, budr, now_text)
  local released = false
  while true do
    local codes = redis.call('ZRANGEBYSCORE', budx, '-inf', '(' .. now_text, 'LIMIT', 0, 500)
    if #codes == 0 then return released end
    -- ZRANGEBYSCORE sorts equal scores by member: expiry, then code.
    local costs = redis.call('HMGET', budr, unpack(codes))
    for i = 1, #codes do unreserve(b, tonumber(costs[i] or '0')) end
    redis.call('ZREM', budx, unpack(codes))
    redis.call('HDEL', budr, unpack(codes))
    released = true
  end
end
"""

# KEYS: [1] the action's dedup key, then one per counter, then cooldown, budget
# (three keys: bud, budx, budr), fatigue, coupon and coupon index for whichever of
# them the ticket has. ARGV[1]: the ticket as JSON. Deadlines and amounts travel
# as Python-formatted strings so they are stored exactly as Python computed them.
# A `seen` value: "<deadline>" or "<deadline> <owner>".
_PARSE_SEEN = """
local function seen(v)
  if not v then return nil, nil end
  local d, o = string.match(v, '^(%S+) (.+)$')
  if d then return tonumber(d), o end
  return tonumber(v), nil
end
"""

_ADMIT = (
    _BUDGET_LUA
    + _PARSE_SEEN
    + """
local t = cjson.decode(ARGV[1])
local now = tonumber(t.now)
local k = 1
local function nextkey() k = k + 1; return KEYS[k] end
local function live(deadline) return deadline and tonumber(deadline) > now end
local function count(key)
  local v = redis.call('HMGET', key, 'n', 'exp')
  if not v[1] or (v[2] and tonumber(v[2]) <= now) then return 0 end
  return tonumber(v[1])
end

local ctr = {}
for i = 1, #t.counters do ctr[i] = nextkey() end
local cd = t.cooldown and nextkey()
local bud = t.budget and nextkey()
local budx = t.budget and nextkey()
local budr = t.budget and nextkey()
local fat = t.fatigue and nextkey()
local cpn = t.coupon and nextkey()
local idx = t.coupon and nextkey()

-- Check everything first, in the in-memory store's order: all or nothing.
local seen_until, seen_by = seen(redis.call('GET', KEYS[1]))
if seen_until and seen_until > now then
  if t.owner and seen_by == t.owner then return 'mine' end
  return 'duplicate'
end
if cd and live(redis.call('GET', cd)) then return 'cooldown' end
for i, c in ipairs(t.counters) do
  if count(ctr[i]) >= c.limit then return c.reason end
end
local b
if bud then
  b = load_budget(bud)
  -- Releasing what expired is bookkeeping, not this ticket's record: kept even if refused.
  if release_expired(b, budx, budr, t.now) then save_budget(bud, b) end
  local cost = tonumber(t.budget.cost)
  local used = b.reserved + b.spent
  if t.budget.coupons and used + 1 > t.budget.coupons then return 'budget' end
  if t.budget.amount and b.reserved_amount + b.spent_amount + cost
      > tonumber(t.budget.amount) + 1e-9 then
    return 'budget'
  end
end
local streak = 0
if fat then
  local f = redis.call('HMGET', fat, 'streak', 'last')
  if f[1] then
    streak = tonumber(f[1])
    if streak >= t.fatigue.streak and now - tonumber(f[2]) < tonumber(t.fatigue.backoff) then
      return 'fatigue'
    end
  end
end

-- Record.
local mark = t.action.deadline
if t.owner then mark = mark .. ' ' .. t.owner end
redis.call('SET', KEYS[1], mark, 'PX', t.action.ttl_ms)
if cd then redis.call('SET', cd, t.cooldown.deadline, 'PX', t.cooldown.ttl_ms) end
for i, c in ipairs(t.counters) do
  local n = count(ctr[i]) + 1
  if c.exp then
    redis.call('HSET', ctr[i], 'n', n, 'exp', c.exp)
    redis.call('PEXPIRE', ctr[i], c.ttl_ms)
  else
    redis.call('HSET', ctr[i], 'n', n)
    redis.call('HDEL', ctr[i], 'exp')
    redis.call('PEXPIRE', ctr[i], t.open_ttl_ms)
  end
end
if bud then
  local cost = tonumber(t.budget.cost)
  b.issued = b.issued + 1
  b.issued_amount = b.issued_amount + cost
  b.reserved = b.reserved + 1
  b.reserved_amount = b.reserved_amount + cost
  save_budget(bud, b)
  if cpn then
    redis.call('ZADD', budx, t.coupon.fields.expires, t.coupon.fields.code)
    redis.call('HSET', budr, t.coupon.fields.code, t.budget.cost)
  end
end
if fat then
  redis.call('HSET', fat, 'streak', streak + 1, 'last', t.now)
  redis.call('PEXPIRE', fat, t.fatigue.ttl_ms)
end
if cpn then
  for field, value in pairs(t.coupon.fields) do redis.call('HSET', cpn, field, value) end
  if bud then redis.call('HSET', cpn, 'bud', bud, 'budx', budx, 'budr', budr) end
  redis.call('PEXPIRE', cpn, t.coupon.ttl_ms)
  redis.call('SADD', idx, t.coupon.fields.code)
  if redis.call('PTTL', idx) < t.coupon.ttl_ms then
    redis.call('PEXPIRE', idx, t.coupon.ttl_ms)
  end
end
return false
"""
)

# KEYS[1]: the seen key. ARGV: now, value (deadline [owner]), ttl_ms, owner or
# ''. The NX path is the common one; the fallback overwrites a deadline that is
# past on the engine clock but whose (real-time) TTL has not run out yet.
# Returns 1 (first), 0 (a repeat) or 2 (a repeat of the owner's own).
_FIRST_SEEN = (
    _PARSE_SEEN
    + """
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
local seen_until, seen_by = seen(redis.call('GET', KEYS[1]))
if seen_until and seen_until > tonumber(ARGV[1]) then
  if ARGV[4] ~= '' and seen_by == ARGV[4] then return 2 end
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
)

# KEYS[1]: the coupon hash. ARGV[1]: now. Returns {reason or '', record fields...}.
# A redemption spends the coupon's reservation (or, if an admit running on a later
# clock already released it, its cost again).
_REDEEM = (
    _BUDGET_LUA
    + """
local v = redis.call('HMGET', KEYS[1], 'code', 'action_id', 'rule', 'offer', 'store',
                     'shopper', 'issued', 'expires', 'cost', 'redeemed', 'fatigue_key',
                     'bud', 'budx', 'budr')
if not v[1] then return {'unknown_coupon'} end
local reason = ''
if v[10] then
  reason = 'already_redeemed'
elseif tonumber(ARGV[1]) > tonumber(v[8]) then
  reason = 'expired_coupon'
else
  redis.call('HSET', KEYS[1], 'redeemed', ARGV[1])
  -- The fatigue key is stored with the coupon: it names the shopper's streak.
  redis.call('DEL', v[11])
  if v[12] then
    local b = load_budget(v[12])
    local held = redis.call('HGET', v[14], v[1])
    local cost = tonumber(v[9] or '0')
    if held then
      cost = tonumber(held)
      unreserve(b, cost)
      redis.call('ZREM', v[13], v[1])
      redis.call('HDEL', v[14], v[1])
    end
    b.spent = b.spent + 1
    b.spent_amount = b.spent_amount + cost
    save_budget(v[12], b)
  end
end
return {reason, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9] or '0'}
"""
)

# KEYS: bud, budx, budr. ARGV[1]: now ('' = release nothing). Returns the six fields.
_BUDGET = (
    _BUDGET_LUA
    + """
local b = load_budget(KEYS[1])
if ARGV[1] ~= '' and release_expired(b, KEYS[2], KEYS[3], ARGV[1]) then
  save_budget(KEYS[1], b)
end
return {tostring(b.issued), string.format('%.17g', b.issued_amount), tostring(b.reserved),
        string.format('%.17g', b.reserved_amount), tostring(b.spent),
        string.format('%.17g', b.spent_amount)}
"""
)


@dataclass(frozen=True, slots=True)
class RedisGuardSettings:
    prefix: str = "fw:guard:"
    socket_timeout_s: float = 0.5
    """Small on purpose: a stuck Redis must fail an offer closed, not stall the engine."""
    connect_timeout_s: float = 0.5
    action_ttl_s: float = 7 * 86400.0
    """How long an admitted action id is remembered (as the in-memory store)."""
    coupon_retention_s: float = 30 * 86400.0
    """How long past its expiry a coupon stays redeemable-as-"expired" for attribution."""
    fatigue_retention_s: float = 30 * 86400.0
    """A fatigue streak is forgotten this long after its backoff following the last offer."""
    open_counter_retention_s: float = 400 * 86400.0
    """A cap counter without a deadline (``per: campaign``) is forgotten this long after
    its last increment."""
    owner: str | None = None
    """Who records ``seen`` keys (the edge runner's client id); see the module docstring."""


class RedisGuardStore:
    """:class:`~floorwalker.engine.core.guards.GuardStore` on a Redis shared by many processes."""

    def __init__(
        self,
        client: Redis,
        settings: RedisGuardSettings | None = None,
        *,
        breaker: RedisBreaker | None = None,
        admin: Redis | None = None,
        delivered: Callable[[str], bool] | None = None,
    ) -> None:
        self._redis = client
        self._admin = admin if admin is not None else client
        """The client of ``forget_shopper`` (the settings' timeouts, no breaker)."""
        self._breaker = breaker
        self.delivered = delivered
        """``delivered(action_id)``: did the owner already hand this action over? (None: yes)"""
        self.settings = settings or RedisGuardSettings()
        self.readmitted = 0
        """Actions admitted again: the owner's own, never delivered (a restart's gap)."""
        self._admit = client.register_script(_ADMIT)
        self._first_seen = client.register_script(_FIRST_SEEN)
        self._redeem = client.register_script(_REDEEM)
        self._budget = client.register_script(_BUDGET)

    @classmethod
    def from_url(
        cls,
        url: str,
        settings: RedisGuardSettings | None = None,
        *,
        breaker: RedisBreaker | None = None,
        delivered: Callable[[str], bool] | None = None,
    ) -> RedisGuardStore:
        """Connect to ``redis://host:port/db`` with short timeouts and no retries."""
        settings = settings or RedisGuardSettings()
        admin = connect(
            url,
            socket_timeout_s=settings.socket_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )
        if breaker is None:
            return cls(admin, settings, delivered=delivered)
        timeout = breaker.settings.call_timeout_s
        fast = connect(url, socket_timeout_s=timeout, connect_timeout_s=timeout)
        return cls(fast, settings, breaker=breaker, admin=admin, delivered=delivered)

    def close(self) -> None:
        self._redis.close()
        if self._admin is not self._redis:
            self._admin.close()

    def _call(self, operation: str, attempt: Callable[[], T], *, idempotent: bool) -> T:
        """``attempt()`` through the breaker if there is one (retried once if idempotent)."""
        if self._breaker is not None:
            return self._breaker.call(f"guard store {operation}", attempt, retry=idempotent)
        with _guard_errors(operation):
            return attempt()

    def first_seen(self, key: str, ttl_s: float, now: float) -> bool:
        owner = self.settings.owner or ""
        value = _num(now + ttl_s) + (f" {owner}" if owner else "")
        args = (_num(now), value, _ttl_ms(ttl_s), owner)
        keys = [self._key("seen", key)]
        # With an owner, a retry of a first_seen that did run answers 2: not a duplicate.
        found = self._call(
            "first_seen", lambda: self._first_seen(keys=keys, args=args), idempotent=bool(owner)
        )
        return bool(found)

    def admit(self, ticket: Ticket, now: float) -> str | None:
        keys, spec = self._admit_call(ticket, now)
        args = [json.dumps(spec)]
        # With an owner, a retry of an admit that did run answers `mine`: sent once.
        reason = self._call(
            "admit", lambda: self._admit(keys=keys, args=args), idempotent=bool(self.settings.owner)
        )
        if reason is None:
            return None
        why = _text(reason)
        if why == "mine":
            if self.delivered is None or self.delivered(ticket.action_id):
                return "duplicate"
            self.readmitted += 1
            log.info(
                "action %s admitted again: recorded before a restart, never sent", ticket.action_id
            )
            return None
        return why

    def redeem(self, code: str, now: float) -> tuple[CouponRecord | None, str | None]:
        keys, args = [self._key("cpn", code)], [_num(now)]
        # Never retried: a redemption that ran would come back `already_redeemed`.
        reply = self._call("redeem", lambda: self._redeem(keys=keys, args=args), idempotent=False)
        reason, *fields = (_text(v) for v in reply)
        record = _coupon(fields) if fields else None
        return record, reason or None

    def budget(self, key: str, now: float | None = None) -> BudgetState:
        keys = self._budget_keys(key)
        args = ["" if now is None else _num(now)]
        # Not idempotent: it may release expired reservations (once is enough).
        reply = self._call("budget", lambda: self._budget(keys=keys, args=args), idempotent=False)
        issued, issued_amount, reserved, reserved_amount, spent, spent_amount = (
            _text(v) for v in reply
        )
        return BudgetState(
            int(issued),
            float(issued_amount),
            int(reserved),
            float(reserved_amount),
            int(spent),
            float(spent_amount),
        )

    def forget_shopper(self, shopper: str) -> int:
        with _guard_errors("forget_shopper"):
            doomed, indexes = self._shopper_keys(shopper)
            codes = [_text(c) for index in indexes for c in self._admin.smembers(index)]
            removed = self._delete(doomed) + self._delete([self._key("cpn", c) for c in codes])
            self._delete(indexes)
        return removed

    # --- helpers -------------------------------------------------------------

    def _key(self, namespace: str, key: str) -> str:
        return f"{self.settings.prefix}{namespace}:{key}"

    def _budget_keys(self, key: str) -> list[str]:
        return [self._key("bud", key), self._key("budx", key), self._key("budr", key)]

    def _admit_call(self, t: Ticket, now: float) -> tuple[list[str], dict[str, Any]]:
        """The KEYS and JSON spec of one admit, in the order the script reads them."""
        keys = [self._key("seen", "action:" + t.action_id)]
        action_ttl = self.settings.action_ttl_s
        spec: dict[str, Any] = {
            "now": _num(now),
            "action": {"deadline": _num(now + action_ttl), "ttl_ms": _ttl_ms(action_ttl)},
            "counters": [],
            "open_ttl_ms": _ttl_ms(self.settings.open_counter_retention_s),
        }
        if self.settings.owner:
            spec["owner"] = self.settings.owner
        for c in t.counters:
            keys.append(self._key("ctr", c.key))
            spec["counters"].append(_counter_spec(c.limit, c.reason, c.expires_at, now))
        if t.cooldown_key is not None:
            keys.append(self._key("cd", t.cooldown_key))
            deadline = _num(now + t.cooldown_s)
            spec["cooldown"] = {"deadline": deadline, "ttl_ms": _ttl_ms(t.cooldown_s)}
        if t.budget_key is not None:
            keys += self._budget_keys(t.budget_key)
            spec["budget"] = _budget_spec(t)
        if t.fatigue_key is not None:
            keys.append(self._key("fat", t.fatigue_key))
            keep = _ttl_ms(t.fatigue_backoff_s + self.settings.fatigue_retention_s)
            backoff = _num(t.fatigue_backoff_s)
            spec["fatigue"] = {"streak": t.fatigue_streak, "backoff": backoff, "ttl_ms": keep}
        if t.coupon is not None:
            keys += [self._key("cpn", t.coupon.code), self._key("cpns", t.coupon.shopper)]
            spec["coupon"] = self._coupon_spec(t.coupon, now)
        return keys, spec

    def _coupon_spec(self, coupon: CouponRecord, now: float) -> dict[str, Any]:
        fields = {name: str(getattr(coupon, name)) for name in _COUPON_FIELDS}
        fields["issued"], fields["expires"] = _num(coupon.issued), _num(coupon.expires)
        fields["cost"] = _num(coupon.cost)
        fields["fatigue_key"] = self._key("fat", fatigue_key(coupon.shopper))
        keep = coupon.expires - now + self.settings.coupon_retention_s
        return {"fields": fields, "ttl_ms": _ttl_ms(keep)}

    def _shopper_keys(self, shopper: str) -> tuple[list[str], list[str]]:
        """(state keys about ``shopper``, their coupon index keys), found with SCAN."""
        prefix = self.settings.prefix
        # Narrow server-side, then apply the exact in-memory rule on the logical key.
        pattern = f"{_glob_escape(prefix)}*{_glob_escape(shopper)}*"
        doomed: list[str] = []
        indexes: list[str] = []
        for raw in self._admin.scan_iter(match=pattern, count=1000):
            key = _text(raw)
            namespace, _, logical = key[len(prefix) :].partition(":")
            if namespace in _SHOPPER_SCOPED and _concerns(logical, shopper):
                doomed.append(key)
            elif namespace == "cpns" and logical == shopper:
                indexes.append(key)
        return doomed, indexes

    def _delete(self, keys: Sequence[str]) -> int:
        removed = 0
        for start in range(0, len(keys), _DELETE_BATCH):
            removed += int(self._admin.delete(*keys[start : start + _DELETE_BATCH]))
        return removed


@contextlib.contextmanager
def _guard_errors(operation: str) -> Iterator[None]:
    try:
        yield
    except RedisError as e:
        raise GuardStoreError(f"guard store {operation} failed: {type(e).__name__}: {e}") from e


def _counter_spec(limit: int, reason: str, expires_at: float | None, now: float) -> dict[str, Any]:
    spec: dict[str, Any] = {"limit": limit, "reason": reason}
    if expires_at is not None:
        spec["exp"] = _num(expires_at)
        spec["ttl_ms"] = _ttl_ms(expires_at - now)
    return spec


def _budget_spec(t: Ticket) -> dict[str, Any]:
    spec: dict[str, Any] = {"cost": _num(t.cost)}
    if t.budget_coupons is not None:
        spec["coupons"] = t.budget_coupons
    if t.budget_amount is not None:
        spec["amount"] = _num(t.budget_amount)
    return spec


def _coupon(fields: Sequence[str]) -> CouponRecord:
    code, action_id, rule, offer, store, shopper, issued, expires, cost = fields
    return CouponRecord(
        code, action_id, rule, offer, store, shopper, float(issued), float(expires), float(cost)
    )


def _concerns(logical_key: str, shopper: str) -> bool:
    """The in-memory store's rule for "this key is about that shopper"."""
    return f":{shopper}:" in logical_key or logical_key.endswith(":" + shopper)


def _num(value: float) -> str:
    # repr round-trips exactly through Lua's tonumber (strtod).
    return repr(float(value))


def _ttl_ms(seconds: float) -> int:
    """A Redis TTL for a deadline ``seconds`` ahead on the engine clock.

    At least 1 ms, because Redis refuses 0; a deadline already past is still
    stored and reads as expired, exactly like the in-memory store.
    """
    if not math.isfinite(seconds):
        return _MAX_TTL_MS if seconds > 0 else 1
    return min(_MAX_TTL_MS, max(1, math.ceil(seconds * 1000.0)))


def _text(value: str | bytes) -> str:
    # Clients built by from_url decode; a caller's own client may not.
    return value.decode() if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\*?[]" else ch for ch in text)
