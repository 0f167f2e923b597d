"""A Slack Web API server for tests: the methods the responder calls, over HTTPS.

Every call's method, HTTP verb, parameter names and required parameters are checked against
Slack's published OpenAPI spec (RESPONDER_SLACK_SPECS, default `../shared/slack`; required
when CI=true) or, outside CI when that file is missing, against this project's own copy of
the part it serves (`slack_openapi/web-api.json`). A call the spec does not allow is answered
`invalid_arguments` and recorded as rejected. The fake keeps channels, messages and threads
(ts, thread_ts, replies, updates), and can answer the next calls with 429 (`Retry-After`) or
500, or post and then lose the answer (500 after the message is stored).
"""

from __future__ import annotations

import itertools
import json
import os
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.support import QuietHandler

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
SPEC_NAME = "web-api.openapi-v2.json"
DEFAULT_SPEC_DIR = PROJECT.parent / "shared" / "slack"
OWN_SPEC = HERE / "slack_openapi" / "web-api.json"
TOKEN = "xoxb-test-token"
CHANNELS = {"#eafix-incidents": "C0INCIDENTS", "#trading-operations": "C0TRADINGOPS",
            "#eafix-dev": "C0EAFIXDEV"}  # fmt: skip


def spec_file(environ: dict[str, str] | None = None) -> tuple[Path, bool]:
    """Return the spec to validate against and whether it is Slack's published one."""
    environ = dict(os.environ if environ is None else environ)
    configured = Path(environ.get("RESPONDER_SLACK_SPECS", str(DEFAULT_SPEC_DIR))) / SPEC_NAME
    if configured.is_file():
        return configured, True
    if environ.get("CI", "").lower() == "true":
        raise RuntimeError(
            f"Slack's OpenAPI spec is required in CI and missing at {configured} "
            "(set RESPONDER_SLACK_SPECS)"
        )
    return OWN_SPEC, False


@dataclass
class Call:
    """One request the fake received, and what it answered."""

    method: str
    verb: str
    params: dict[str, Any]
    status: int = 200
    error: str = ""
    rejected: str = ""  # why the spec refused it ("" when it did not)
    at: float = field(default_factory=time.monotonic)


