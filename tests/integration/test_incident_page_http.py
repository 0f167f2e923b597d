"""The incident page and the list page over plain HTTP (Flask's test client, real Redis): signed
links only, the console token, CSRF, the security headers, no secret in what is served."""

from __future__ import annotations

import base64
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import yaml
from flask.testing import FlaskClient

from tasks.evidence.approval_links import approval_link
from tasks.evidence.links import incident_link
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tests.support import INTAKE_QUEUE, LINK_SECRET, PD_TOKEN
from tests.support.incident_page import PLANTED_PASSWORD, MadeIncident, make_incident
from triage.policy import builtin_text
from webhooks import create_app

CONSOLE_TOKEN = "console-token-3e9a"


@pytest.fixture
def page_settings(intake_settings: Settings, tmp_path: Path) -> Settings:
    return replace(
        intake_settings, console_token=Secret(CONSOLE_TOKEN), bundle_dir=tmp_path / "bundles"
    )


@pytest.fixture
def client(page_settings: Settings) -> FlaskClient:
    return create_app(page_settings).test_client()


@pytest.fixture
def made(page_settings: Settings, redis_client: redis.Redis) -> Iterator[MadeIncident]:
    # The PagerDuty token planted in a collector's log and summary: redaction must catch it.
    yield make_incident(Runtime(page_settings), "PHTTP01", datetime.now(UTC), planted=PD_TOKEN)
    redis_client.delete(f"{INTAKE_QUEUE}-actions", INTAKE_QUEUE, f"{INTAKE_QUEUE}-urgent")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', html).group(1)  # type: ignore[union-attr]


def test_the_incident_page_opens_with_its_signed_link_and_strict_headers(
    client: FlaskClient, made: MadeIncident
) -> None:
    answer = client.get(made.path)
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "TradingServiceDown: execution-engine is down" in html
    assert "Acknowledged" in html and "Dana Oncall" in html
    assert "Tell management" in html and "overdue" in html
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in answer.headers["Cache-Control"]
    # No inline script, no style or event-handler attribute: the CSP would block them anyway.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\s(style|on[a-z]+)=", html)
    assert "<style" not in html
    # Nothing the page loads comes from elsewhere: no CDN font, script or image.
    loaded = re.findall(r'<(?:script|img|link)\b[^>]*\b(?:src|href)="([^"]+)"', html)
    assert loaded and all(url.startswith("/") and not url.startswith("//") for url in loaded)
    with client.get("/incidents/static/incident.js") as script:
        assert script.status_code == 200 and script.headers["X-Content-Type-Options"] == "nosniff"


def test_a_secret_planted_in_a_collectors_output_appears_nowhere_the_page_serves(
    client: FlaskClient, made: MadeIncident
) -> None:
    page = client.get(made.path).get_data(as_text=True)
    state = client.get(made.path.replace("?", "/state.json?", 1)).get_data(as_text=True)
    archive = client.get(made.path.replace("?", "/evidence.zip?", 1))
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as packed:
        names = packed.namelist()
        files = "".join(packed.read(n).decode("utf-8", "replace") for n in names)
    assert f"{made.run_id}/manifest.json" in names
    assert f"{made.run_id}/docker/execution-engine.log" in names
    assert "[REDACTED]" in page and "[REDACTED]" in files  # it was there, and it was caught
    for served in (page, state, files):
        assert PD_TOKEN not in served
        assert PLANTED_PASSWORD not in served
        assert LINK_SECRET not in served


@pytest.mark.parametrize(
    "spoil",
    [
        lambda path: path.replace("sig=", "sig=0"),
        lambda path: re.sub(r"expires=\d+", "expires=1999999999", path),
        lambda path: path.split("?")[0],
        lambda path: path.replace("/PHTTP01?", "/PHTTP02?"),
    ],
    ids=["tampered-signature", "moved-expiry", "unsigned", "another-incident"],
)
def test_a_tampered_or_unsigned_link_gets_403(
    client: FlaskClient, made: MadeIncident, spoil
) -> None:
    for suffix in ("", "/state.json", "/evidence.zip"):
        path = spoil(made.path).replace("?", f"{suffix}?", 1)
        if "?" not in path:
            path += suffix
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "Dana Oncall" not in answer.get_data(as_text=True)


def test_an_expired_link_gets_403_and_says_so(client: FlaskClient, made: MadeIncident) -> None:
    expired = incident_link("", made.incident_id, int(time.time()) - 5, LINK_SECRET)
    answer = client.get(expired)
    assert answer.status_code == 403
    assert "the link has expired" in answer.get_data(as_text=True)


def test_a_signed_link_to_an_incident_the_responder_does_not_know_gets_404(
    client: FlaskClient, made: MadeIncident
) -> None:
    link = incident_link("", "PNOTHERE", int(time.time()) + 60, LINK_SECRET)
    assert client.get(link).status_code == 404


