"""The real login flow, against the development OpenID provider on loopback."""

from __future__ import annotations

import typing as t

import pytest
from flask import Flask
from flask import jsonify
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin

from flask_oauthclient import MemoryStorage
from flask_oauthclient import OAuth
from flask_oauthclient.testing import DevProvider


class Account(UserMixin):
    def __init__(self, id: str, name: str) -> None:
        self.id = id
        self.name = name


@pytest.fixture
def corp_app(oauth_dev_provider: DevProvider) -> Flask:
    accounts: dict[str, Account] = {}
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id="dev-client",  # the client the DevProvider knows by default
        client_secret="dev-secret",
        server_metadata_url=oauth_dev_provider.metadata_url,
        scope=["openid", "email", "profile", "offline_access"],
        api_base_url=oauth_dev_provider.issuer + "/",
    )

    @oauth.on_login
    def on_login(provider: t.Any, token: t.Any, userinfo: t.Any) -> Account:
        return accounts.setdefault(
            userinfo["sub"], Account(userinfo["sub"], userinfo["name"])
        )

    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="test",
        OAUTHCLIENT_INSECURE_TRANSPORT=True,  # the DevProvider serves plain http
    )
    LoginManager(app).user_loader(accounts.get)
    oauth.init_app(app, storage=MemoryStorage(user=lambda: current_user.get_id()))

    @app.get("/me")
    @login_required
    def me() -> t.Any:
        return jsonify(oauth.corp.get("userinfo").json())

    return app


def test_log_in_and_call_the_api(
    corp_app: Flask, oauth_dev_login: t.Any, oauth_dev_provider: DevProvider
) -> None:
    client = corp_app.test_client()
    response = oauth_dev_login(client, "corp", "alice", next="/me")
    assert response.headers["Location"] == "/me"
    assert client.get("/me").json["name"] == "Alice"

    # The provider forgets the access token: the app refreshes on the 401.
    oauth_dev_provider.expire_access_tokens()
    assert client.get("/me").json["sub"] == "alice"
