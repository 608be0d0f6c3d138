"""Benchmarks (``floorwalker bench``): they drive the engine with the generators of
:mod:`floorwalker.simulators` and measure it. Nothing outside ``bench`` imports them.

* :mod:`.core` - the deterministic core in one process (``bench core``);
* :mod:`.accuracy` - dwell and alert accuracy against ground truth (``bench accuracy``);
* :mod:`.scaling` - cost against rules, stores and shoppers (``bench scaling``);
* :mod:`.live` - the whole edge runner over real Mosquitto and Redis (``bench live``),
  with the MQTT client processes it spawns in :mod:`.live_clients`.
"""
