"""Remove secrets from text before it is stored in a bundle or sent in a note."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

MASK = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> keep the user, hide the password.
    (
        re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?=@)", re.I),
        r"\g<keep>" + MASK,
    ),
    (re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\g<keep>" + MASK),
    (re.compile(r"(?P<keep>\bToken\s+token=)[^\s,;]+", re.I), r"\g<keep>" + MASK),
    (
        re.compile(
            r"(?P<keep>\b\w*(?:password|passwd|pwd|secret|token|api_?key|auth_key|private_key"
            r"|routing_key|integration_key|service_key)"
            # The key may be quoted, as in JSON: "password": "value".
            r"\w*[\"']?\s*[=:]\s*[\"']?)(?!\[REDACTED\])[^\s,;&\"']+",
            re.I,
        ),
        r"\g<keep>" + MASK,
    ),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.S
        ),
        MASK,
    ),
)


def make_redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """Return a function that masks known secret shapes and each of `secrets` in text."""
    literal = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in literal:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    return redact
