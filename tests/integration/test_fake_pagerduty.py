"""The fake PagerDuty checks requests against the OpenAPI spec and injects failures."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pagerduty
import pytest

from tests.fakes.pagerduty import (
    DEFAULT_SPEC_DIR,
    OWN_SPEC_DIR,
    SPEC_FILES,
    FakePagerDuty,
    spec_directory,
)


def require_published_specs() -> None:
    """Fail in CI, or report as not run elsewhere, when PagerDuty's published specs are absent.

    A user's clone has no ../shared beside it; CI always has, and must test against them.
    """
    if all((DEFAULT_SPEC_DIR / name).is_file() for name in SPEC_FILES.values()):
        return
    where = f"PagerDuty's published specs are not in {DEFAULT_SPEC_DIR}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{where}; CI requires them")
    pytest.skip(f"{where} (a clone without ../shared); CI runs these")


@pytest.fixture(params=["published", "own"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakePagerDuty]:
    if request.param == "published":
        require_published_specs()
    spec_dir = DEFAULT_SPEC_DIR if request.param == "published" else OWN_SPEC_DIR
    server = FakePagerDuty(token="t", spec_dir=spec_dir).start()
    yield server
    server.stop()


def client(fake: FakePagerDuty, **headers: str) -> httpx2.Client:
    return httpx2.Client(
        base_url=fake.base_url,
        verify=ssl.create_default_context(cafile=fake.ca_file),
        headers={
            "Authorization": "Token token=t",
            "Accept": "application/vnd.pagerduty+json;version=2",
            **headers,
        },
    )


def test_the_published_spec_is_used_when_present() -> None:
    require_published_specs()
    assert spec_directory({}) == (DEFAULT_SPEC_DIR, True)


def test_ci_requires_the_published_spec(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="required in CI"):
        spec_directory({"CI": "true", "RESPONDER_PAGERDUTY_SPECS": str(tmp_path)})
    assert spec_directory({"RESPONDER_PAGERDUTY_SPECS": str(tmp_path)}) == (OWN_SPEC_DIR, False)


def test_a_valid_note_is_stored(fake: FakePagerDuty) -> None:
    incident = fake.add_incident("k")
    answer = client(fake, From="a@b.example").post(
        f"/incidents/{incident}/notes", json={"note": {"content": "hello"}}
    )
    assert answer.status_code == 200
    assert [n["content"] for n in fake.notes_for(incident)] == ["hello"]
    assert fake.rejected() == []


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, {"note": {"content": "no From header"}}),
        ({"From": "a@b.example"}, {"note": {}}),
        ({"From": "a@b.example"}, {"content": "not wrapped"}),
    ],
)
def test_requests_off_the_spec_are_rejected_with_400(fake: FakePagerDuty, headers, body) -> None:
    incident = fake.add_incident("k")
    answer = client(fake, **headers).post(f"/incidents/{incident}/notes", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == 2001
    assert len(fake.rejected()) == 1
    assert fake.notes_for(incident) == []


def test_a_wrong_token_is_401(fake: FakePagerDuty) -> None:
    answer = client(fake, Authorization="Token token=wrong").get("/incidents")
    assert answer.status_code == 401


def test_a_client_that_connects_and_falls_silent_holds_up_no_other(fake: FakePagerDuty) -> None:
    # A worker on a host cut off mid-handshake (the failover bench): the fake's serving
    # thread must go on accepting, and stop() must return.
    host, port = fake.base_url.removeprefix("https://").rsplit(":", 1)
    with socket.create_connection((host, int(port))):
        answer = client(fake, Authorization="Token token=wrong").get("/incidents")
        assert answer.status_code == 401


def test_an_unknown_incident_is_a_404_as_the_spec_declares_not_an_off_spec_answer(
    fake: FakePagerDuty,
) -> None:
    # A worker still busy with the last test's incident calls on it after `reset`: PagerDuty's
    # published spec declares the 404 every incident's endpoint answers, and so does ours.
    earlier = fake.add_incident("earlier")
    fake.reset()
    http = client(fake, From="a@b.example")
    late = [
        http.post(f"/incidents/{earlier}/notes", json={"note": {"content": "late"}}),
        http.put(
            f"/incidents/{earlier}",
            json={"incident": {"type": "incident_reference", "status": "resolved"}},
        ),
        http.get(f"/incidents/{earlier}"),
    ]
    assert [answer.status_code for answer in late] == [404, 404, 404]
    assert fake.rejected() == []


def test_failures_can_be_injected_for_the_next_calls(fake: FakePagerDuty) -> None:
    fake.fail_next(429, count=2)
    fake.fail_next(500)
    http = client(fake)
    statuses = [http.get("/priorities").status_code for _ in range(4)]
    assert statuses == [429, 429, 500, 200]
    limited = [c for c in fake.calls if c.status == 429]
    assert len(limited) == 2


def test_the_official_client_talks_to_it(fake: FakePagerDuty) -> None:
    incident = fake.add_incident("abc")
    api = pagerduty.RestApiV2Client(
        "t",
        default_from="r@eafix.example",
        base_url=fake.base_url,
        verify=ssl.create_default_context(cafile=fake.ca_file),
    )
    assert [
        i["id"]
        for i in api.list_all("incidents", params={"incident_key": "abc", "date_range": "all"})
    ] == [incident]
    assert (
        api.rput(
            f"/incidents/{incident}", json={"type": "incident_reference", "escalation_level": 2}
        )["escalation_level"]
        == 2
    )
    events = pagerduty.EventsApiV2Client(
        "r" * 32, base_url=fake.base_url, verify=ssl.create_default_context(cafile=fake.ca_file)
    )
    assert events.trigger("summary", "source", dedup_key="new-key") == "new-key"
    assert fake.incident_id_for_key("new-key") is not None
    assert fake.rejected() == []
