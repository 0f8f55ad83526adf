"""The example app with its sessions in Redis through Flask-Session, as
``docs/deployment.rst`` shows it; served by gunicorn in ``test_deployment.py``
(``redis_session_app:create_app()``).

Configured by the example app's environment plus ``SESSION_REDIS_URL`` and
``SESSION_KEY_PREFIX``.
"""

from __future__ import annotations

import os

import redis
from flask import Flask
from flask_session import Session

from example_app import create_app as create_example_app


def create_app() -> Flask:
    app = create_example_app(
        {
            "SESSION_TYPE": "redis",
            "SESSION_REDIS": redis.Redis.from_url(os.environ["SESSION_REDIS_URL"]),
            "SESSION_KEY_PREFIX": os.environ.get("SESSION_KEY_PREFIX", "session:"),
        }
    )
    Session(app)
    return app
