# One image for web, worker and beat (compose.yaml picks the command).
# Pinned to an exact release: a rebuild gets the same Python, not whatever 3.11 is that day.
FROM python:3.11.9-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py requirements.lock ./
COPY triage triage
COPY webhooks webhooks
COPY tasks tasks
COPY collectors collectors
# The exact versions the suite ran with (requirements.lock, renewed by `make lock`).
RUN pip install --no-cache-dir -c requirements.lock . && useradd --create-home --uid 10001 responder \
    && mkdir -p /var/lib/responder && chown responder /var/lib/responder
USER responder
ENV RESPONDER_BUNDLE_DIR=/var/lib/responder/bundles RESPONDER_OUTBOX_DIR=/var/lib/responder/outbox
EXPOSE 8080
# Workers, worker class (gevent) and logger: webhooks/gunicorn_config.py, as compose's web.
CMD ["gunicorn", "--bind", "0.0.0.0:8080", "--access-logfile", "-", \
     "--config", "python:webhooks.gunicorn_config", "webhooks:create_app()"]
