"""HMAC-signed, expiring links to evidence bundles, checked by the receiver."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from tasks.gateways.bundle_store import bundle_path
from tasks.settings import Settings, parse_bundle_store


def signature(bundle_id: str, expires: int, secret: str) -> str:
    """Return the hex HMAC-SHA256 that grants access to `bundle_id` until `expires` (Unix time)."""
    message = f"{bundle_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_query(bundle_id: str, expires: int, secret: str) -> str:
    """Return the query string a bundle link carries."""
    return urlencode({"expires": expires, "sig": signature(bundle_id, expires, secret)})


def bundle_link(public_url: str, bundle_id: str, expires: int, secret: str) -> str:
    """Return the signed link to a bundle's HTML view."""
    return (
        f"{public_url.rstrip('/')}/bundles/{bundle_id}/?{signed_query(bundle_id, expires, secret)}"
    )


def link_problem(
    bundle_id: str, expires: str | None, sig: str | None, secret: str, now: datetime
) -> str | None:
    """Return why a link does not grant access, or None when it does."""
    if not secret:
        return "bundle links are not enabled (RESPONDER_LINK_SECRET is not set)"
    if not expires or not sig:
        return "the link carries no signature"
    try:
        deadline = int(expires)
    except ValueError:
        return "the link's expiry is not a number"
    # As bytes: compare_digest raises TypeError on a str with non-ASCII characters.
    if not hmac.compare_digest(
        signature(bundle_id, deadline, secret).encode(), sig.lower().encode()
    ):
        return "the link's signature does not match"
    if now.timestamp() > deadline:
        return "the link has expired"
    return None


def incident_subject(incident_id: str) -> str:
    """Return what an incident page link signs: not a bundle id (those never hold a slash)."""
    return f"incident/{incident_id}"


def incident_query(incident_id: str, expires: int, secret: str) -> str:
    """Return the query string an incident page link carries."""
    return signed_query(incident_subject(incident_id), expires, secret)


def incident_link(public_url: str, incident_id: str, expires: int, secret: str) -> str:
    """Return the signed link to an incident's page."""
    query = incident_query(incident_id, expires, secret)
    return f"{public_url.rstrip('/')}/incidents/{incident_id}?{query}"


def bundle_location(
    settings: Settings, bundle_id: str, now: datetime, incident_id: str | None = None
) -> str:
    """Return the signed link to the incident's page (which shows the bundle), to the bundle
    when no incident is known, or the bundle's path when links are not configured."""
    secret = settings.link_secret.reveal()
    if not secret and settings.bundle_store:
        bucket, prefix = parse_bundle_store(settings.bundle_store)
        folder = bundle_path(Path(), bundle_id).name
        return f"s3://{'/'.join(p for p in (bucket, prefix, folder) if p)}/ (bundle {bundle_id})"
    if not secret:
        folder = bundle_path(settings.bundle_dir, bundle_id).resolve()
        return f"{folder} on the responder host (bundle {bundle_id})"
    expires = int((now + timedelta(days=settings.link_ttl_days)).timestamp())
    if incident_id:
        return incident_link(settings.public_url, incident_id, expires, secret)
    return bundle_link(settings.public_url, bundle_id, expires, secret)
