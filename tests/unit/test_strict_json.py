"""The one JSON reader of every webhook: each string valid Unicode, numbers finite, depth bounded,
and what is wrong named by its field path."""

from __future__ import annotations

import json

import pytest

from triage import strict_json
from triage.models import PayloadError


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"groupKey": "{}:{alertname=\\"x\\ud800\\"}"}', "groupKey"),
        (b'{"alerts": [{"fingerprint": "ab\\udc00"}]}', "alerts[0].fingerprint"),
        (b'{"alerts": [{}, {"labels": {"service": "\\uDBFF"}}]}', "alerts[1].labels.service"),
        (b'{"event": {"data": {"title": "\\ud83d alone"}}}', "event.data.title"),
        (b'{"a": ["ok", ["\\ud800"]]}', "a[1][0]"),
        ('{"raw": "\ud800"}'.encode("utf-8", "surrogatepass"), "raw"),  # as bytes, not an escape
        ('{"utf16": "\ud800"}'.encode("utf-16-le", "surrogatepass"), "utf16"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_its_field_path(body: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as refused:
        strict_json.loads(body)
    assert (refused.value.field, refused.value.problem) == (
        field,
        "not valid Unicode: holds a lone UTF-16 surrogate",
    )


def test_a_surrogate_in_a_key_names_the_object_holding_it() -> None:
    with pytest.raises(PayloadError) as refused:
        strict_json.loads(b'{"labels": {"\\ud800": "x"}}')
    assert (refused.value.field, refused.value.problem) == (
        "labels",
        "a key holds a lone UTF-16 surrogate",
    )


def test_a_valid_surrogate_pair_is_an_emoji_and_is_kept() -> None:
    assert strict_json.loads(b'{"summary": "down \\ud83d\\ude00"}') == {
        "summary": "down \U0001f600"
    }


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_are_refused_naming_them(constant: str) -> None:
    with pytest.raises(PayloadError) as refused:
        strict_json.loads(f'{{"value": {constant}}}'.encode())
    assert (
        refused.value.problem == f"{constant} is not a JSON number (NaN and Infinity are refused)"
    )


def test_a_number_too_large_for_a_float_is_refused_not_read_as_infinity() -> None:
    with pytest.raises(PayloadError, match="too large for a float"):
        strict_json.loads(b'{"value": 1e999}')


@pytest.mark.parametrize("depth", [33, 1000, 200_000])
def test_a_body_nested_past_32_levels_is_refused(depth: int) -> None:
    with pytest.raises(PayloadError, match="nests deeper than 32 levels"):
        strict_json.loads(b"[" * depth + b"]" * depth)


def test_32_levels_and_many_siblings_are_fine() -> None:
    deep = b"[" * 32 + b"]" * 32
    wide = json.dumps({"alerts": [{"labels": {"a": "b"}} for _ in range(200)]}).encode()
    assert strict_json.loads(deep) is not None
    assert len(strict_json.loads(wide)["alerts"]) == 200


def test_a_decode_error_does_not_repeat_the_body() -> None:
    with pytest.raises(PayloadError) as refused:
        strict_json.loads(b'{"token": "s3cret-canary' + b"\xff" + b'"}')
    assert "s3cret-canary" not in refused.value.problem
    assert refused.value.field == "(body)"
