"""The fault suite: ``floorwalker faults`` (see docs/reliability.md for what it found).

Each scenario starts its own Mosquitto (the generated identities and ACLs,
persistence on), Redis and ``floorwalker run`` processes on free loopback
ports, injects one kind of fault, and counts what became of what it offered:

==================  =========================================================
``kill9``           the runner ``kill -9``'d 20 times under load (quick: 3)
``broker-restart``  Mosquitto ``kill -9``'d while an escalation step is due
``engine-restart``  the runner killed holding a step the broker never confirmed
``redis-pause``     Redis SIGSTOPped 30 s (quick: 5 s): alerts on time
``redis-stop``      Redis shut down 30 s, then started again
``overload``        3x what the runner sustains for 60 s (quick: 10 s)
``budget``          two runners spending one budget
``forged``          forged and eavesdropping clients
==================  =========================================================

:mod:`.harness` holds the stack, :mod:`.rawmqtt` the raw publisher,
:mod:`.scenarios` the scenarios, :mod:`.cli` the command.
"""

NAMES = (
    "kill9",
    "broker-restart",
    "engine-restart",
    "redis-pause",
    "redis-stop",
    "overload",
    "budget",
    "forged",
)
