"""The floor any webhook receiver pays: a bare Flask handler doing json.loads and one LPUSH."""

from __future__ import annotations

import json
import os

import redis
from flask import Flask, jsonify, request


def create_app() -> Flask:
    """Build the floor app, with Redis from BENCH_REDIS_URL."""
    app = Flask(__name__)
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])

    @app.post("/webhooks/alertmanager")
    def receive():  # type: ignore[no-untyped-def]
        raw = request.get_data()
        json.loads(raw)
        client.lpush("bench:floor", raw)
        return jsonify(accepted=True), 202

    return app
