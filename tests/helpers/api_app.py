"""The app of the API-call and refresh tests: one provider at the in-process FakeIdP,
a storage keyed by the ``X-User`` header that counts its reads, and views that call
the provider's API."""

from __future__ import annotations

import time
import typing as t

from flask import Flask
from flask import jsonify

from flask_oauthclient import OAuth
from flask_oauthclient.storage import MemoryStorage
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER


class CountingStorage(MemoryStorage):
    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0

    def get(self, provider: str, **kwargs: t.Any) -> t.Any:
        self.reads += 1
        return super().get(provider, **kwargs)


def make_app(
    idp: FakeIdP, storage: MemoryStorage, **register: t.Any
) -> tuple[Flask, OAuth]:
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="k")
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        scope=["openid", "email"],
        api_base_url=f"{ISSUER}/api/",
        **register,
    )
    oauth.init_app(app, storage=storage)
    ap = app.extensions["oauthclient"].providers["corp"]
    ap.adapter = idp
    ap.http.mount("https://", idp)

    @app.get("/me")
    def me() -> t.Any:
        r = oauth.corp.get("me")
        return jsonify(status=r.status_code, **r.json())

    @app.get("/twice")
    def twice() -> t.Any:
        first = oauth.corp.get("me").json()["token"]
        second = oauth.corp.get("me").json()["token"]
        same = oauth.corp.session is oauth.corp.session
        return jsonify(first=first, second=second, same_session=same)

    return app, oauth


def give_token(
    idp: FakeIdP, storage: MemoryStorage, user: str, **changes: t.Any
) -> dict[str, t.Any]:
    token = idp.token_response()
    token["expires_at"] = time.time() + token["expires_in"]
    token.update(changes)
    token = {k: v for k, v in token.items() if v is not None}
    storage.set("corp", token, user=user)
    return token
