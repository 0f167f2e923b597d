"""The headers every page the receiver serves to a browser carries (incident pages, bundles)."""

from __future__ import annotations

from flask import Response


def protect(response: Response, content_security_policy: str) -> Response:
    """Add the page's CSP, nosniff, no framing, no referrer and no caching to `response`."""
    response.headers["Content-Security-Policy"] = content_security_policy
    # A collector's file is served as its extension says, never sniffed into HTML or script.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the URL carries the signature
    response.headers["X-Frame-Options"] = "DENY"  # frame-ancestors for older browsers
    response.headers.setdefault("Cache-Control", "private, no-store")
    return response
