"""A PagerDuty server for tests and the demo: REST API v2 and Events API v2 on one port.

Every request is validated against PagerDuty's published OpenAPI specs (the directory in
RESPONDER_PAGERDUTY_SPECS, default `../shared/pagerduty`; required when CI=true) or, outside
CI when that directory is missing, against this project's own schemas of the endpoints it
serves (`pagerduty_openapi/`). Responses are validated too, so bodies stay schema-shaped.
An invalid request gets PagerDuty's 400 error body and is recorded as rejected.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trustme
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
DEFAULT_SPEC_DIR = PROJECT.parent / "shared" / "pagerduty"
OWN_SPEC_DIR = HERE / "pagerduty_openapi"
SPEC_FILES = {"rest": "rest-api-v2.openapi.json", "events": "events-api-v2.openapi.json"}
OWN_SPEC_FILES = {"rest": "rest.yaml", "events": "events.yaml"}
ACCOUNT = "https://eafix.pagerduty.com"


def spec_directory(environ: dict[str, str] | None = None) -> tuple[Path, bool]:
    """Return the spec directory to use and whether it is PagerDuty's published one."""
    environ = dict(os.environ if environ is None else environ)
    configured = Path(environ.get("RESPONDER_PAGERDUTY_SPECS", str(DEFAULT_SPEC_DIR)))
    if all((configured / name).is_file() for name in SPEC_FILES.values()):
        return configured, True
    if environ.get("CI", "").lower() == "true":
        raise RuntimeError(
            f"PagerDuty's OpenAPI specs are required in CI and missing from {configured} "
            "(set RESPONDER_PAGERDUTY_SPECS)"
        )
    return OWN_SPEC_DIR, False


