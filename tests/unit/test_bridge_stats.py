"""The sentence ``eventmodel bridge`` prints when it stops: what it stored, and what it
left for redelivery or dead-lettered, only when it did."""

from __future__ import annotations

from eventmodel.sources.amqp import BridgeStats


def test_the_summary_says_what_was_stored() -> None:
    s = BridgeStats(acked=12, event_messages=9, events=15, irrelevant=2, dead=1, batches=3, reconnects=1)
    assert s.summary() == ("12 messages stored and acknowledged (9 with events, 15 events, 2 irrelevant, "
                           "1 dead letters) in 3 batches; 1 reconnects")


def test_the_summary_names_abandoned_and_refused_records_only_when_there_are() -> None:
    s = BridgeStats(acked=1, abandoned=4, rejected=2)
    assert s.summary().endswith("; 0 reconnects; 4 left unacknowledged for redelivery; "
                                "2 records refused by the log (dead-lettered)")
    assert "redelivery" not in BridgeStats(acked=1).summary()
