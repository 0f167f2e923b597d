"""Signed, expiring bundle links."""

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from tasks.evidence.links import bundle_link, link_problem, signature

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = int(NOW.timestamp()) + 3600


def test_a_link_verifies_until_it_expires() -> None:
    link = bundle_link("https://r.example/", "b-1", LATER, "s3")
    assert link.startswith("https://r.example/bundles/b-1/?expires=")
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert link_problem("b-1", query["expires"], query["sig"], "s3", NOW) is None
    after = datetime.fromtimestamp(LATER + 1, UTC)
    assert (
        link_problem("b-1", query["expires"], query["sig"], "s3", after) == "the link has expired"
    )


@pytest.mark.parametrize(
    ("bundle", "expires", "sig", "secret", "why"),
    [
        ("b-2", str(LATER), signature("b-1", LATER, "s3"), "s3", "signature does not match"),
        ("b-1", str(LATER + 1), signature("b-1", LATER, "s3"), "s3", "signature does not match"),
        ("b-1", str(LATER), signature("b-1", LATER, "other"), "s3", "signature does not match"),
        ("b-1", None, None, "s3", "carries no signature"),
        ("b-1", "soon", "ab", "s3", "expiry is not a number"),
        ("b-1", str(LATER), signature("b-1", LATER, "s3"), "", "not enabled"),
    ],
)
def test_tampered_or_unsigned_links_are_refused(bundle, expires, sig, secret, why) -> None:
    assert why in link_problem(bundle, expires, sig, secret, NOW)
