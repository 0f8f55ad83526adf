"""The floor: no OAuth, no database, no login. A module-level
:class:`requests.Session` with a fixed bearer header calls userinfo and the view
answers its JSON. Whatever an app costs above this is the price of its OAuth client,
its storage and its login."""

from __future__ import annotations

import typing as t

import requests
from flask import Flask

from benchmarks.apps import _bench

settings = _bench.Settings()
http = requests.Session()
http.headers["Authorization"] = f"Bearer {settings.floor_token}"

app = Flask(__name__)
app.config["SECRET_KEY"] = settings.secret_key


@app.get("/")
def index() -> str:
    return "ok"


@app.get("/api")
def api() -> t.Any:
    return _bench.userinfo_response(http.get(settings.userinfo_url, timeout=10))


_bench.install(app)


def init_db() -> None:
    """Nothing to set up."""
