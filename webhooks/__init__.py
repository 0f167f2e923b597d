"""The receiver app: Flask's routes, with the Alertmanager endpoint mounted in front of them."""

from __future__ import annotations

import logging
import os

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from tasks.backlog import read_backlog
from tasks.celery_app import make_celery, sender_of
from tasks.enqueue import TaskMessages
from tasks.runtime import Runtime
from tasks.settings import Settings, settings_from_env
from webhooks import actions, alertmanager, bundles, incident_page, ops, pagerduty, slack
from webhooks.access_log import MASK_QUERIES
from webhooks.body_deadline import BodyDeadline
from webhooks.errors import register_error_handlers
from webhooks.metrics import ReceiverMetrics
from webhooks.receiver import EXTENSION, Receiver

MAX_BODY_BYTES = 256 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    """Build the receiver app; settings default to the `RESPONDER_*` environment."""
    settings = settings or settings_from_env(os.environ)
    # No app-wide static route: the incident page's blueprint serves its own, with its headers.
    app = Flask(__name__, static_folder=None)
    # Werkzeug's development server logs each request line: signed links stay out of it too.
    logging.getLogger("werkzeug").addFilter(MASK_QUERIES)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    celery = make_celery(settings)
    # It queues Slack's messages (the parent's status, a click's answer) through the app.
    runtime = Runtime(settings, send_task=sender_of(celery))
    runtime.policy  # noqa: B018 - load now: a bad policy must stop start-up, not a request
    metrics = ReceiverMetrics()
    app.extensions[EXTENSION] = Receiver(settings, runtime, metrics, TaskMessages(celery))
    register_error_handlers(app)
    metrics.install(app)
    metrics.watch_backlog(lambda: read_backlog(runtime))
    app.register_blueprint(pagerduty.blueprint)
    app.register_blueprint(bundles.blueprint)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(actions.blueprint)
    app.register_blueprint(incident_page.blueprint)
    app.register_blueprint(slack.blueprint)
    # Mounted in front of Flask's routing: see webhooks/alertmanager.py for why.
    endpoint = alertmanager.AlertmanagerEndpoint(app.extensions[EXTENSION], MAX_BODY_BYTES)
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {alertmanager.ROUTE: endpoint}
    )
    # Outermost, so that every route's body is read against the same deadline.
    app.wsgi_app = BodyDeadline(app.wsgi_app, settings.body_read_seconds)  # type: ignore[method-assign]
    # Requests to the route never reach Flask; listing it lets Flask answer a path with a
    # doubled slash (`/webhooks//alertmanager`) with a 308 to it, as when it was a view.
    app.add_url_rule(alertmanager.ROUTE, "alertmanager", endpoint.flask_view, methods=["POST"])
    return app
