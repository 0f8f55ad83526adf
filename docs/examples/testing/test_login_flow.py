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


def create_corp_app(dev: DevProvider) -> Flask:
    """An app whose provider "corp" is the development provider ``dev``."""
    accounts: dict[str, Account] = {}
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id="dev-client",  # the client the DevProvider knows by default
        client_secret="dev-secret",
        server_metadata_url=dev.metadata_url,
        scope=["openid", "email", "profile", "offline_access"],
        api_base_url=dev.issuer + "/",
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


@pytest.fixture
def corp_app(oauth_dev_provider: DevProvider) -> Flask:
    return create_corp_app(oauth_dev_provider)


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


# -- a provider of your own ------------------------------------------------------


@pytest.fixture(scope="module")
def strict_provider() -> t.Iterator[DevProvider]:
    """Tokens that live a minute; a refresh token used twice ends the login."""
    provider = DevProvider(access_token_ttl=60, revoke_grant_on_reuse=True)
    with provider.serve():
        yield provider


def test_short_lived_tokens(
    strict_provider: DevProvider, oauth_dev_login: t.Any
) -> None:
    client = create_corp_app(strict_provider).test_client()
    # The login goes to strict_provider: oauth_dev_login signs in there.
    oauth_dev_login(client, "corp", "bob")
    assert client.get("/me").json["sub"] == "bob"

    refreshes = strict_provider.stats["token_refresh_token"]
    strict_provider.expire_access_tokens()
    assert client.get("/me").json["sub"] == "bob"
    assert strict_provider.stats["token_refresh_token"] == refreshes + 1
