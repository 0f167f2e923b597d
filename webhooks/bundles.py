"""GET /bundles/<id>/ and /bundles/<id>/<file>: evidence bundles behind signed, expiring links."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from flask import Blueprint, Response, request

from tasks.evidence.links import link_problem, signed_query
from tasks.gateways.bundle_store import BundleStoreError, content_type, file_key
from webhooks.errors import problem
from webhooks.receiver import current_receiver
from webhooks.security_headers import protect

log = logging.getLogger(__name__)
blueprint = Blueprint("bundles", __name__)
_BUNDLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_LOCAL_LINK = re.compile(r'(href|src)="\./([^"?#]*)"')
# The bundle's HTML view has no script and one inline <style> (tasks/notes/templates/
# bundle_index.html.j2); every image and link is a file of the bundle.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


@blueprint.after_request
def _headers(response: Response) -> Response:
    """Add the security headers to every answer of this blueprint, refusals included."""
    return protect(response, CSP)


@blueprint.get("/bundles/<bundle_id>/")
@blueprint.get("/bundles/<bundle_id>/<path:name>")
def get_bundle_file(bundle_id: str, name: str = "index.html") -> Response:
    """Serve one file of a bundle when the link's signature is valid and unexpired.

    The file is streamed from the bundle store (the local folder, or the S3 store every host
    reads): a link opens on whichever host answers.
    """
    receiver = current_receiver()
    settings = receiver.settings
    expires, sig = request.args.get("expires"), request.args.get("sig")
    secret = settings.link_secret.reveal()
    if not _BUNDLE_ID.match(bundle_id):
        return problem(404, "no such bundle", "id")
    if why := link_problem(bundle_id, expires, sig, secret, datetime.now(UTC)):
        return problem(403, why, "sig")
    try:
        file_key(name)
    except ValueError:
        return problem(404, "no such file in this bundle", "file")
    try:
        stored = receiver.runtime.bundles.open(bundle_id, name)
    except BundleStoreError as exc:
        log.warning("bundle %s: the store did not answer: %s", bundle_id, exc)
        return problem(503, "the bundle store does not answer; retry")
    if stored is None:
        return problem(404, "no such file in this bundle", "file")
    if name == "index.html":
        page = b"".join(stored.chunks).decode("utf-8")
        # Carry the signature to every file the page links to.
        query = signed_query(bundle_id, int(expires or 0), secret)
        page = _LOCAL_LINK.sub(lambda m: f'{m[1]}="./{m[2]}?{query}"', page)
        response = Response(page, mimetype="text/html")
    else:
        mimetype, encoding = content_type(name)
        response = Response(stored.chunks, mimetype=mimetype, direct_passthrough=True)
        response.content_length = stored.size
        if encoding is not None:
            # As send_from_directory did: bundle.tar.gz is sent gzip-encoded.
            response.headers["Content-Encoding"] = encoding
    response.headers["Cache-Control"] = "private, no-store"
    return response
