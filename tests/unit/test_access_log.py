"""Logs never hold a capability: every query value is masked, in access and error lines."""

from __future__ import annotations

import logging

import pytest
from gunicorn.glogging import SafeAtoms

from webhooks.access_log import MASK_QUERIES, mask_query

SIG = "3f9a0c1d2e"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            f"GET /incidents/inc-1?expires=1796000000&sig={SIG} HTTP/1.1",
            "GET /incidents/inc-1?expires=***&sig=*** HTTP/1.1",
        ),
        (f"GET /bundles/b-1/manifest.json?sig={SIG}&expires=1 HTTP/1.1",
         "GET /bundles/b-1/manifest.json?sig=***&expires=*** HTTP/1.1"),
        (f"https://responder.example/bundles/b-1/?sig={SIG}#top",
         "https://responder.example/bundles/b-1/?sig=***#top"),
        ("GET /healthz HTTP/1.1", "GET /healthz HTTP/1.1"),
        ("POST /webhooks/alertmanager HTTP/1.1", "POST /webhooks/alertmanager HTTP/1.1"),
    ],
)  # fmt: skip
def test_query_values_are_masked_and_the_rest_kept(text: str, masked: str) -> None:
    assert mask_query(text) == masked


def record(msg: str, args: object) -> logging.LogRecord:
    return logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, msg, (args,), None)


def test_an_access_line_keeps_no_signature_in_its_request_query_or_referer() -> None:
    atoms = SafeAtoms(
        {
            "r": f"GET /incidents/inc-1?expires=1&sig={SIG} HTTP/1.1",
            "q": f"expires=1&sig={SIG}",
            "f": f"https://responder.example/incidents/inc-1?sig={SIG}",
            "s": "200",
        }
    )
    line = record('%(r)s %(q)s "%(f)s" %(s)s %(a)s', atoms)
    MASK_QUERIES.filter(line)
    said = line.getMessage()
    assert SIG not in said
    assert said == (
        "GET /incidents/inc-1?expires=***&sig=*** HTTP/1.1 expires=***&sig=*** "
        '"https://responder.example/incidents/inc-1?sig=***" 200 -'
    )


def test_an_error_line_naming_the_request_keeps_no_signature() -> None:
    line = logging.LogRecord(
        "gunicorn.error", logging.ERROR, __file__, 1, "Error handling request %s",
        (f"/bundles/b-1/?expires=1&sig={SIG}",), None,
    )  # fmt: skip
    MASK_QUERIES.filter(line)
    assert line.getMessage() == "Error handling request /bundles/b-1/?expires=***&sig=***"
