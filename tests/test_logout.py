"""Logout: POST with a CSRF token, RFC 7009 revocation, local deletion whatever the
provider answers, and OpenID RP-initiated logout on request."""

from __future__ import annotations

import re
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask import render_template_string
from flask.testing import FlaskClient
from flask_login import current_user
from flask_login import LoginManager
from flask_login import UserMixin
from test_flow import log_in

from flask_oauthclient import OAuth
from flask_oauthclient.storage import MemoryStorage
from flask_oauthclient.testing import DevProvider


class User(UserMixin):
    def __init__(self, sub: str) -> None:
        self.id = sub


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage(user=lambda: current_user.get_id())


@pytest.fixture
def app(dev: DevProvider, storage: MemoryStorage) -> Flask:
    users: dict[str, User] = {}
    oauth = OAuth()
    oauth.register(
        "dev",
        client_id="dev-client",
        client_secret="dev-secret",
        server_metadata_url=dev.metadata_url,
        scope=["openid", "profile", "offline_access"],
    )
    oauth.on_login(
        lambda p, tok, info: users.setdefault(info["sub"], User(info["sub"]))
    )
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="k", OAUTHCLIENT_INSECURE_TRANSPORT=True)
    LoginManager(app).user_loader(users.get)
    oauth.init_app(app, storage=storage)

    @app.get("/")
    def index() -> str:
        return render_template_string(
            "{{ current_user.get_id() }} {{ oauthclient_csrf_token() }}"
        )

    return app


def csrf(client: FlaskClient) -> str:
    return client.get("/").get_data(as_text=True).split()[-1]


def refresh_works(dev: DevProvider, refresh_token: str) -> bool:
    r = requests.post(
        dev.issuer + "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=("dev-client", "dev-secret"),
        timeout=5,
    )
    return r.status_code == 200


def test_logout_revokes_deletes_and_logs_out(
    client: FlaskClient, dev: DevProvider, storage: MemoryStorage
) -> None:
    log_in(client, dev, "erin")
    token = storage.get("dev", user="erin")
    assert token is not None
    revocations = dev.stats["revocation"]
    r = client.post("/logout", data={"csrf_token": csrf(client), "next": "/bye"})
    assert (r.status_code, r.headers["Location"]) == (302, "/bye")
    assert storage.get("dev", user="erin") is None
    assert dev.stats["revocation"] == revocations + 2
    assert not refresh_works(dev, token["refresh_token"])
    assert client.get("/").get_data(as_text=True).startswith("None ")


@pytest.mark.parametrize(
    "data", [{}, {"csrf_token": ""}, {"csrf_token": "forged"}], ids=str
)
def test_logout_without_the_csrf_token_changes_nothing(
    client: FlaskClient, dev: DevProvider, storage: MemoryStorage, data: dict[str, str]
) -> None:
    log_in(client, dev, "frank")
    r = client.post("/logout", data=data)
    assert r.status_code == 400
    assert storage.get("dev", user="frank") is not None
    assert client.get("/").get_data(as_text=True).startswith("frank ")


def test_cross_site_get_does_not_log_out(client: FlaskClient, dev: DevProvider) -> None:
    log_in(client, dev, "grace")
    assert client.get("/logout").status_code == 405
    assert client.get("/").get_data(as_text=True).startswith("grace ")


def test_token_is_deleted_even_when_revocation_fails(
    app: Flask, client: FlaskClient, dev: DevProvider, storage: MemoryStorage
) -> None:
    log_in(client, dev, "heidi")
    ap = app.extensions["oauthclient"].providers["dev"]
    ap.explicit = {**ap.explicit, "revocation_url": "http://127.0.0.1:9/unreachable"}
    r = client.post("/logout", data={"csrf_token": csrf(client)})
    assert r.status_code == 302
    assert storage.get("dev", user="heidi") is None


def test_offsite_next_falls_back(client: FlaskClient, dev: DevProvider) -> None:
    log_in(client, dev, "ivan")
    r = client.post(
        "/logout", data={"csrf_token": csrf(client), "next": "https://evil.example/"}
    )
    assert r.headers["Location"] == "/"


def test_rp_initiated_logout(client: FlaskClient, dev: DevProvider) -> None:
    log_in(client, dev, "judy")
    r = client.post("/logout", data={"csrf_token": csrf(client), "end_session": "dev"})
    location = urlsplit(r.headers["Location"])
    assert (
        f"{location.scheme}://{location.netloc}{location.path}"
        == dev.issuer + "/logout"
    )
    query = parse_qs(location.query)
    assert query["client_id"] == ["dev-client"]
    assert query["post_logout_redirect_uri"] == ["http://localhost/"]
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", query["id_token_hint"][0])
