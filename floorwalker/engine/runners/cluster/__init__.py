"""The cluster runner: the same engine core on faust-streaming and a Kafka-protocol broker.

Only this package imports faust and aiokafka (``pip install floorwalker[cluster]``).

* :mod:`.names` - topic names, record keys and headers (no Kafka client);
* :mod:`.kafka` - the capture loader and the actions reader (``floorwalker kafka
  load|actions``), the partitioner, bench probes, on aiokafka directly;
* :mod:`.shards` - the stores of one worker, the engine core per store (no Kafka);
* :mod:`.worker` - the faust app of ``floorwalker worker``: core thread,
  checkpoints, wall-clock timers, rebalances;
* :mod:`.recovery` - faust's table recovery, reordered so a new owner loses no record;
* :mod:`.bridge` - ``floorwalker bridge``, MQTT <-> Kafka with dedup;
* :mod:`.passthrough` - the faust pass-through agent ``bench cluster`` compares with;
* :mod:`.launch` - workers and bridges as child processes (demo, bench, tests);
* :mod:`.tansu` - a throwaway Kafka-protocol broker for tests and demos.
"""
