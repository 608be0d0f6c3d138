"""The cluster runner: the same engine core on faust-streaming and a Kafka-protocol broker.

Only this package imports faust and aiokafka (``pip install floorwalker[cluster]``).

* :mod:`.kafka` - topic names, record keys and headers, the capture loader and the
  actions reader (``floorwalker kafka load|actions``), on aiokafka directly;
* :mod:`.worker` - the faust app of ``floorwalker worker``.
"""
