"""Personal approval links: they sign one person in on one incident until they expire, and a
read link (the one in notes and Slack) can never be turned into one, nor one into a read link."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest

from tasks.evidence.approval_links import (
    approval_link,
    approval_problem,
    approval_query,
    approval_signature,
    identity_of,
)
from tasks.evidence.links import incident_query, incident_subject, link_problem, signature

SECRET = "link-secret-for-tests"
NOW = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
LATER = int(NOW.timestamp()) + 1800
DANA = "dana@eafix.example"


def signed(query: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(query).items()}


def test_a_personal_link_signs_its_person_in_on_its_incident_until_it_expires() -> None:
    args = signed(approval_query("PABC123", DANA, LATER, SECRET))
    assert args["as"] == DANA
    assert approval_problem("PABC123", args["as"], args["until"], args["asig"], SECRET, NOW) is None


@pytest.mark.parametrize(
    ("incident", "identity", "until", "why"),
    [
        ("PABC123", "eve@eafix.example", str(LATER), "invalid"),  # another person's name
        ("PABC123", "DANA@eafix.example ", str(LATER), "invalid"),  # not what was signed
        ("POTHER99", DANA, str(LATER), "invalid"),  # another incident
        ("PABC123", DANA, str(LATER + 86400), "invalid"),  # a moved expiry
        ("PABC123", DANA, "soon", "invalid"),
        ("PABC123", "", str(LATER), "invalid"),
    ],
    ids=["identity", "identity-spelling", "incident", "expiry", "expiry-not-a-number", "nobody"],
)
def test_a_personal_link_with_anything_changed_is_invalid(
    incident: str, identity: str, until: str, why: str
) -> None:
    sig = approval_signature("PABC123", DANA, LATER, SECRET)
    assert approval_problem(incident, identity, until, sig, SECRET, NOW) == (
        f"the approval link is {why}"
    )


def test_an_expired_personal_link_says_it_expired() -> None:
    sig = approval_signature("PABC123", DANA, LATER, SECRET)
    after = datetime.fromtimestamp(LATER + 1, UTC)
    assert approval_problem("PABC123", DANA, str(LATER), sig, SECRET, after) == (
        "the approval link has expired"
    )


def test_a_read_links_signature_never_approves_and_an_approval_signature_never_reads() -> None:
    read = signed(incident_query("PABC123", LATER, SECRET))
    # The read signature offered as an approval one, for anyone: the keys and messages differ.
    for who in (DANA, ""):
        assert approval_problem("PABC123", who, str(LATER), read["sig"], SECRET, NOW) is not None
    approve = approval_signature("PABC123", DANA, LATER, SECRET)
    subject = incident_subject("PABC123")
    assert link_problem(subject, str(LATER), approve, SECRET, NOW) == (
        "the link's signature does not match"
    )
    assert approve != signature(subject, LATER, SECRET)


def test_the_approval_key_is_derived_not_the_link_secret_itself() -> None:
    import hashlib
    import hmac

    message = f"approve\0PABC123\0{DANA}\0{LATER}".encode()
    plain = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert approval_signature("PABC123", DANA, LATER, SECRET) != plain


def test_a_signature_with_non_ascii_characters_is_invalid_not_an_error() -> None:
    assert approval_problem("PABC123", DANA, str(LATER), "é" * 64, SECRET, NOW) == (
        "the approval link is invalid"
    )


def test_without_a_link_secret_no_personal_link_works() -> None:
    sig = approval_signature("PABC123", DANA, LATER, SECRET)
    assert "not enabled" in str(approval_problem("PABC123", DANA, str(LATER), sig, "", NOW))


def test_a_link_is_made_for_an_e_mail_address_in_lower_case_and_nothing_else() -> None:
    link = approval_link("https://r.example/", "PABC123", " Dana@EAFIX.example", LATER, SECRET)
    assert link.startswith("https://r.example/incidents/PABC123?as=dana%40eafix.example&until=")
    for wrong in ("PDANA01", "anyone", "a b@c", ""):
        with pytest.raises(ValueError, match="expected an e-mail address"):
            identity_of(wrong)
