"""JSON error answers: every rejection names what was wrong and, where it can, the field."""

from __future__ import annotations

import json

from flask import Flask, Response
from werkzeug.exceptions import HTTPException


def problem(status: int, error: str, field: str | None = None, **extra: object) -> Response:
    """Return a JSON error response naming the problem and the field."""
    body: dict[str, object] = {"error": error}
    if field is not None:
        body["field"] = field
    body.update(extra)
    # Built without Flask's app context: the Alertmanager endpoint answers outside Flask.
    return Response(json.dumps(body), status, mimetype="application/json")


def register_error_handlers(app: Flask) -> None:
    """Answer Flask's own errors (404, 405, 413, ...) as JSON too."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        messages = {
            413: "request body too large",
        }
        error = messages.get(exc.code or 500, exc.description or exc.name)
        field = "(body)" if exc.code in (408, 413) else None  # 408: a body too slow to arrive
        return problem(exc.code or 500, error, field)
