"""The recording script against real Redis: incident claims, retries, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from tasks.enqueue import TaskMessage
from tasks.store.deliveries import (
    INDEX_KEY,
    JOINED_DUE_KEY,
    STATS_KEY,
    Claim,
    Coalescing,
    DeliveryStore,
    Recorded,
    delivery_key,
    joined_key,
)

QUEUE = "responder:test-store-queue"  # under responder:, so the fixture clears it
INCIDENT = "incident-store-test"


def record(
    store: DeliveryStore,
    delivery_id: str,
    *,
    source: str = "alertmanager",
    key: str | None = None,
    claim: Claim = Claim.ALERTMANAGER,
    now: datetime | None = None,
    priority: str = "P3",
    coalescing: Coalescing | None = None,
) -> Recorded:
    """Record a delivery with one dedup key (`key`, default its id) that would start a run."""
    return store.record(
        delivery_id=delivery_id,
        source=source,
        raw_body=b"{}",
        headers={},
        dedup_keys=[(key or delivery_id, "start")],
        fields={},
        now=now or datetime.now(UTC),
        claim=claim,
        incident=INCIDENT,
        messages=[TaskMessage(QUEUE, f'{{"for": "{delivery_id}"}}', "task", "start")],
        priority=priority,
        coalescing=coalescing,
    )


def claim_holder(client: redis.Redis) -> bytes:
    """Return who holds the test incident's claim (without its rank and time)."""
    return client.get(f"responder:incident-claim:{INCIDENT}").split(b"|")[0]


def test_recording_the_same_delivery_twice_returns_the_first_outcome_and_does_nothing_again(
    redis_client: redis.Redis,
) -> None:
    # What a retried call does when the first reply was lost: the script ran already.
    store = DeliveryStore(redis_client)
    first = record(store, "d-retried", key="fingerprint:firing:t0")
    again = record(store, "d-retried", key="fingerprint:firing:t0")

    assert (first.started, first.fresh_keys, first.pipeline) == (
        True,
        frozenset({"fingerprint:firing:t0"}),
        "queued",
    )
    assert again == first
    assert redis_client.llen(QUEUE) == 1
    assert redis_client.zcard(INDEX_KEY) == 1


def test_repeating_a_duplicate_delivery_decides_the_same_and_queues_nothing(
    redis_client: redis.Redis,
) -> None:
    store = DeliveryStore(redis_client)
    record(store, "d-first", key="fingerprint:firing:t0")
    duplicate = record(store, "d-repeat", key="fingerprint:firing:t0")
    again = record(store, "d-repeat", key="fingerprint:firing:t0")

    assert duplicate == again
    assert (again.duplicate, again.pipeline) == (True, "not started: duplicate")
    assert redis_client.llen(QUEUE) == 1


def test_a_new_alert_of_a_group_already_running_starts_again(redis_client: redis.Redis) -> None:
    store = DeliveryStore(redis_client)
    assert record(store, "d-am-1").started
    assert record(store, "d-am-2").started  # another alert of the same group
    assert claim_holder(redis_client) == b"alertmanager:d-am-2"
    assert redis_client.llen(QUEUE) == 2


def test_alertmanager_yields_to_pagerduty_and_pagerduty_to_anything_running(
    redis_client: redis.Redis,
) -> None:
    store = DeliveryStore(redis_client)
    assert record(store, "d-pd-1", source="pagerduty", claim=Claim.PAGERDUTY).started
    after_pd = record(store, "d-am-1")
    again_pd = record(store, "d-pd-2", source="pagerduty", claim=Claim.PAGERDUTY)

    assert after_pd.pipeline == "not started: incident already handled by pagerduty:d-pd-1"
    assert again_pd.pipeline == "not started: incident already handled by pagerduty:d-pd-1"
    assert claim_holder(redis_client) == b"pagerduty:d-pd-1"
    assert redis_client.llen(QUEUE) == 1


def test_a_forced_claim_takes_the_incident_over(redis_client: redis.Redis) -> None:
    store = DeliveryStore(redis_client)
    record(store, "d-pd-1", source="pagerduty", claim=Claim.PAGERDUTY)
    reopened = record(store, "d-pd-2", source="pagerduty", claim=Claim.FORCE)
    assert reopened.started
    assert claim_holder(redis_client) == b"pagerduty:d-pd-2"


def test_deliveries_expire_after_the_retention_and_leave_the_listing(
    redis_client: redis.Redis,
) -> None:
    store = DeliveryStore(redis_client, retention=timedelta(days=2))
    now = datetime.now(UTC)
    record(store, "d-old-1", now=now - timedelta(days=3))  # past retention when listed
    record(store, "d-new-1", now=now - timedelta(hours=1))

    assert store.list_ids() == ["d-new-1"]
    assert store.list_ids(since=now - timedelta(days=30)) == ["d-new-1"]
    assert 0 < redis_client.ttl(delivery_key("d-new-1")) <= 2 * 86400


def test_a_task_finishing_after_its_delivery_expired_writes_no_partial_record(
    redis_client: redis.Redis,
) -> None:
    store = DeliveryStore(redis_client)
    record(store, "d-kept-1")
    store.update("d-kept-1", first_note="NOTE1")
    assert store.get("d-kept-1")["first_note"] == "NOTE1"  # type: ignore[index]
    redis_client.delete(delivery_key("d-kept-1"))  # as its retention would
    store.update("d-kept-1", evidence_note="NOTE2")
    assert not redis_client.exists(delivery_key("d-kept-1"))
    assert store.load("d-kept-1") is None  # not a record of one field, with no id to load