def test_the_poll_says_status_deadlines_and_proposals(
    client: FlaskClient, made: MadeIncident
) -> None:
    state = client.get(made.path.replace("?", "/state.json?", 1)).get_json()
    assert state["status"] == "acknowledged" and state["acknowledged_by"] == "Dana Oncall"
    kinds = {d["kind"]: d["state"] for d in state["deadlines"]}
    assert kinds["notify_management"] == "overdue" and kinds["acknowledge"] == "met"
    assert [p["id"] for p in state["proposals"]] == [made.proposal_id]
    assert state["proposals"][0]["waiting"]


def personal(made: MadeIncident, email: str, incident_id: str = "", minutes: int = 30) -> str:
    """Return `email`'s personal approval link to the incident's page (a path)."""
    expires = int(time.time()) + minutes * 60
    return approval_link("", incident_id or made.incident_id, email, expires, LINK_SECRET)


def decide_path(path: str, proposal_id: str) -> str:
    """Return the approve/deny form's target for a page link."""
    return path.replace("?", f"/proposals/{proposal_id}?", 1)


def test_approving_needs_a_personal_link_and_the_pages_csrf_token_then_goes_down_the_path(
    client: FlaskClient, made: MadeIncident, redis_client: redis.Redis, page_settings: Settings
) -> None:
    link = personal(made, "oncall@eafix.example")
    html = client.get(link).get_data(as_text=True)
    assert "Signed in as <strong>oncall@eafix.example</strong>" in html
    assert 'class="decide"' in html and 'name="approver"' not in html
    action = decide_path(link, made.proposal_id)
    # A typed identity is never read: the link's is the one that approves.
    form = {"approver": "someone-else@eafix.example", "decision": "approve"}
    forged = client.post(action, data={**form, "csrf": "0" * 64})
    assert forged.status_code == 403
    unsigned = client.post(action.split("?")[0], data={**form, "csrf": csrf_of(html)})
    assert unsigned.status_code == 403
    rt = Runtime(page_settings)
    assert json.loads(redis_client.get(f"responder:action:{made.proposal_id}"))["status"] == (
        "proposed"
    )
    answer = client.post(action, data={**form, "csrf": csrf_of(html)})
    assert answer.status_code == 303
    assert "said=approved" in answer.headers["Location"]
    assert "asig=" in answer.headers["Location"]  # back to the page, still signed in
    record = json.loads(redis_client.get(f"responder:action:{made.proposal_id}"))
    assert record["status"] == "approved" and record["via"] == "incident page"
    assert record["approved_by"] == "oncall@eafix.example"
    queued = [json.loads(m) for m in redis_client.lrange(f"{INTAKE_QUEUE}-actions", 0, -1)]
    assert [m["headers"]["task"] for m in queued] == ["tasks.pipeline.act"]
    history = [e["what"] for e in rt.incidents.history(made.incident_id)]
    assert (
        f"action {made.proposal_id} approved: stop-trading on gui-gateway (via incident page)"
        in (history)
    )
    # A second click answers "already", queues nothing more.
    again = client.post(action, data={**form, "csrf": csrf_of(html)})
    assert "said=already" in again.headers["Location"]
    assert redis_client.llen(f"{INTAKE_QUEUE}-actions") == 1
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Approved, running" in shown


def test_the_read_link_shows_no_form_and_the_form_posted_by_hand_with_it_gets_403(
    client: FlaskClient, made: MadeIncident, redis_client: redis.Redis
) -> None:
    html = client.get(made.path).get_data(as_text=True)
    assert 'class="decide"' not in html and "Signed in as" not in html
    assert "This page link lets you read the incident; it approves nothing." in html
    # The CSRF token a signed-in page of the same browser would carry: CSRF is not the lock.
    token = csrf_of(client.get(personal(made, "oncall@eafix.example")).get_data(as_text=True))
    for decision in ("approve", "deny"):
        form = {"approver": "oncall@eafix.example", "decision": decision, "csrf": token}
        answer = client.post(decide_path(made.path, made.proposal_id), data=form)
        assert answer.status_code == 403
        said = answer.get_data(as_text=True)
        assert "lets you read the incident, not approve or deny" in said
        assert "oncall@eafix.example" not in said
    assert json.loads(redis_client.get(f"responder:action:{made.proposal_id}"))["status"] == (
        "proposed"
    )
    assert redis_client.llen(f"{INTAKE_QUEUE}-actions") == 0


