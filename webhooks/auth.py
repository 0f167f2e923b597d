"""Authenticate Alertmanager's posts: bearer token or basic auth, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping

from flask import Response, request

from tasks.settings import Settings
from webhooks.errors import problem

# Headers a proxy adds: a loopback peer that sends one relays a client from elsewhere.
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def proxy_header(environ: Mapping[str, object]) -> str:
    """Return the first proxy header a WSGI request carries ("" when none)."""
    for name in PROXY_HEADERS:
        if environ.get("HTTP_" + name.upper().replace("-", "_")) is not None:
            return name
    return ""


def reject_unauthenticated(settings: Settings) -> Response | None:
    """Return a 401 response when the current Flask request is not authenticated, else None."""
    forwarded = proxy_header(request.environ)
    return unauthenticated(
        request.headers.get("Authorization"), request.remote_addr, settings, forwarded
    )


def unauthenticated(
    authorization: str | None, remote_addr: str | None, settings: Settings, forwarded: str = ""
) -> Response | None:
    """Return a 401 response with a challenge when the credentials do not pass, else None."""
    why = alertmanager_auth_problem(authorization, remote_addr, settings, forwarded)
    if why is None:
        return None
    response = problem(401, why, "Authorization")
    response.headers["WWW-Authenticate"] = challenge(settings)
    return response


def alertmanager_auth_problem(
    authorization: str | None, remote_addr: str | None, settings: Settings, forwarded: str = ""
) -> str | None:
    """Return why a request is not authenticated, or None when it is.

    `forwarded`: the proxy header the request carries; such a request is never trusted as
    loopback, whatever its peer address (a local proxy relays clients from anywhere).
    """
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return _check_bearer(credentials.strip(), settings)
        if scheme == "basic":
            return _check_basic(credentials.strip(), settings)
        return f"unsupported Authorization scheme {scheme!r}; use Bearer or Basic"
    if settings.allow_unauthenticated and _is_loopback(remote_addr):
        if not forwarded:
            return None
        return (
            f"authentication required: the request carries {forwarded}, so a proxy forwarded "
            "it from elsewhere; RESPONDER_ALLOW_UNAUTHENTICATED trusts only direct loopback "
            "posts: send the bearer token or basic auth"
        )
    if not settings.alertmanager_token and not settings.alertmanager_basic_auth:
        return (
            "authentication required, and no credentials are configured: set "
            "RESPONDER_ALERTMANAGER_TOKEN (or RESPONDER_ALLOW_UNAUTHENTICATED=1 for a local run)"
        )
    return "missing Authorization header"


def challenge(settings: Settings) -> str:
    """Return the WWW-Authenticate value naming the schemes this receiver accepts."""
    schemes = ['Bearer realm="eafix-responder"']
    if settings.alertmanager_basic_auth:
        schemes.append('Basic realm="eafix-responder"')
    return ", ".join(schemes)


def _check_bearer(token: str, settings: Settings) -> str | None:
    expected = settings.alertmanager_token
    if not expected:
        return "bearer tokens are not accepted: RESPONDER_ALERTMANAGER_TOKEN is not set"
    if hmac.compare_digest(token.encode(), expected.reveal().encode()):
        return None
    return "invalid bearer token"


def _check_basic(credentials: str, settings: Settings) -> str | None:
    expected = settings.alertmanager_basic_auth
    if not expected:
        return "basic auth is not accepted: RESPONDER_ALERTMANAGER_BASIC_AUTH is not set"
    try:
        given = base64.b64decode(credentials, validate=True)
    except (binascii.Error, ValueError):
        return "malformed basic credentials"
    if hmac.compare_digest(given, expected.reveal().encode()):
        return None
    return "invalid basic credentials"


def _is_loopback(remote_addr: str | None) -> bool:
    try:
        return remote_addr is not None and ipaddress.ip_address(remote_addr).is_loopback
    except ValueError:
        return False


_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def pagerduty_signatures(header: str | None) -> list[str] | str:
    """Return the well-formed v1 signatures of X-PagerDuty-Signature, or why there are none.

    Needs no body, so a request without a usable signature is refused before its body is read.
    """
    if not header or not header.strip():
        return "missing X-PagerDuty-Signature header"
    entries = [part.strip() for part in header.split(",")]
    signatures = [e[3:].lower() for e in entries if e.startswith("v1=")]
    if not signatures:
        return "no v1= signature in X-PagerDuty-Signature"
    well_formed = [s for s in signatures if _HEX_SHA256.fullmatch(s)]
    if not well_formed:
        return "malformed v1 signature: expected 64 hex digits"
    return well_formed


def pagerduty_signature_problem(
    raw_body: bytes, header: str | None, secrets: list[str]
) -> tuple[int, str] | None:
    """Check PagerDuty's v1 signatures of the raw body; return (status, why) or None if valid.

    Any v1 entry matching any configured secret passes, so a rotation with two secrets (and
    PagerDuty sending two signatures) rejects nothing. 400 for a missing or malformed header,
    403 for a signature that matches no secret.
    """
    well_formed = pagerduty_signatures(header)
    if isinstance(well_formed, str):
        return 400, well_formed
    for secret in secrets:
        expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, candidate) for candidate in well_formed):
            return None
    return 403, "signature matches no configured secret"
