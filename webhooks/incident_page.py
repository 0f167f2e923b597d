"""The incident page (`GET /incidents/<id>`, behind the same signed, expiring links as bundles)
and the list page (`GET /incidents`, behind RESPONDER_CONSOLE_TOKEN).

Server-rendered Jinja2 with one static script that polls `state.json`; no inline script or
style, so the Content-Security-Policy forbids both. The receiver stays thin: it reads Redis
records and the bundle's manifest with small readers here, says them in words with the pure
`webhooks/incident_page_view.py`, and sends tasks by name (approvals down
`tasks/actions/approval.py`, replays as `responder replay` does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from redis import RedisError

from tasks.actions import approval
from tasks.evidence.approval_links import (
    IDENTITY,
    SIGNATURE,
    UNTIL,
    approval_problem,
    approval_query,
)
from tasks.evidence.links import (
    incident_query,
    incident_subject,
    link_problem,
    signed_query,
)
from tasks.gateways.bundle_store import BundleStoreError
from tasks.lanes import actions_queue, queue_for
from tasks.names import RESPOND
from tasks.notes import lines
from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.store import incident_reads, runs
from tasks.store.correlation import CorrelationLedger
from triage.correlation_replay import finished
from triage.models import PayloadError, parse_alertmanager, parse_pagerduty
from webhooks import incident_page_view as view
from webhooks.errors import problem
from webhooks.receiver import current_receiver
from webhooks.security_headers import protect

log = logging.getLogger(__name__)
blueprint = Blueprint(
    "incident_page",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/incidents/static",
)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
CSRF_COOKIE = "responder_csrf"
CONSOLE_COOKIE_PATH = "/incidents"
PAGE_SIZE = 50  # open incidents per list page; a storm pages, it does not render thousands
RECENT_DELIVERIES = 30
MAX_LOG_CHARS = 60_000  # a log folded on the page; the archive has all of it
_PRIORITY_RANK = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}

# Answers to an approval, as the page says them (the redirect carries only the key).
SAID = {
    "approved": "Approved. The action is queued; its outcome appears here when it arrives.",
    "already": "Someone else acted on it already.",
    "unknown": "No such proposal (unknown or past retention).",
    "denied": "Denied. It will not run.",
    "checking": "Checking with PagerDuty that you are assigned to the incident; the outcome "
    "appears here.",
    "partly": "Approval counted. This action needs a second, different person to approve "
    "it before it runs; the page shows when it does.",
    "refused": "Refused: not allowed. Nothing runs.",
    "bad-decision": "Choose Approve or Deny.",
    "replayed": "Replay queued.",
    "not-replayed": "Not replayed.",
}

NOT_SIGNED_IN = (
    "This link lets you read the incident, not approve or deny: it names nobody. Approve with "
    "your personal approval link (e-mailed to you, or ask an operator for one), the Approve "
    'button in Slack, a PagerDuty note "/approve <proposal id>", or `responder action '
    "approve`."
)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@blueprint.after_request
def _headers(response: Response) -> Response:
    """Add the page's security headers to every answer of this blueprint."""
    return protect(response, CSP)


# ---------------------------------------------------------------------------- the incident page


@dataclass(frozen=True)
class Access:
    """What a verified link grants: reading until `expires`, and approving as `identity`
    when it is a personal approval link ("" for a read link, which approves nothing)."""

    expires: int
    identity: str = ""

    def query(self, incident_id: str, secret: str) -> str:
        """Return the query string that keeps this access on the page's own links and forms."""
        if self.identity:
            return approval_query(incident_id, self.identity, self.expires, secret)
        return incident_query(incident_id, self.expires, secret)


