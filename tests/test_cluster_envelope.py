"""The batch envelope between workers and the per-link sequence numbers (sans-I/O)."""

from __future__ import annotations

import msgpack
import pytest

from tickrelay.server.cluster.envelope import BadEnvelope, pack_batch, unpack_batch
from tickrelay.server.cluster.sequence import Arrival, IncomingSequences, OutgoingSequences


def test_a_batch_round_trips_with_its_header_and_opaque_items() -> None:
    frame = b"\x82\x05hello"  # an encoded state message travels as bytes, untouched
    batch = unpack_batch(pack_batch("w1", 7, 3, [frame, ["cmd", "room", 2]], 0.0042))
    assert (batch.source, batch.boot, batch.seq, batch.held) == ("w1", 7, 3, 0.0042)
    assert batch.items == [frame, ["cmd", "room", 2]]


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # never valid msgpack
        msgpack.packb([1, "w1", 1, 1, []]),  # version 1: no held time
        msgpack.packb([3, "w1", 1, 1, [], 0]),  # another version
        msgpack.packb([2, "w1", 1, 0, [], 0]),  # seq starts at 1
        msgpack.packb([2, 5, 1, 1, [], 0]),  # source is not a string
        msgpack.packb([2, "w1", 1, 1, {}, 0]),  # items are not a list
        msgpack.packb([2, "w1", 1, 1, [], -1]),  # held for negative time
        msgpack.packb({"t": "input"}),  # a client message, not a batch
    ],
)
def test_anything_but_a_version_2_batch_is_refused(data: bytes) -> None:
    with pytest.raises(BadEnvelope):
        unpack_batch(data)


def test_each_destination_has_its_own_sequence() -> None:
    out = OutgoingSequences()
    assert [out.next("a"), out.next("a"), out.next("b"), out.next("a")] == [1, 2, 1, 3]


def test_the_first_batch_of_a_link_is_a_fresh_start() -> None:
    incoming = IncomingSequences()
    assert incoming.receive("w1", 1, 5).arrival is Arrival.FIRST


def test_consecutive_batches_arrive_in_order() -> None:
    incoming = IncomingSequences()
    incoming.receive("w1", 1, 1)
    assert incoming.receive("w1", 1, 2).arrival is Arrival.NEXT


def test_a_skipped_number_is_a_gap_counting_the_lost_batches() -> None:
    incoming = IncomingSequences()
    incoming.receive("w1", 1, 1)
    received = incoming.receive("w1", 1, 5)
    assert received.arrival is Arrival.GAP
    assert received.lost == 3
    assert incoming.receive("w1", 1, 6).arrival is Arrival.NEXT


def test_a_repeated_or_older_batch_is_dropped() -> None:
    incoming = IncomingSequences()
    incoming.receive("w1", 1, 4)
    assert incoming.receive("w1", 1, 4).arrival is Arrival.OLD
    assert incoming.receive("w1", 1, 2).arrival is Arrival.OLD


def test_a_restarted_sender_starts_a_new_link_not_a_gap() -> None:
    incoming = IncomingSequences()
    incoming.receive("w1", 1, 40)
    assert incoming.receive("w1", 2, 1).arrival is Arrival.FIRST
    assert incoming.receive("w1", 1, 41).arrival is Arrival.OLD  # the old boot is over


def test_links_from_different_senders_are_independent() -> None:
    incoming = IncomingSequences()
    incoming.receive("w1", 1, 1)
    incoming.receive("w2", 1, 1)
    assert incoming.receive("w1", 1, 2).arrival is Arrival.NEXT
    assert incoming.receive("w2", 1, 3).arrival is Arrival.GAP