@pytest.mark.parametrize(
    "spoil",
    [
        lambda path: path.replace("as=oncall%40", "as=intruder%40"),
        lambda path: path.replace("asig=", "asig=0"),
        lambda path: re.sub(r"until=\d+", "until=1999999999", path),
        lambda path: path.replace("/PHTTP01?", "/PHTTP02?"),
        lambda path: re.sub(r"asig=[0-9a-f]+", "asig=%C3%A9", path),
    ],
    ids=["another-identity", "tampered-signature", "moved-expiry", "another-incident", "non-ascii"],
)
def test_a_tampered_personal_link_opens_nothing_and_approves_nothing(
    client: FlaskClient, made: MadeIncident, redis_client: redis.Redis, spoil
) -> None:
    link = spoil(personal(made, "oncall@eafix.example"))
    answer = client.get(link)
    assert answer.status_code == 403
    assert "the approval link is invalid" in answer.get_data(as_text=True)
    posted = client.post(decide_path(link, made.proposal_id), data={"decision": "approve"})
    assert posted.status_code == 403
    assert json.loads(redis_client.get(f"responder:action:{made.proposal_id}"))["status"] == (
        "proposed"
    )


def test_a_personal_link_turned_from_the_read_links_signature_opens_nothing(
    client: FlaskClient, made: MadeIncident
) -> None:
    read = dict(part.split("=", 1) for part in made.path.split("?", 1)[1].split("&"))
    forged = (
        f"/incidents/{made.incident_id}?as=oncall%40eafix.example&until={read['expires']}"
        f"&asig={read['sig']}"
    )
    assert client.get(forged).status_code == 403
    # And the other way: an approval signature offered as a read link's.
    approve = dict(
        part.split("=", 1)
        for part in personal(made, "oncall@eafix.example").split("?")[1].split("&")
    )
    turned = f"/incidents/{made.incident_id}?expires={approve['until']}&sig={approve['asig']}"
    assert client.get(turned).status_code == 403


def test_an_expired_personal_link_says_it_expired(client: FlaskClient, made: MadeIncident) -> None:
    answer = client.get(personal(made, "oncall@eafix.example", minutes=-1))
    assert answer.status_code == 403
    assert "the approval link has expired" in answer.get_data(as_text=True)


def test_denying_from_the_page_closes_the_proposal_as_the_links_person(
    client: FlaskClient, made: MadeIncident, redis_client: redis.Redis
) -> None:
    link = personal(made, "lead@eafix.example")
    token = csrf_of(client.get(link).get_data(as_text=True))
    action = decide_path(link, made.proposal_id)
    bad = client.post(action, data={"decision": "maybe", "csrf": token})
    assert "said=bad-decision" in bad.headers["Location"]
    assert json.loads(redis_client.get(f"responder:action:{made.proposal_id}"))["status"] == (
        "proposed"
    )
    denied = client.post(action, data={"decision": "deny", "csrf": token})
    assert "said=denied" in denied.headers["Location"]
    record = json.loads(redis_client.get(f"responder:action:{made.proposal_id}"))
    assert record["status"] == "denied" and record["approved_by"] == "lead@eafix.example"
    assert redis_client.llen(f"{INTAKE_QUEUE}-actions") == 0