@dataclass
class Call:
    """One request the fake received, and what it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0
    error: str = ""
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    status: int
    remaining: int
    headers: dict[str, str] = field(default_factory=dict)
    method: str = ""  # only calls with this method, when set
    path_suffix: str = ""  # only calls whose path ends so, when set

    def applies(self, method: str, path: str) -> bool:
        return (not self.method or method == self.method) and path.endswith(self.path_suffix)


class FakePagerDuty:
    """The fake server's state and WSGI app; `start()` serves it on a loopback port."""

    def __init__(self, token: str = "test-token", spec_dir: Path | None = None) -> None:
        self.token = token
        if spec_dir is None:
            spec_dir, self.published_specs = spec_directory()
        else:
            self.published_specs = (spec_dir / SPEC_FILES["rest"]).is_file()
        self.spec_dir = spec_dir
        self.incidents: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.status_updates: dict[str, list[dict[str, Any]]] = {}
        self.responder_requests: dict[str, list[dict[str, Any]]] = {}
        self.merges: list[tuple[str, list[str]]] = []  # (target, sources), oldest first
        self.events: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self.priorities = [
            _priority(f"PRIO{n}", f"P{n + 1}") for n in range(5)
        ]  # PagerDuty's standard P1..P5
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: Any = None
        self.base_url = ""
        self.ca_file = ""
        self._openapi: dict[str, OpenAPI] = {}
        self._routes = Map(
            [
                Rule("/incidents", methods=["GET"], endpoint="list_incidents"),
                Rule("/incidents/<id>", methods=["GET"], endpoint="get_incident"),
                Rule("/incidents/<id>", methods=["PUT"], endpoint="update_incident"),
                Rule("/incidents/<id>/notes", methods=["GET"], endpoint="list_notes"),
                Rule("/incidents/<id>/notes", methods=["POST"], endpoint="create_note"),
                Rule("/incidents/<id>/status_updates", methods=["POST"], endpoint="status_update"),
                Rule("/incidents/<id>/merge", methods=["PUT"], endpoint="merge_incidents"),
                Rule(
                    "/incidents/<id>/responder_requests",
                    methods=["POST"],
                    endpoint="responder_request",
                ),
                Rule("/priorities", methods=["GET"], endpoint="list_priorities"),
                Rule("/v2/enqueue", methods=["POST"], endpoint="enqueue"),
                Rule("/_fake/fail", methods=["POST"], endpoint="control_fail"),
                Rule("/_fake/calls", methods=["GET"], endpoint="control_calls"),
            ]
        )

    # --- running -------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> FakePagerDuty:
        """Serve HTTPS on `host:port` (0 picks a free port) in a background thread.

        PagerDuty's client accepts only https:// base URLs, so the fake has its own test CA;
        clients trust it through `ca_file` (RESPONDER_PAGERDUTY_CA_FILE).
        """
        authority = trustme.CA()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        authority.issue_cert(host, "localhost").configure_cert(context)
        handle, ca_path = tempfile.mkstemp(prefix="fake-pagerduty-ca-", suffix=".pem")
        os.close(handle)
        authority.cert_pem.write_to_path(ca_path)
        self.ca_file = ca_path
        self._server = make_server(host, port, self, threaded=True, request_handler=QuietHandler)
        # TLS as werkzeug's ssl_context would set it up, but with the handshake in each
        # request's thread (on its first read), not inside accept() in the serving thread:
        # a client that connects and falls silent (its host cut off the network, in the
        # failover bench) held every later connection, and shutdown(), for ever.
        self._server.socket = context.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._server.ssl_context = context
        self.base_url = f"https://{host}:{self._server.server_port}"
        try:
            self._load_specs()
        except BaseException:  # a spec that cannot load must not leave the socket open
            self._server.server_close()
            raise
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _load_specs(self) -> None:
        files = SPEC_FILES if self.published_specs else OWN_SPEC_FILES
        servers = {"rest": self.base_url, "events": f"{self.base_url}/v2"}
        for kind, name in files.items():
            text = (self.spec_dir / name).read_text(encoding="utf-8")
            spec = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
            spec["servers"] = [{"url": servers[kind]}]
            writable_references(spec)
            self._openapi[kind] = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))

    # --- test controls -------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every incident, note, event, call and pending failure."""
        with self._lock:
            for store in (self.incidents, self.notes, self.status_updates, self.responder_requests):
                store.clear()
            self.events.clear()
            self.merges.clear()
            self.calls.clear()
            self._failures.clear()

    def fail_next(
        self,
        status: int,
        count: int = 1,
        headers: dict[str, str] | None = None,
        method: str = "",
        path_suffix: str = "",
    ) -> None:
        """Answer the next `count` calls (of `method`, path ending `path_suffix`) with `status`."""
        with self._lock:
            self._failures.append(_Failure(status, count, dict(headers or {}), method, path_suffix))

    def add_incident(self, incident_key: str, title: str = "EAFIX alert") -> str:
        """Create a triggered incident with `incident_key` and return its id."""
        with self._lock:
            return self._new_incident(incident_key, title)

    def assign(self, incident_id: str, *users: str) -> None:
        """Assign the incident to these PagerDuty users (ids), as its `assignments` show."""
        self.incidents[incident_id]["assignments"] = [
            {"at": _now(), "assignee": _reference(user, "user_reference", user, "users")}
            for user in users
        ]

    def notes_for(self, incident_id: str) -> list[dict[str, Any]]:
        """Return the notes posted to an incident, oldest first."""
        with self._lock:
            return list(self.notes.get(incident_id, []))

    def rejected(self) -> list[Call]:
        """Return the calls that failed validation against the spec."""
        return [c for c in self.calls if c.error]

    def incident_id_for_key(self, incident_key: str) -> str | None:
        """Return the id of the incident with `incident_key`, if any."""
        for incident in self.incidents.values():
            if incident["incident_key"] == incident_key:
                return incident["id"]
        return None

    # --- WSGI --------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        adapter = self._routes.bind_to_environ(request.environ)
        body: Any = None
        if request.data:
            try:
                body = json.loads(request.data)
            except ValueError:
                body = request.data.decode("utf-8", "replace")
        call = Call(
            method=request.method,
            path=request.path,
            query={k: request.args.getlist(k) for k in request.args},
            headers=dict(request.headers),
            body=body,
        )
        try:
            endpoint, values = adapter.match()
        except Exception:  # werkzeug's NotFound / MethodNotAllowed
            return self._finish(call, _error(404, "Not Found", 2100))
        if endpoint.startswith("control_"):
            return getattr(self, f"_{endpoint}")(request)
        kind = "events" if endpoint == "enqueue" else "rest"
        if kind == "rest" and request.headers.get("Authorization") != f"Token token={self.token}":
            return self._finish(call, _error(401, "Unauthorized", 2006))
        with self._lock:
            injected = self._take_failure(request.method, request.path)
        if injected is not None:
            return self._finish(call, injected)
        openapi_request = WerkzeugOpenAPIRequest(request)
        try:
            self._openapi[kind].validate_request(openapi_request)
        except Exception as exc:  # openapi-core raises one of many validation errors
            call.error = f"{type(exc).__name__}: {exc}"
            return self._finish(call, _error(400, "Invalid Input Provided", 2001, [call.error]))
        with self._lock:
            response = getattr(self, f"_{endpoint}")(body, **values, query=request.args)
            # Recorded with what the call changed (a note, an incident), in one step: a test
            # that sees the note must see its call too.
            call.status = response.status_code
            self.calls.append(call)
        try:
            self._openapi[kind].validate_response(
                openapi_request, WerkzeugOpenAPIResponse(response)
            )
        except Exception as exc:  # a bug in the fake itself: make it loud in `rejected()`
            call.error = f"fake answered off-spec: {type(exc).__name__}: {exc}"
            call.status = 500
            return _error(500, "fake answered off-spec", 2000, [call.error])
        return response

    def _finish(self, call: Call, response: Response) -> Response:
        call.status = response.status_code
        with self._lock:
            self.calls.append(call)
        return response

    def _take_failure(self, method: str, path: str) -> Response | None:
        self._failures = [f for f in self._failures if f.remaining > 0]
        failure = next((f for f in self._failures if f.applies(method, path)), None)
        if failure is None:
            return None
        failure.remaining -= 1
        if failure.status == 429:
            response = _error(429, "Rate Limit Exceeded", 2020)
            response.headers.update(
                {"ratelimit-limit": "960", "ratelimit-remaining": "0", "ratelimit-reset": "1"}
            )
        else:
            response = _error(failure.status, "Internal Server Error", 2000 + failure.status)
        response.headers.update(failure.headers)
        return response

    # --- REST API v2 ---------------------------------------------------------------------

    def _list_incidents(self, _body: Any, query: Any) -> Response:
        key = query.get("incident_key")
        found = [i for i in self.incidents.values() if key is None or i["incident_key"] == key]
        return _json({"incidents": found, **_page(len(found))})

    def _get_incident(self, _body: Any, id: str, query: Any) -> Response:
        if id not in self.incidents:
            return _error(404, "Not Found", 2100)
        return _json({"incident": self.incidents[id]})

    def _update_incident(self, body: Any, id: str, query: Any) -> Response:
        if id not in self.incidents:
            return _error(404, "Not Found", 2100)
        incident = self.incidents[id]
        changes = body["incident"]
        for name in ("status", "title", "urgency"):
            if name in changes:
                incident[name] = changes[name]
        if "escalation_level" in changes:
            incident["escalation_level"] = changes["escalation_level"]
        if "priority" in changes:
            wanted = changes["priority"]
            wanted_id = wanted.get("id") if isinstance(wanted, dict) else None
            chosen = [
                p
                for p in self.priorities
                if (p["id"] == wanted_id if wanted_id else p["name"] == wanted)
            ]
            if not chosen:
                return _error(400, "Invalid Input Provided", 2001, ["unknown priority"])
            incident["priority"] = _reference(
                chosen[0]["id"], "priority_reference", chosen[0]["name"], "priorities"
            )
        incident["updated_at"] = _now()
        return _json({"incident": incident})

    def _merge_incidents(self, body: Any, id: str, query: Any) -> Response:
        """Merge the sources into `id` as PagerDuty does: the target must be open; each source
        is resolved, and `merges` records (target, sources)."""
        target = self.incidents.get(id)
        if target is None:
            return _error(404, "Not Found", 2100)
        if target["status"] == "resolved":
            return _error(400, "Invalid Input Provided", 2001, ["the target incident is resolved"])
        sources = [s["id"] for s in body["source_incidents"]]
        if unknown := [s for s in sources if s not in self.incidents or s == id]:
            return _error(400, "Invalid Input Provided", 2001, [f"cannot merge {unknown}"])
        for source in sources:
            self.incidents[source]["status"] = "resolved"
            self.incidents[source]["updated_at"] = _now()
        self.merges.append((id, sources))
        return _json(
            {"incident": _reference(id, "incident_reference", target["title"], "incidents")}
        )

    def _list_notes(self, _body: Any, id: str, query: Any) -> Response:
        return _json({"notes": self.notes.get(id, [])})

    def _create_note(self, body: Any, id: str, query: Any) -> Response:
        if id not in self.incidents:
            return _error(404, "Not Found", 2100)
        note = {
            "id": f"NOTE{next(self._ids)}",
            "user": _reference("PBOT01", "bot_user_reference", "EAFIX responder", "users"),
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": body["note"]["content"],
            "created_at": _now(),
        }
        self.notes.setdefault(id, []).append(note)
        return _json({"note": note})

    def _status_update(self, body: Any, id: str, query: Any) -> Response:
        if id not in self.incidents:
            return _error(404, "Not Found", 2100)
        update = {
            "id": f"STATUS{next(self._ids)}",
            "message": body["message"],
            "sender": _reference("PBOT01", "user_reference", "EAFIX responder", "users"),
            "created_at": _now(),
        }
        self.status_updates.setdefault(id, []).append(update)
        return _json({"status_update": update})

    def _responder_request(self, body: Any, id: str, query: Any) -> Response:
        if id not in self.incidents:
            return _error(404, "Not Found", 2100)
        request = {
            "incident": _reference(id, "incident_reference", id, "incidents"),
            "requester": _reference(body["requester_id"], "user_reference", "requester", "users"),
            "requested_at": _now(),
            "message": body["message"],
            "responder_request_targets": body["responder_request_targets"],
        }
        self.responder_requests.setdefault(id, []).append(request)
        return _json({"responder_request": request})

    def _list_priorities(self, _body: Any, query: Any) -> Response:
        return _json({"priorities": self.priorities, **_page(len(self.priorities))})

    # --- Events API v2 -------------------------------------------------------------------

    def _enqueue(self, body: Any, query: Any) -> Response:
        self.events.append(body)
        dedup_key = body.get("dedup_key") or hashlib.sha256(json.dumps(body).encode()).hexdigest()
        action = body["event_action"]
        existing = self.incident_id_for_key(dedup_key)
        if action == "trigger" and (
            existing is None or self.incidents[existing]["status"] == "resolved"
        ):
            self._new_incident(dedup_key, body.get("payload", {}).get("summary", "event"))
        elif existing is not None and action in ("acknowledge", "resolve"):
            self.incidents[existing]["status"] = action + "d"
        return Response(
            json.dumps({"status": "success", "message": "Event processed", "dedup_key": dedup_key}),
            status=202,
            content_type="application/json",
        )

    # --- control endpoints (for the demo and other processes) ----------------------------

    def _control_fail(self, request: Request) -> Response:
        spec = request.get_json()
        self.fail_next(int(spec["status"]), int(spec.get("count", 1)), spec.get("headers"))
        return _json({"ok": True})

    def _control_calls(self, request: Request) -> Response:
        with self._lock:
            calls = [c.__dict__ for c in self.calls]
        return _json({"calls": calls, "notes": self.notes, "incidents": self.incidents})

    def _new_incident(self, incident_key: str, title: str) -> str:
        number = next(self._ids)
        incident_id = f"PINC{number:04d}"
        self.incidents[incident_id] = {
            **_reference(incident_id, "incident", title, "incidents"),
            "incident_number": number,
            "title": title,
            "created_at": _now(),
            "updated_at": _now(),
            "status": "triggered",
            "incident_key": incident_key,
            "service": _reference("PSVC001", "service_reference", "EAFIX", "services"),
            "assignments": [],
            "urgency": "high",
            "escalation_policy": _reference(
                "PEP0001", "escalation_policy_reference", "EAFIX on-call", "escalation_policies"
            ),
        }
        return incident_id