@dataclass
class Message:
    """One message in a channel: a parent (thread_ts "" or its own ts) or a reply."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str = ""
    updates: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Failure:
    status: int
    remaining: int
    method: str = ""
    retry_after: int = 0
    after_applying: bool = False  # store the post, then answer with the failure


class FakeSlack:
    """The fake Slack's state and WSGI app; `start()` serves it on a loopback HTTPS port."""

    def __init__(self, token: str = TOKEN, spec: Path | None = None) -> None:
        self.token = token
        if spec is None:
            spec, self.published_spec = spec_file()
        else:
            self.published_spec = spec.name == SPEC_NAME
        self.spec_path = spec
        self.operations = _operations(json.loads(spec.read_text(encoding="utf-8")))
        self.messages: list[Message] = []
        self.ephemeral: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self._failures: list[_Failure] = []
        self._hold: dict[str, float] = {}  # method -> seconds to wait after applying
        self._lock = threading.Lock()
        self._clock = itertools.count(1)
        self._server: Any = None
        self.base_url = ""
        self.ca_file = ""

    # --- running -------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeSlack:
        """Serve HTTPS on `host:port` (0 picks a free port) with a test CA of its own."""
        authority = trustme.CA()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        authority.issue_cert(host, "localhost").configure_cert(context)
        handle, ca_path = tempfile.mkstemp(prefix="fake-slack-ca-", suffix=".pem")
        os.close(handle)
        authority.cert_pem.write_to_path(ca_path)
        self.ca_file = ca_path
        self._server = make_server(
            host, port, self, threaded=True, ssl_context=context, request_handler=QuietHandler
        )
        self.base_url = f"https://{host}:{self._server.server_port}/api/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- test controls -------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every message, call and pending failure."""
        with self._lock:
            self.messages.clear()
            self.ephemeral.clear()
            self.calls.clear()
            self._failures.clear()
            self._hold.clear()

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        method: str = "",
        retry_after: int = 0,
        after_applying: bool = False,
    ) -> None:
        """Answer the next `count` calls (of `method`, when set) with `status`.

        429 carries `Retry-After: retry_after`; `after_applying` stores a post first (the
        answer is lost, as when a worker dies or the network drops it after Slack posted).
        """
        with self._lock:
            self._failures.append(
                _Failure(status, count, method, retry_after, after_applying)
            )  # fmt: skip

    def hold(self, method: str, seconds: float) -> None:
        """Apply the next call of `method`, then wait `seconds` before answering it."""
        with self._lock:
            self._hold[method] = seconds

    def rejected(self) -> list[Call]:
        """Return the calls the spec refused."""
        with self._lock:
            return [c for c in self.calls if c.rejected]

    def parents(self, channel: str, marker: str = "") -> list[Message]:
        """Return the top-level messages of a channel (name or id), those with `marker` only."""
        channel_id = CHANNELS.get(channel, channel)
        with self._lock:
            return [
                m
                for m in self.messages
                if m.channel == channel_id and not m.thread_ts and marker in m.text
            ]

    def replies(self, parent: Message) -> list[Message]:
        """Return the replies in a parent's thread, oldest first."""
        with self._lock:
            return [
                m
                for m in self.messages
                if m.channel == parent.channel and m.thread_ts == parent.ts and m is not parent
            ]

    # --- serving -------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self._handle(request)(environ, start_response)

    def _handle(self, request: Request) -> Response:
        method = request.path.removeprefix("/api/")
        params = self._params(request)
        call = Call(method, request.method, params)
        with self._lock:
            self.calls.append(call)
        rejected = self._check(method, request, params)
        if rejected:
            call.rejected = rejected
            return self._answer(call, {"ok": False, "error": "invalid_arguments", "why": rejected})
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            return self._answer(call, {"ok": False, "error": "invalid_auth"})
        failure = self._take_failure(method)
        if failure is not None and not failure.after_applying:
            return self._fail(call, failure)
        body = getattr(self, "_" + method.replace(".", "_"))(params)
        if failure is not None:
            return self._fail(call, failure)
        if (wait := self._hold.pop(method, 0.0)) > 0:
            time.sleep(wait)
        return self._answer(call, body)

    def _params(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            return dict(request.args.items())
        if request.is_json:
            return dict(request.get_json())
        return dict(request.form.items())

    def _check(self, method: str, request: Request, params: dict[str, Any]) -> str:
        """Return why the spec refuses the call ("" when it allows it)."""
        operation = self.operations.get((method, request.method.lower()))
        if operation is None and request.method == "POST":
            # Slack takes every method as a POST of form fields too (slack_sdk posts them
            # all); the spec lists the read methods under GET only.
            operation = self.operations.get((method, "get"))
        if operation is None:
            return f"{request.method} {method} is not in the spec"
        known = {p["name"]: p for p in operation}
        unknown = sorted(set(params) - set(known))
        if unknown:
            return f"parameters not in the spec for {method}: {', '.join(unknown)}"
        for name, parameter in known.items():
            if not parameter.get("required"):
                continue
            if name == "token":  # slack_sdk sends it as a bearer token
                if not request.headers.get("Authorization", "").startswith("Bearer "):
                    return "no token"
            elif name not in params:
                return f"required parameter {name} missing from {method}"
        return ""

    def _take_failure(self, method: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.remaining > 0 and (not failure.method or failure.method == method):
                    failure.remaining -= 1
                    return failure
        return None

    def _fail(self, call: Call, failure: _Failure) -> Response:
        call.status = failure.status
        if failure.status == 429:
            call.error = "ratelimited"
            body = json.dumps({"ok": False, "error": "ratelimited"})
            headers = {"Retry-After": str(failure.retry_after)}
            return Response(body, 429, headers=headers, mimetype="application/json")
        call.error = "internal_error"
        return Response(json.dumps({"ok": False, "error": "internal_error"}), failure.status,
                        mimetype="application/json")  # fmt: skip

    def _answer(self, call: Call, body: dict[str, Any]) -> Response:
        call.error = "" if body.get("ok") else str(body.get("error"))
        return Response(json.dumps(body), 200, mimetype="application/json")

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._clock):06d}"

    def _channel(self, name: str) -> str | None:
        if name in CHANNELS.values():
            return name
        return CHANNELS.get(name)

    # --- the methods ---------------------------------------------------------------------

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(params["channel"]))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        thread_ts = str(params.get("thread_ts") or "")
        with self._lock:
            if thread_ts and not any(
                m.channel == channel and m.ts == thread_ts and not m.thread_ts
                for m in self.messages
            ):
                return {"ok": False, "error": "thread_not_found"}
            message = Message(
                channel, self._ts(), str(params.get("text", "")), list(params.get("blocks") or []),
                thread_ts,
            )  # fmt: skip
            self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": _shown(message)}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params["channel"]), str(params["ts"])
        with self._lock:
            found = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
            if found is None:
                return {"ok": False, "error": "message_not_found"}
            found.updates.append({"text": found.text, "blocks": found.blocks})
            found.text = str(params.get("text", found.text))
            found.blocks = list(params.get("blocks") or found.blocks)
        return {"ok": True, "channel": channel, "ts": ts, "text": found.text}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(params["channel"]))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        with self._lock:
            self.ephemeral.append({**params, "channel": channel})
        return {"ok": True, "message_ts": self._ts()}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if channel not in CHANNELS.values():  # like Slack: the id, never a #name
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(params.get("oldest") or 0)
        limit = int(params.get("limit") or 100)
        with self._lock:
            found = [
                m for m in self.messages
                if m.channel == channel and not m.thread_ts and float(m.ts) > oldest
            ]  # fmt: skip
        found.reverse()  # newest first, as Slack answers
        return {"ok": True, "messages": [_shown(m) for m in found[:limit]], "has_more": False}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        oldest = float(params.get("oldest") or 0)
        with self._lock:
            thread = [
                m for m in self.messages
                if m.channel == channel and (m.ts == ts or m.thread_ts == ts)
            ]  # fmt: skip
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        shown = [m for m in thread if m.ts == ts or float(m.ts) > oldest]
        return {"ok": True, "messages": [_shown(m) for m in shown], "has_more": False}


def _shown(message: Message) -> dict[str, Any]:
    shown = {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks}
    if message.thread_ts:
        shown["thread_ts"] = message.thread_ts
    return shown


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Return each (method, verb)'s parameters from a Slack OpenAPI 2.0 spec."""
    return {
        (path.lstrip("/"), verb): list(operation.get("parameters", []))
        for path, verbs in spec["paths"].items()
        for verb, operation in verbs.items()
    }