def test_a_refusal_on_the_page_says_not_allowed_and_the_page_and_poll_name_no_approver(
    page_settings: Settings, tmp_path: Path, redis_client: redis.Redis
) -> None:
    policy = yaml.safe_load(builtin_text())
    for action in policy["actions"]["catalog"]:
        if action["name"] == "stop-trading":
            action["approvers"] = ["PDANA01", "dana@eafix.example"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    settings = replace(page_settings, policy_path=str(path))
    client = create_app(settings).test_client()
    made = make_incident(Runtime(settings), "PHTTP03", datetime.now(UTC))
    link = personal(made, "intruder@eafix.example")
    token = csrf_of(client.get(link).get_data(as_text=True))
    answer = client.post(
        decide_path(link, made.proposal_id), data={"decision": "approve", "csrf": token}
    )
    assert "said=refused" in answer.headers["Location"]
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Refused: not allowed. Nothing runs." in page
    assert "not allowed: intruder@eafix.example may not approve stop-trading" in page
    state = client.get(made.path.replace("?", "/state.json?", 1)).get_data(as_text=True)
    plain = client.get(made.path).get_data(as_text=True)
    queued = "".join(m.decode() for m in redis_client.lrange(f"{INTAKE_QUEUE}-actions", 0, -1))
    assert "action_refused" in queued
    for said in (page, state, plain, queued):
        assert "PDANA01" not in said and "dana@eafix.example" not in said
    assert json.loads(redis_client.get(f"responder:action:{made.proposal_id}"))["status"] == (
        "proposed"
    )


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, basic("oncall", "wrong"), {"Authorization": "Basic !"}],
    ids=["none", "wrong-bearer", "wrong-basic", "malformed-basic"],
)
def test_the_list_page_without_its_token_gets_401_with_a_basic_challenge(
    client: FlaskClient, made: MadeIncident, headers: dict[str, str]
) -> None:
    answer = client.get("/incidents", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    assert "PHTTP01" not in answer.get_data(as_text=True)


def test_the_list_page_is_closed_when_no_console_token_is_set(
    intake_settings: Settings, made: MadeIncident
) -> None:
    client = create_app(intake_settings).test_client()
    assert client.get("/incidents", headers=basic("x", "")).status_code == 503


def test_the_list_page_shows_open_incidents_with_links_that_open_their_pages(
    client: FlaskClient, made: MadeIncident, page_settings: Settings
) -> None:
    rt = Runtime(page_settings)
    rt.incidents.mark_clock("PHTTP-P3", "P3", datetime.now(UTC).isoformat(), "r")
    for headers in ({"Authorization": f"Bearer {CONSOLE_TOKEN}"}, basic("any", CONSOLE_TOKEN)):
        answer = client.get("/incidents", headers=headers)
        assert answer.status_code == 200
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
    html = answer.get_data(as_text=True)
    assert CONSOLE_TOKEN not in html
    # By priority: the P1 before the P3 that started later.
    assert html.index("PHTTP01") < html.index("PHTTP-P3")
    assert "Tell management: " in html and "overdue" in html
    link = re.search(r'href="(/incidents/PHTTP01\?[^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert client.get(link.replace("&amp;", "&")).status_code == 200


def test_replay_from_the_list_page_needs_token_and_csrf_and_queues_the_run(
    client: FlaskClient, made: MadeIncident, page_settings: Settings, redis_client: redis.Redis
) -> None:
    from tests.support import sample_payload

    rt = Runtime(page_settings)
    recorded = (
        create_app(page_settings)
        .test_client()
        .post(
            "/webhooks/alertmanager",
            json=sample_payload(groupKey="incident-page-replay"),
            headers={"Authorization": f"Bearer {page_settings.alertmanager_token.reveal()}"},
        )
    )
    assert recorded.status_code == 202, recorded.get_data(as_text=True)
    delivery_id = recorded.get_json()["delivery_id"]
    redis_client.delete(INTAKE_QUEUE, f"{INTAKE_QUEUE}-urgent")
    auth = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    html = client.get("/incidents", headers=auth).get_data(as_text=True)
    assert delivery_id in html
    path = f"/incidents/replay/{delivery_id}"
    assert client.post(path, data={"csrf": csrf_of(html)}).status_code == 401
    assert client.post(path, headers=auth, data={"csrf": "1" * 64}).status_code == 403
    answer = client.post(path, headers=auth, data={"csrf": csrf_of(html)})
    assert answer.status_code == 303 and "said=replayed" in answer.headers["Location"]
    queued = redis_client.llen(INTAKE_QUEUE) + redis_client.llen(f"{INTAKE_QUEUE}-urgent")
    assert queued == 1
    assert rt.deliveries.get(delivery_id)["pipeline"] == "queued (replay)"  # type: ignore[index]


def test_one_incidents_link_cannot_approve_another_incidents_proposal(
    client: FlaskClient, made: MadeIncident, page_settings: Settings, redis_client: redis.Redis
) -> None:
    other = make_incident(Runtime(page_settings), "PHTTP02", datetime.now(UTC))
    link = personal(made, "oncall@eafix.example")
    token = csrf_of(client.get(link).get_data(as_text=True))
    # PHTTP01's personal link, PHTTP02's proposal.
    answer = client.post(
        decide_path(link, other.proposal_id), data={"decision": "approve", "csrf": token}
    )
    assert "said=unknown" in answer.headers["Location"]
    assert json.loads(redis_client.get(f"responder:action:{other.proposal_id}"))["status"] == (
        "proposed"
    )
    assert redis_client.llen(f"{INTAKE_QUEUE}-actions") == 0


def test_a_signature_or_csrf_token_with_non_ascii_characters_gets_403_not_500(
    client: FlaskClient, made: MadeIncident
) -> None:
    # hmac.compare_digest refuses str with non-ASCII characters (TypeError): a 500.
    spoiled = re.sub(r"sig=[0-9a-f]+", "sig=%C3%A9", made.path)
    for suffix in ("", "/state.json", "/evidence.zip"):
        assert client.get(spoiled.replace("?", f"{suffix}?", 1)).status_code == 403, suffix
    bundle = re.sub(r"sig=[0-9a-f]+", "sig=%C3%A9", made.path).replace(
        f"/incidents/{made.incident_id}?", f"/bundles/{made.run_id}/?", 1
    )
    assert client.get(bundle).status_code == 403
    link = personal(made, "oncall@eafix.example")
    client.get(link)  # the CSRF cookie
    form = {"decision": "approve", "csrf": "é" * 64}
    assert client.post(decide_path(link, made.proposal_id), data=form).status_code == 403