def _access(incident_id: str) -> tuple[Response | None, Access]:
    """Check the link's signature; return (a 403/404 answer or None, what it grants).

    A personal approval link (`as`, `until`, `asig`) also opens the page; a read link
    (`expires`, `sig`) only reads it.
    """
    secret = current_receiver().settings.link_secret.reveal()
    if not _ID.match(incident_id):
        return _error_page(404, "No such incident."), Access(0)
    now = datetime.now(UTC)
    if request.args.get(SIGNATURE) is not None:
        identity = request.args.get(IDENTITY, "")
        until = request.args.get(UNTIL)
        why = approval_problem(incident_id, identity, until, request.args[SIGNATURE], secret, now)
        if why is not None:
            return _error_page(403, f"This link does not open the incident page: {why}."), Access(0)
        return None, Access(int(until or 0), identity)
    expires, sig = request.args.get("expires"), request.args.get("sig")
    why = link_problem(incident_subject(incident_id), expires, sig, secret, now)
    if why is not None:
        return _error_page(403, f"This link does not open the incident page: {why}."), Access(0)
    return None, Access(int(expires or 0))


def _error_page(status: int, message: str) -> Response:
    """Return a small HTML error page (a person clicked a link; JSON would not help)."""
    return Response(render_template("incident_error.html", status=status, message=message), status)


@blueprint.get("/incidents/<incident_id>")
def incident_page(incident_id: str) -> Response:
    """Serve one incident's page when the link's signature is valid and unexpired."""
    refused, access = _access(incident_id)
    if refused is not None:
        return refused
    expires = access.expires
    receiver = current_receiver()
    now = datetime.now(UTC)
    try:
        page = read_incident(receiver.runtime, incident_id, now)
    except RedisError:
        return _error_page(503, "The responder's Redis does not answer; try again shortly.")
    if page is None:
        return _error_page(404, f"The responder knows no incident {incident_id}.")
    secret = receiver.settings.link_secret.reveal()
    query = access.query(incident_id, secret)
    bundle_query = signed_query(page["run_id"], expires, secret) if page["run_id"] else ""
    token, cookie = _csrf(secret, f"incident/{incident_id}")
    said = request.args.get("said", "")
    html = render_template(
        "incident.html",
        page=page,
        query=query,
        signed_in_as=access.identity,
        bundle_query=bundle_query,
        csrf=token,
        said=SAID.get(said, ""),
        said_key=said if said in SAID else "",
        said_about=request.args.get("about", "")[:20],
        link_expires_utc=view.utc_text(datetime.fromtimestamp(expires, UTC)),
    )
    response = Response(html, mimetype="text/html")
    _set_csrf_cookie(response, cookie)
    return response


@blueprint.get("/incidents/<incident_id>/state.json")
def incident_state(incident_id: str) -> Response | tuple[Response, int]:
    """Return what the page polls: status, deadlines, proposals and timeline size."""
    refused, _ = _access(incident_id)
    if refused is not None:
        return problem(refused.status_code, "this link does not open the incident", "sig")
    try:
        state = read_state(current_receiver().runtime, incident_id, datetime.now(UTC))
    except RedisError:
        return problem(503, "Redis does not answer; retry")
    if state is None:
        return problem(404, "no such incident", "id")
    return jsonify(state)


