"""The inbox between the MQTT link and the core thread: bounded, blocking, never dropping."""

from __future__ import annotations

import queue
import threading

import pytest

from floorwalker.engine.runners.inbox import Inbox


def sized(max_items: int, max_bytes: int) -> Inbox[bytes]:
    return Inbox(max_items, max_bytes, size=len)


def test_fifo_and_counts() -> None:
    box = sized(10, 1000)
    for word in (b"a", b"bb", b"ccc"):
        box.put(word)
    assert box.qsize() == 3
    assert box.nbytes == 6
    assert [box.get_nowait() for _ in range(3)] == [b"a", b"bb", b"ccc"]
    assert box.nbytes == 0
    with pytest.raises(queue.Empty):
        box.get_nowait()


def test_full_by_count_or_by_bytes_refuses_without_blocking() -> None:
    by_count = sized(2, 1000)
    by_count.put(b"x")
    by_count.put(b"y")
    with pytest.raises(queue.Full):
        by_count.put(b"z", block=False)
    by_bytes = sized(100, 10)
    by_bytes.put(b"12345678")
    with pytest.raises(queue.Full):
        by_bytes.put(b"123", block=False)
    assert by_count.waits == 1 and by_bytes.waits == 1


def test_a_message_larger_than_the_byte_bound_fits_an_empty_inbox() -> None:
    box = sized(10, 4)
    box.put(b"much longer than four bytes")
    assert box.qsize() == 1


def test_a_full_inbox_blocks_the_producer_until_the_consumer_takes() -> None:
    """Nothing is dropped: the producer (paho's thread) waits, every message arrives in order."""
    box = sized(3, 1 << 20)
    sent = [str(i).encode() for i in range(200)]
    done = threading.Event()

    def produce() -> None:
        for item in sent:
            box.put(item)  # no timeout: waits as long as needed
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    got = [box.get(timeout=10) for _ in sent]
    thread.join(10)
    assert done.is_set()
    assert got == sent
    assert box.waits > 0, "the producer had to wait: the bound held"


def test_put_with_a_timeout_gives_up_with_full() -> None:
    box = sized(1, 100)
    box.put(b"a")
    with pytest.raises(queue.Full):
        box.put(b"b", timeout=0.01)
    assert box.get_nowait() == b"a"
    with pytest.raises(queue.Empty):
        box.get(timeout=0.01)


def test_an_inbox_needs_room() -> None:
    with pytest.raises(ValueError, match="room"):
        sized(0, 10)