class QuietHandler(WSGIRequestHandler):
    """Serve without an access-log line per request; `calls` records them instead."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def writable_references(spec: dict[str, Any]) -> None:
    """Let requests name a reference's `id` and `type`, as PagerDuty's API takes them.

    The published spec marks both readOnly on the base of every reference (`Tag`'s first
    part), so a strict validator refuses any request that refers to an object, the spec's
    own request example for `PUT /incidents/{id}/merge` included
    (`{"source_incidents": [{"id": "P8JOGX7", "type": "incident_reference"}]}`). Only those
    two flags are lifted; everything else is validated as published.
    """
    base = spec.get("components", {}).get("schemas", {}).get("Tag", {}).get("allOf", [{}])[0]
    for name in ("id", "type"):
        base.get("properties", {}).get(name, {}).pop("readOnly", None)


def _reference(id: str, type_: str, summary: str, collection: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": type_,
        "summary": summary,
        "self": f"https://api.pagerduty.com/{collection}/{id}",
        "html_url": f"{ACCOUNT}/{collection}/{id}",
    }


def _priority(id: str, name: str) -> dict[str, Any]:
    return {**_reference(id, "priority", name, "priorities"), "name": name, "description": name}


def _page(total: int) -> dict[str, Any]:
    return {"limit": 100, "offset": 0, "more": False, "total": total}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str, code: int, errors: list[str] | None = None) -> Response:
    body = {"error": {"message": message, "code": code, "errors": errors or []}}
    return _json(body, status)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake PagerDuty server.")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--token", default="test-token")
    args = parser.parse_args()
    fake = FakePagerDuty(token=args.token).start(port=args.port)
    print(f"fake PagerDuty on {fake.base_url} (specs: {fake.spec_dir})", flush=True)
    print(f"CA file: {fake.ca_file}", flush=True)
    while True:
        time.sleep(3600)
