"""JSON error answers: every rejection names what was wrong and, where it can, the field."""

from __future__ import annotations

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


def problem(status: int, error: str, field: str | None = None, **extra: object) -> Response:
    """Return a JSON error response naming the problem and the field."""
    body: dict[str, object] = {"error": error}
    if field is not None:
        body["field"] = field
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer Flask's own errors (404, 405, 413, ...) as JSON too."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        messages = {
            413: "request body too large",
        }
        error = messages.get(exc.code or 500, exc.description or exc.name)
        field = "(body)" if exc.code == 413 else None
        return problem(exc.code or 500, error, field)
