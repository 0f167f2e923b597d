"""Remove secrets from text before it is stored in a bundle or sent in a note."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

MASK = "[REDACTED]"

# Every pattern runs in time linear in the text (issue 24: the key=value pattern took 8 s on
# 64 KB of one word). Possessive quantifiers and atomic groups (Python 3.11) never give back
# what they matched, and each pattern starts only where its match could begin, so no text is
# scanned again from each of its positions. tests/unit/test_redact_linear.py holds them to the
# old patterns' results; bench/regex_worst_case.py measures them.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> keep the user, hide the password. Tried once per run of
    # scheme characters, from its start: the scheme is the run's first word start on.
    (
        re.compile(
            r"(?P<keep>(?<![a-z0-9+.-])(?>[a-z0-9+.-]*?\b[a-z])[a-z0-9+.-]*+://[^:/@\s]*+:)"
            r"[^@\s/]++(?=@)",
            re.I,
        ),
        r"\g<keep>" + MASK,
    ),
    (re.compile(r"(?P<keep>\bBearer\s++)[A-Za-z0-9._~+/=-]++", re.I), r"\g<keep>" + MASK),
    (re.compile(r"(?P<keep>\bToken\s++token=)[^\s,;]++", re.I), r"\g<keep>" + MASK),
    (
        re.compile(
            # A word that holds a key name, read once: the lookahead finds the name, the word
            # is then taken whole (the old `\w*name\w*` tried every split of a long word).
            r"(?P<keep>\b(?=\w*?(?:password|passwd|pwd|secret|token|api_?key|auth_key"
            r"|private_key|routing_key|integration_key|service_key))\w++"
            # The key may be quoted, as in JSON: "password": "value".
            r"[\"']?\s*+[=:]\s*+[\"']?)(?!\[REDACTED\])[^\s,;&\"']++",
            re.I,
        ),
        r"\g<keep>" + MASK,
    ),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
)
_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")


def _mask_private_keys(text: str) -> str:
    """Mask each PEM private key, from its BEGIN line to the first END line after it.

    Not one `BEGIN.*?END` pattern: with many BEGIN lines and no END, it scanned to the end of
    the text from each of them. Here, once no END follows a BEGIN, none follows a later one.
    """
    parts, at = [], 0
    while (begin := _KEY_BEGIN.search(text, at)) is not None:
        end = _KEY_END.search(text, begin.end())
        if end is None:
            break
        parts += [text[at : begin.start()], MASK]
        at = end.end()
    return "".join(parts) + text[at:] if parts else text


def make_redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """Return a function that masks known secret shapes and each of `secrets` in text."""
    literal = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in literal:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return _mask_private_keys(text)

    return redact
