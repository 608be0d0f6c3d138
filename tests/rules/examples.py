"""Rule files shared by several tests."""

FULL_RULE = """\
id: full-syntax
description: Uses every part of the language.
priority: 7
enabled: false
when:
  sequence:
    first: {enter: {zone_tag: [chilled, dairy]}}
    then: {pos_item: {category: yogurt, sku: [123, abc]}}
    within: 1h30m
    by: receipt
if:
  segment: loyal
  consent: {marketing: true}
  days: [mon, sun]
  campaign: {start: 2025-05-01, end: 2025-05-31}
  daypart: {from: "22:00", to: 02:30}
unless:
  lifetime_value: {at_most: 10}
  days_since_last_visit: {at_least: 1, at_most: 30.5}
offer:
  id: full-offer
  message: "{count} x {sku} in {zone}"
  expires: 90
  code_prefix: FULL-
alert:
  to: [{role: cashier}, {nearest: {anywhere: false}}]
  message: Look at {zone}
  priority: low
  include_shopper: false
  escalate:
    - {after: 1m, to: [next, advisor]}
limits:
  per_shopper:
    - {count: 1, per: visit}
    - {count: 2, per: week}
  cooldown: 2h
  budget: {coupons: 100, amount: 250.5}
  quiet_hours: {from: "21:00", to: "08:00"}
  holdout: "12.5%"
"""
