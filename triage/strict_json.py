"""The one JSON reader for every webhook body: text that is valid Unicode, finite numbers, a
bounded depth, or a PayloadError naming the field.

Python's json module takes what JSON's grammar does not forbid but nothing after it can use:
a lone UTF-16 surrogate (`"\\ud800"`) decodes to a str that cannot be encoded again (Redis keys,
hashes and HTTP bodies then fail deep in a worker), `NaN` and `Infinity` are not JSON at all
and come back out as invalid JSON, and a body nested a thousand deep costs recursion in every
reader after us. Refused here, each is a 400 the sender can read, never a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

from triage.models import PayloadError

# Deeper than any payload Alertmanager, PagerDuty or Slack sends (about 6 levels), far below
# Python's recursion limit.
MAX_DEPTH = 32
# A surrogate in a str can only be a lone one: json joins a valid \\uD83D\\uDE00 pair into one
# character. In the raw body it is a \\uD800-\\uDFFF escape or its UTF-8 bytes (which json
# decodes with "surrogatepass"); a body with neither cannot hold one, and skips the walk.
TOO_DEEP = f"body is not usable JSON: it nests deeper than {MAX_DEPTH} levels"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_IN_BODY = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def loads(raw: bytes | str) -> Any:
    """Parse a JSON body strictly; raise PayloadError naming the field that is not usable."""
    try:
        # What json.loads does with bytes, without building a decoder on every call.
        text = raw if isinstance(raw, str) else _text(raw)
        value = _DECODER.decode(text)
    except PayloadError:
        raise
    except RecursionError:
        raise PayloadError("(body)", TOO_DEEP) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise PayloadError("(body)", f"body is not valid JSON: {_without_text(exc)}") from None
    body = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    # The Alertmanager intake is the hot path: substring tests first, the walk only for a
    # body that may hold a surrogate or nest too deeply (fewer brackets than the limit cannot).
    # A UTF-16 or -32 body (json takes those too) is always walked.
    strings = (b"\\u" in body or b"\xed" in body) and _SURROGATE_IN_BODY.search(body) is not None
    strings = strings or _not_utf8(body)
    if strings or (body.count(b"{") + body.count(b"[") > MAX_DEPTH and not _shallow(value)):
        check(value, strings=strings)
    return value


def check(value: Any, *, strings: bool = True) -> None:
    """Raise PayloadError for nesting past MAX_DEPTH or (with `strings`) a lone surrogate."""
    # Iterative: a recursive walk would be the very recursion this module guards against.
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= MAX_DEPTH:
                raise PayloadError(
                    path or "(body)",
                    TOO_DEEP,
                )
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else key
                if strings and _SURROGATE.search(key):
                    # The key itself cannot be printed: name the object that holds it.
                    raise PayloadError(path or "(body)", "a key holds a lone UTF-16 surrogate")
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, list):
            if depth >= MAX_DEPTH:
                raise PayloadError(
                    path or "(body)",
                    TOO_DEEP,
                )
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif strings and isinstance(item, str) and _SURROGATE.search(item):
            raise PayloadError(path or "(body)", "not valid Unicode: holds a lone UTF-16 surrogate")


def _text(raw: bytes) -> str:
    """Decode a body as json.loads does (UTF-8, -16 or -32, surrogates passed to the walk)."""
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def _not_utf8(body: bytes) -> bool:
    return json.detect_encoding(body) not in ("utf-8", "utf-8-sig")


def _shallow(value: Any) -> bool:
    """Return True when `value` nests at most MAX_DEPTH levels (containers only, no paths)."""
    level = [value]
    for _ in range(MAX_DEPTH):
        inner: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            inner.extend(c for c in children if isinstance(c, dict | list))
        if not inner:
            return True
        level = inner
    return False


def _refuse_constant(name: str) -> Any:
    raise PayloadError("(body)", f"{name} is not a JSON number (NaN and Infinity are refused)")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise PayloadError("(body)", f"number {text[:40]} is too large for a float")
    return number


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _without_text(exc: ValueError) -> str:
    """Return the decoder's message; a UnicodeDecodeError's repr would carry the body."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 at byte {exc.start}"
    return str(exc)