def test_the_index_is_trimmed_by_deliveries_whose_id_ends_in_0(redis_client: redis.Redis) -> None:
    store = DeliveryStore(redis_client, retention=timedelta(days=2))
    redis_client.zadd(INDEX_KEY, {"d-past": (datetime.now(UTC) - timedelta(days=3)).timestamp()})
    record(store, "d-keeps-1")
    assert redis_client.zscore(INDEX_KEY, "d-past") is not None
    record(store, "d-trims-0")
    assert redis_client.zscore(INDEX_KEY, "d-past") is None


COALESCING = Coalescing(refresh_seconds=600, joined_every_seconds=300)


def test_a_delivery_for_an_incident_with_a_run_in_progress_joins_it(
    redis_client: redis.Redis,
) -> None:
    store = DeliveryStore(redis_client)
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    first = record(store, "d-1", now=start, coalescing=COALESCING)
    joined = [
        record(store, f"d-{n}", now=start + timedelta(seconds=n), coalescing=COALESCING)
        for n in (2, 3)
    ]
    assert first.started and not any(j.started for j in joined)
    assert [j.pipeline for j in joined] == ["joined the run of alertmanager:d-1"] * 2
    assert redis_client.llen(QUEUE) == 1  # one run, not three
    assert redis_client.lrange(joined_key(INCIDENT), 0, -1) == [b"d-2", b"d-3"]
    # One "more alerts" note is due, the interval after the first join.
    due = redis_client.zscore(JOINED_DUE_KEY, INCIDENT)
    assert due == (start + timedelta(seconds=2 + 300)).timestamp()
    assert redis_client.hget(STATS_KEY, "coalesced") == b"2"
    assert claim_holder(redis_client) == b"alertmanager:d-1"


def test_a_more_severe_delivery_starts_its_own_run_at_once(redis_client: redis.Redis) -> None:
    store = DeliveryStore(redis_client)
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    record(store, "d-p3", now=start, coalescing=COALESCING)
    rises = record(store, "d-p1", now=start, priority="P1", coalescing=COALESCING)
    after = record(store, "d-p3-again", now=start, coalescing=COALESCING)
    assert rises.started and rises.pipeline == "queued"
    assert after.pipeline == "joined the run of alertmanager:d-p1"  # P3 joins the P1 run


def test_evidence_is_refreshed_once_the_refresh_interval_has_passed(
    redis_client: redis.Redis,
) -> None:
    store = DeliveryStore(redis_client)
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    record(store, "d-1", now=start, coalescing=COALESCING)
    later = record(store, "d-2", now=start + timedelta(minutes=11), coalescing=COALESCING)
    assert later.started
    assert claim_holder(redis_client) == b"alertmanager:d-2"


def test_a_delivery_that_brings_no_new_firing_alert_starts_and_joins_nothing(
    redis_client: redis.Redis,
) -> None:
    store = DeliveryStore(redis_client)
    record(store, "d-1", key="a:firing:t0", coalescing=COALESCING)
    repeat = record(store, "d-2", key="a:firing:t0", coalescing=COALESCING)
    assert repeat.pipeline == "not started: duplicate"
    assert redis_client.llen(joined_key(INCIDENT)) == 0


def record_resolution(store: DeliveryStore, delivery_id: str) -> None:
    """Record Alertmanager's resolution of the test incident's group (the same alert each time)."""
    store.record(
        delivery_id=delivery_id,
        source="alertmanager",
        raw_body=b"{}",
        headers={},
        dedup_keys=[("a:resolved:t0", "resolved")],
        fields={},
        now=datetime.now(UTC),
        claim=Claim.RELEASE,
        incident=INCIDENT,
    )


def test_a_resolved_group_releases_its_incident_so_its_next_alert_runs_anew(
    redis_client: redis.Redis,
) -> None:
    # Firing again after a resolution opens a new PagerDuty incident under the same key: it
    # needs its own first note, not a place in the old run.
    store = DeliveryStore(redis_client)
    record(store, "d-1", coalescing=COALESCING)
    record_resolution(store, "d-resolved")
    assert redis_client.get(f"responder:incident-claim:{INCIDENT}") is None
    assert record(store, "d-2", coalescing=COALESCING).started
    # The same resolution again (a retry, the other Alertmanager of a pair) frees nothing.
    record_resolution(store, "d-resolved-again")
    assert claim_holder(redis_client) == b"alertmanager:d-2"


def test_a_large_body_is_stored_packed_and_read_back_as_sent(redis_client: redis.Redis) -> None:
    store = DeliveryStore(redis_client)
    body = b'{"alerts": [' + b",".join(b'{"n": %d, "same": "text"}' % n for n in range(500)) + b"]}"
    store.record(
        delivery_id="d-large",
        source="alertmanager",
        raw_body=body,
        headers={},
        dedup_keys=[("k-large", "start")],
        fields={"alerts": [{"name": "x" * 10} for _ in range(400)]},
        now=datetime.now(UTC),
    )
    fields = redis_client.hkeys(delivery_key("d-large"))
    assert b"raw_body_z" in fields and b"raw_body" not in fields
    assert redis_client.memory_usage(delivery_key("d-large")) < len(body) / 4
    stored = store.get("d-large")
    assert stored["raw_body"] == body and len(stored["alerts"]) == 400
