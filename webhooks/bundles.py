"""GET /bundles/<id>/ and /bundles/<id>/<file>: evidence bundles behind signed, expiring links."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Blueprint, Response, request, send_from_directory
from werkzeug.security import safe_join

from tasks.evidence.links import bundle_path, link_problem, signed_query
from webhooks.errors import problem
from webhooks.receiver import current_receiver
from webhooks.security_headers import protect

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
    """Serve one file of a bundle when the link's signature is valid and unexpired."""
    settings = current_receiver().settings
    expires, sig = request.args.get("expires"), request.args.get("sig")
    secret = settings.link_secret.reveal()
    if not _BUNDLE_ID.match(bundle_id):
        return problem(404, "no such bundle", "id")
    if why := link_problem(bundle_id, expires, sig, secret, datetime.now(UTC)):
        return problem(403, why, "sig")
    folder = bundle_path(settings.bundle_dir, bundle_id).resolve()
    path = safe_join(str(folder), name)
    if path is None or not folder.is_dir():
        return problem(404, "no such file in this bundle", "file")
    if name == "index.html":
        index = folder / "index.html"
        if not index.is_file():
            return problem(404, "no such file in this bundle", "file")
        # Carry the signature to every file the page links to.
        query = signed_query(bundle_id, int(expires or 0), secret)
        page = _LOCAL_LINK.sub(lambda m: f'{m[1]}="./{m[2]}?{query}"', index.read_text("utf-8"))
        response = Response(page, mimetype="text/html")
    else:
        response = send_from_directory(folder, name)
    response.headers["Cache-Control"] = "private, no-store"
    return response
