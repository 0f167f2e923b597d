"""Per-person signed approval links: an identity the incident page can verify.

A read link (`tasks.evidence.links`) is a capability to read an incident's page and says
nothing of who holds it: it is posted in PagerDuty notes and Slack. An approval link names
one person (their e-mail) and is sent to that person alone: it signs the purpose "approve",
the incident, the identity and an expiry with a key derived from RESPONDER_LINK_SECRET for
this purpose only. So a read link never opens the approve form, an approval link of one
incident opens no other, and changing the identity (or the expiry) breaks the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from urllib.parse import urlencode

PURPOSE = "approve"
# The query parameters an approval link carries (a read link carries `expires` and `sig`).
IDENTITY, UNTIL, SIGNATURE = "as", "until", "asig"
_KEY_LABEL = b"eafix-responder/incident-approval-link/v1"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")


def approval_key(secret: str) -> bytes:
    """Return the approval links' key: derived from the link secret, never the read-link key."""
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def identity_of(email: str) -> str:
    """Return the identity a link signs for `email` (trimmed, lower-case); ValueError if none."""
    identity = email.strip().lower()
    if not _EMAIL.match(identity):
        raise ValueError("expected an e-mail address such as dana@eafix.example")
    return identity


def approval_signature(incident_id: str, identity: str, expires: int, secret: str) -> str:
    """Return the hex HMAC-SHA256 over (purpose, incident, identity, expiry) with the link key."""
    message = "\0".join((PURPOSE, incident_id, identity, str(expires))).encode()
    return hmac.new(approval_key(secret), message, hashlib.sha256).hexdigest()


def approval_query(incident_id: str, identity: str, expires: int, secret: str) -> str:
    """Return the query string of `identity`'s approval link to an incident's page."""
    signature = approval_signature(incident_id, identity, expires, secret)
    return urlencode({IDENTITY: identity, UNTIL: expires, SIGNATURE: signature})


def approval_link(public_url: str, incident_id: str, email: str, expires: int, secret: str) -> str:
    """Return the personal approval link of `email` to an incident's page."""
    query = approval_query(incident_id, identity_of(email), expires, secret)
    return f"{public_url.rstrip('/')}/incidents/{incident_id}?{query}"


def approval_problem(
    incident_id: str,
    identity: str | None,
    expires: str | None,
    signature: str | None,
    secret: str,
    now: datetime,
) -> str | None:
    """Return why an approval link does not sign someone in, or None when it does.

    The answer says "invalid" or "expired", never more: a person who holds a spoiled link
    learns nothing about whose links would work.
    """
    if not secret:
        return "approval links are not enabled (RESPONDER_LINK_SECRET is not set)"
    if not identity or not expires or not signature:
        return "the approval link is invalid"
    try:
        deadline = int(expires)
    except ValueError:
        return "the approval link is invalid"
    expected = approval_signature(incident_id, identity, deadline, secret)
    # As bytes: compare_digest raises TypeError on a str with non-ASCII characters.
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        return "the approval link is invalid"
    if now.timestamp() > deadline:
        return "the approval link has expired"
    return None