@blueprint.get("/incidents/<incident_id>/evidence.zip")
def incident_archive(incident_id: str) -> Response:
    """Return the incident's latest bundle folder as a zip, built now (it is capped in size)."""
    refused, _ = _access(incident_id)
    if refused is not None:
        return refused
    rt = current_receiver().runtime
    record = incident_reads.record(rt.redis, incident_id)
    run_id = str(record.get("run_id") or "")
    if not run_id or not _ID.match(run_id):
        return _error_page(404, "No evidence bundle for this incident yet.")
    store = rt.bundles
    try:
        # The stored tar.gz holds the same files; a hidden one is a partial write.
        names = [name for name in store.names(run_id) if not name.endswith(".gz")]
        if not names:
            return _error_page(404, "No evidence bundle for this incident yet.")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in names:
                stored = store.open(run_id, name)
                if stored is not None:
                    archive.writestr(f"{run_id}/{name}", b"".join(stored.chunks))
    except BundleStoreError as exc:
        log.warning("incident %s: the bundle store did not answer: %s", incident_id, exc)
        return _error_page(503, "The evidence store does not answer right now; try again.")
    response = Response(buffer.getvalue(), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{run_id}.zip"'
    return response


@blueprint.post("/incidents/<incident_id>/proposals/<proposal_id>")
def decide(incident_id: str, proposal_id: str) -> Response:
    """Approve or deny a proposal from the page: CSRF-checked, then the one approval path."""
    refused, access = _access(incident_id)
    if refused is not None:
        return refused
    if not access.identity:
        # A read link is posted in notes and Slack: whoever holds it is nobody in particular.
        return _error_page(403, NOT_SIGNED_IN)
    receiver = current_receiver()
    secret = receiver.settings.link_secret.reveal()
    if not _csrf_ok(secret, f"incident/{incident_id}"):
        return _error_page(403, "The form is stale or came from elsewhere: reload the page.")
    # Who approves is who the verified link names; a field in the form is never read.
    approver = access.identity
    decision = request.form.get("decision", "")
    back = {"said": "bad-decision", "about": proposal_id}
    rt = receiver.runtime
    record = approval.proposals(rt).record(proposal_id) if _ID.match(proposal_id) else None
    if record is None or record.get("incident_id") != incident_id:
        back["said"] = "unknown"
    elif decision in ("approve", "deny"):
        celery = receiver.messages.app
        queue = actions_queue(receiver.settings.queue)

        def send(name: str, args: list[Any]) -> None:
            celery.send_task(name, args=args, queue=queue)

        try:
            if decision == "approve":
                outcome = approval.approve(rt, proposal_id, approver, "incident page", send)
            else:
                outcome = approval.deny(rt, proposal_id, approver, "incident page")
        except RedisError:
            return _error_page(503, "Cannot record the decision right now; try again.")
        back["said"] = outcome.status
    query = access.query(incident_id, secret)
    target = f"{url_for('incident_page.incident_page', incident_id=incident_id)}?{query}"
    return redirect(f"{target}&{urlencode(back)}#actions", 303)


def read_incident(rt: Runtime, incident_id: str, now: datetime) -> dict[str, Any] | None:
    """Read everything the page shows of one incident; None when nothing is known of it."""
    record = incident_reads.record(rt.redis, incident_id)
    history = incident_reads.history(rt.redis, incident_id, view.MAX_TIMELINE)
    if not record and not history:
        return None
    run_id = str(record.get("run_id") or "")
    run = runs.state_record(rt.redis, run_id) if run_id and _ID.match(run_id) else None
    manifest: dict[str, Any] = {}
    bundle: str | None = None  # the run's bundle id, once the store holds some of it
    timeline_file: list[dict[str, Any]] = []
    if run_id and _ID.match(run_id):
        manifest = _stored_json(rt, run_id, "manifest.json") or {}
        timeline_file = _stored_json(rt, run_id, "timeline.json") or []
        bundle = run_id if manifest or _stored_names(rt, run_id) else None
    run = run or {}
    classification = manifest.get("classification") or run.get("classification") or {}
    planned = manifest.get("deadlines") or run.get("deadlines") or {}
    policy = rt.policy
    state = read_state(rt, incident_id, now, record=record, history=history, planned=planned)
    assert state is not None
    evidence = view.evidence(manifest)
    for item in evidence:
        item["log_views"] = [
            {"name": name, "lines": view.log_lines(_text(rt, bundle, name))}
            for name in item["logs"]
            if bundle is not None
        ]
    services = view.services(policy, run.get("affected") or run.get("services") or [], manifest)
    alerts = run.get("alerts") or []
    held = CorrelationLedger(rt.redis).read().find(run_id) if run_id else None
    started = planned.get("triggered_at")
    fired = [
        {
            "at": started,
            "what": lines.timeline("alert_fired", name=a.get("name"), priority=a.get("priority")),
            "by": "",
        }
        for a in alerts
        if started
    ]
    return {
        **state,
        "id": incident_id,
        "run_id": bundle or "",
        "title": record.get("title") or manifest.get("title") or run.get("title") or incident_id,
        "html_url": record.get("html_url") or "",
        "priority": view.priority(policy, str(classification.get("priority") or "")),
        "rule": classification.get("rule", ""),
        "reason": classification.get("reason", ""),
        "market": view.market(policy, now),
        "services": services,
        "services_measured": view.measured(
            manifest.get("created_at"), now, str(state.get("status") or "")
        ),
        "impact": view.impact(manifest, services),
        "evidence": evidence,
        "collecting": not manifest,
        "alerts": alerts,
        "correlated": view.correlated(finished(held, policy) if held is not None else None),
        "timeline": view.timeline(history, timeline_file, fired, now=now),
        "bundle_created_utc": (
            view.utc_text(datetime.fromisoformat(manifest["created_at"]))
            if manifest.get("created_at")
            else ""
        ),
    }


def read_state(
    rt: Runtime,
    incident_id: str,
    now: datetime,
    *,
    record: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    planned: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Read what changes while the page is open: status, deadlines, proposals (one poll)."""
    if record is None or history is None:
        record, history = incident_reads.record_and_history(
            rt.redis, incident_id, view.MAX_TIMELINE
        )
        if not record and not history:
            return None
    if planned is None:
        run_id = str(record.get("run_id") or "")
        run = runs.state_record(rt.redis, run_id) if run_id and _ID.match(run_id) else None
        planned = (run or {}).get("deadlines") or {}
    running = incident_reads.running_deadlines(rt.redis, incident_id)
    records = approval.proposals(rt).for_incident(incident_id)
    deadlines = view.deadlines(planned, running, record, now)
    status = str(record.get("status") or "triggered")
    return {
        "now": now.isoformat(),
        "status": status,
        "status_words": view.INCIDENT_STATUS.get(status, status),
        "acknowledged_by": record.get("acknowledged_by") or "",
        "acknowledged_utc": (
            view.utc_text(datetime.fromisoformat(record["acknowledged_at"]))
            if record.get("acknowledged_at")
            else ""
        ),
        "deadlines": deadlines,
        "next_deadline": view.next_deadline(deadlines),
        "proposals": view.proposals(rt.policy, records, now),
        "timeline_count": len(history),
    }


# ------------------------------------------------------------------------------ the list page


def _console_problem(settings: Settings) -> Response | None:
    """Return a 401/503 when the request does not carry the console token, else None."""
    expected = settings.console_token.reveal()
    if not expected:
        return problem(503, "the console is not enabled: RESPONDER_CONSOLE_TOKEN is not set")
    scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
    given = ""
    if scheme.lower() == "bearer":
        given = credentials.strip()
    elif scheme.lower() == "basic":
        try:
            # Any user name; the password is the token (a browser's own login prompt).
            given = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, ValueError):
            given = ""
    if given and hmac.compare_digest(given.encode(), expected.encode()):
        return None
    answer = problem(401, "the console needs RESPONDER_CONSOLE_TOKEN", "Authorization")
    answer.headers["WWW-Authenticate"] = 'Basic realm="eafix-responder console", charset="UTF-8"'
    return answer


@blueprint.get("/incidents")
def incident_list() -> Response:
    """List open incidents by priority with their next deadline, and recent deliveries."""
    receiver = current_receiver()
    if (refused := _console_problem(receiver.settings)) is not None:
        return refused
    page = max(1, min(request.args.get("page", 1, type=int) or 1, 10_000))
    now = datetime.now(UTC)
    try:
        listing = read_list(receiver.runtime, now, page)
    except RedisError:
        return _error_page(503, "The responder's Redis does not answer; try again shortly.")
    token, cookie = _csrf(receiver.settings.console_token.reveal(), "console")
    said = request.args.get("said", "")
    html = render_template(
        "incidents.html",
        listing=listing,
        csrf=token,
        said=SAID.get(said, ""),
        about=request.args.get("about", "")[:64],
        why=request.args.get("why", "")[:200],
    )
    response = Response(html, mimetype="text/html")
    _set_csrf_cookie(response, cookie)
    return response


@blueprint.post("/incidents/replay/<delivery_id>")
def replay(delivery_id: str) -> Response:
    """Replay one delivery as `responder replay DELIVERY_ID` does (CSRF-checked)."""
    receiver = current_receiver()
    if (refused := _console_problem(receiver.settings)) is not None:
        return refused
    if not _csrf_ok(receiver.settings.console_token.reveal(), "console"):
        return _error_page(403, "The form is stale or came from elsewhere: reload the page.")
    rt = receiver.runtime
    said, why = "not-replayed", ""
    try:
        delivery = rt.deliveries.get(delivery_id) if _ID.match(delivery_id) else None
        if delivery is None:
            why = "no such delivery (past retention?)"
        elif (why := replay_refusal(delivery)) is None:
            run = rt.deliveries.next_run(delivery_id)
            priority = (delivery.get("classification") or {}).get("priority")
            receiver.messages.app.send_task(
                RESPOND, args=[delivery_id, run], queue=queue_for(rt.settings.queue, priority)
            )
            rt.deliveries.update(delivery_id, pipeline="queued (replay)")
            said, why = "replayed", f"run {run}"
    except RedisError:
        return _error_page(503, "Cannot record the replay right now; try again.")
    back = urlencode({"said": said, "about": delivery_id, "why": why or ""})
    return redirect(f"{url_for('incident_page.incident_list')}?{back}#deliveries", 303)


def replay_refusal(delivery: dict[str, Any]) -> str | None:
    """Return why the page does not replay a delivery (the CLI can), or None when it does.

    The page replays what starts a response; a PagerDuty event that only updates the record
    is replayed from the CLI (`responder replay ID`), which applies it in-process.
    """
    try:
        payload = json.loads(delivery["raw_body"])
        if delivery.get("source") == "pagerduty":
            event = parse_pagerduty(payload)
            if event.incident is None or not event.starts_response:
                return f"{event.event_type} starts no response: use `responder replay`"
            return None
        if not parse_alertmanager(payload).firing:
            return "no firing alert (resolved alerts are not diagnosed)"
    except (PayloadError, ValueError, KeyError) as exc:
        return f"the stored body no longer parses: {exc}"
    return None


def read_list(rt: Runtime, now: datetime, page: int) -> dict[str, Any]:
    """Read a page of open incidents (latest clocks first, capped) and recent deliveries."""
    policy = rt.policy
    total = incident_reads.clocks_count(rt.redis)
    start = (page - 1) * PAGE_SIZE
    fields = ["status", "title", "sla_priority", "acknowledged_by", "run_id"]
    listed = incident_reads.latest_clocks(rt.redis, start, PAGE_SIZE, fields)
    secret = rt.settings.link_secret.reveal()
    expires = int((now + timedelta(days=rt.settings.link_ttl_days)).timestamp())
    incidents = []
    for incident_id, record, due in listed:
        if record["status"] == "resolved":
            continue
        soonest = min(due, key=lambda d: d["due"], default=None)
        next_due = None
        if soonest is not None:
            moment = datetime.fromisoformat(soonest["due"])
            seconds = (moment - now).total_seconds()
            next_due = {
                "label": view.DEADLINE_LABELS.get(soonest["kind"], soonest["kind"]),
                "due": moment.astimezone(UTC).isoformat(),
                "due_utc": view.utc_text(moment),
                "words": view.in_words(seconds),
                "overdue": seconds < 0,
            }
        ours = str(record["sla_priority"] or "")
        # No PagerDuty webhook yet (Alertmanager opened it): the clock's own title and state.
        title = record["title"] or next((d.get("title") for d in due if d.get("title")), "")
        status = str(record["status"] or "triggered")
        incidents.append(
            {
                "id": incident_id,
                "title": title or incident_id,
                "priority": view.priority(policy, ours),
                "status": view.INCIDENT_STATUS.get(status, status),
                "acknowledged_by": record["acknowledged_by"] or "",
                "next": next_due,
                "link": (
                    f"/incidents/{incident_id}?{incident_query(incident_id, expires, secret)}"
                    if secret
                    else ""
                ),
            }
        )
    incidents.sort(
        key=lambda i: (
            _PRIORITY_RANK.get(i["priority"]["ours"], 9),
            i["next"]["due"] if i["next"] else "9",
        )
    )
    return {
        "incidents": incidents,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "total_clocks": total,
        "deliveries": _recent_deliveries(rt, now),
        "links": bool(secret),
    }


def _recent_deliveries(rt: Runtime, now: datetime) -> list[dict[str, Any]]:
    """Return the latest deliveries' metadata and pipeline state (never their bodies)."""
    shown = []
    for delivery in incident_reads.recent_deliveries(rt.redis, RECENT_DELIVERIES):
        info = delivery["meta"]
        received = info.get("received_at", "")
        moment = datetime.fromisoformat(received) if received else None
        shown.append(
            {
                "id": delivery["id"],
                "source": info.get("source", "?"),
                "priority": (info.get("classification") or {}).get("priority", ""),
                "received_utc": view.utc_text(moment) if moment else "",
                "received_ago": view.ago((now - moment).total_seconds()) if moment else "",
                "pipeline": delivery["pipeline"] or "",
                "bundle_id": delivery["bundle_id"] or "",
                "incident_id": delivery["incident_id"] or "",
            }
        )
    return shown


# ---------------------------------------------------------------------------- small readers


def _stored_json(rt: Runtime, bundle_id: str, name: str) -> Any:
    """Return a JSON file of the bundle from the store; None when absent, unreadable or the
    store does not answer (the page shows what Redis knows)."""
    try:
        stored = rt.bundles.open(bundle_id, name)
        return None if stored is None else json.loads(b"".join(stored.chunks))
    except (BundleStoreError, ValueError) as exc:
        log.warning("bundle %s: %s not read: %s", bundle_id, name, exc)
        return None


def _stored_names(rt: Runtime, bundle_id: str) -> list[str]:
    """Return the bundle's files in the store; [] when the store does not answer."""
    try:
        return rt.bundles.names(bundle_id)
    except BundleStoreError as exc:
        log.warning("bundle %s: not listed: %s", bundle_id, exc)
        return []


def _text(rt: Runtime, bundle_id: str | None, name: str) -> str:
    """Return the tail of a bundle file (already redacted when written)."""
    if bundle_id is None:
        return ""
    try:
        tail = rt.bundles.tail(bundle_id, name, MAX_LOG_CHARS)
    except (BundleStoreError, ValueError):  # ValueError: a name that is no bundle file
        return ""
    return "" if tail is None else tail.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------- CSRF


def _csrf(secret: str, scope: str) -> tuple[str, str]:
    """Return the form token for this browser's CSRF cookie (a new cookie when it has none)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not re.fullmatch(r"[0-9a-f]{32}", cookie):
        cookie = secrets.token_hex(16)
    return _csrf_token(secret, scope, cookie), cookie


def _csrf_token(secret: str, scope: str, cookie: str) -> str:
    message = f"csrf:{scope}:{cookie}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _csrf_ok(secret: str, scope: str) -> bool:
    """Return True when the form's token matches this browser's CSRF cookie (double submit)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = request.form.get("csrf", "")
    if not cookie or not given or not secret:
        return False
    # As bytes: compare_digest raises TypeError on a str with non-ASCII characters.
    return hmac.compare_digest(_csrf_token(secret, scope, cookie).encode(), given.encode())


def _set_csrf_cookie(response: Response, cookie: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        cookie,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
        path=CONSOLE_COOKIE_PATH,
    )
