"""The app the hardening tests attack: the in-process FakeIdP (which misbehaves on
request), Flask-Login, and a storage keyed by the logged-in user."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from flask import Flask
from flask import render_template_string
from flask.testing import FlaskClient
from flask_login import current_user
from flask_login import login_user
from flask_login import LoginManager
from flask_login import UserMixin

from flask_oauthclient import OAuth
from flask_oauthclient.storage import BaseStorage
from flask_oauthclient.storage import MemoryStorage
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER

BASE_URL = "https://app.example"


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


@dataclass
class Site:
    app: Flask
    oauth: OAuth
    idp: FakeIdP
    storage: BaseStorage
    users: dict[str, User] = field(default_factory=dict)
    #: What on_login received: (token, userinfo).
    logins: list[tuple[t.Any, dict[str, t.Any]]] = field(default_factory=list)

    def client(self) -> FlaskClient:
        return self.app.test_client()


def make_site(
    idp: FakeIdP | None = None,
    storage: BaseStorage | None = None,
    *,
    providers: t.Sequence[str] = ("corp",),
    register: dict[str, t.Any] | None = None,
    **config: t.Any,
) -> Site:
    """An app with the providers ``providers`` (``corp``) at the FakeIdP,
    Flask-Login, and ``on_login`` creating a user per ``sub``. ``GET /`` shows the
    user id and the CSRF token; ``GET /api`` calls the provider's API; ``POST
    /as/<id>`` logs in as that user as a password login would."""
    idp = idp or FakeIdP()
    storage = storage or MemoryStorage(user=lambda: current_user.get_id())
    oauth = OAuth()
    for name in providers:
        oauth.register(
            name,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
            scope=["openid", "email", "profile"],
            api_base_url=f"{ISSUER}/api/",
            **(register or {}),
        )
    app = Flask("hardening")
    app.config.update(
        TESTING=True, SECRET_KEY="hardening secret", PREFERRED_URL_SCHEME="https"
    )
    app.config.update(config)
    site = Site(app, oauth, idp, storage)

    @oauth.on_login
    def on_login(provider: t.Any, token: t.Any, userinfo: dict[str, t.Any]) -> t.Any:
        site.logins.append((token, userinfo))
        return site.users.setdefault(userinfo["sub"], User(userinfo["sub"]))

    LoginManager(app).user_loader(site.users.get)
    oauth.init_app(app, storage=storage)
    for name in providers:
        plug(app, idp, name)

    @app.get("/")
    def index() -> str:
        return render_template_string(
            "{{ current_user.get_id() }} {{ oauthclient_csrf_token() }}"
        )

    @app.get("/api")
    def api() -> t.Any:
        return oauth.corp.get("me").json()

    @app.post("/as/<user_id>")
    def log_in_as(user_id: str) -> str:
        login_user(site.users.setdefault(user_id, User(user_id)))
        return "ok"

    return site


def plug(app: Flask, idp: t.Any, name: str = "corp") -> None:
    """Send every request of the provider ``name`` to ``idp`` (an adapter)."""
    ap = app.extensions["oauthclient"].providers[name]
    ap.adapter = idp
    ap.http.mount("https://", idp)


def start_login(
    client: FlaskClient, next: str | None = None, provider: str = "corp"
) -> dict[str, str]:
    """Start a login; return the authorization request's parameters."""
    r = client.get(
        f"/login/{provider}",
        query_string={"next": next} if next else None,
        base_url=BASE_URL,
    )
    assert r.status_code == 302, r.data
    return authorize_params(r.headers["Location"])


def authorize_params(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def callback(client: FlaskClient, query: t.Any = None, **params: t.Any) -> t.Any:
    """GET the callback with ``query`` (a string, sent as it is) or ``params``."""
    if isinstance(query, (str, bytes)):
        return client.get(
            "/login/corp/authorized",
            query_string=query,
            base_url=BASE_URL,
        )
    return client.get("/login/corp/authorized", query_string=params, base_url=BASE_URL)


def complete(
    client: FlaskClient,
    idp: FakeIdP,
    params: dict[str, str],
    provider: str = "corp",
    **extra: t.Any,
) -> t.Any:
    """Answer the authorization request ``params`` as the provider would."""
    idp.nonces["the-code"] = params["nonce"]
    args = {"state": params["state"], "code": "the-code", "iss": ISSUER}
    args.update(extra)
    return client.get(
        f"/login/{provider}/authorized",
        query_string={k: v for k, v in args.items() if v is not None},
        base_url=BASE_URL,
    )


def log_in(site: Site, client: FlaskClient, next: str | None = None) -> t.Any:
    return complete(client, site.idp, start_login(client, next))


def user_of(client: FlaskClient) -> str | None:
    with client.session_transaction(base_url=BASE_URL) as session:
        return t.cast("str | None", session.get("_user_id"))


def csrf(client: FlaskClient) -> str:
    return t.cast(
        str, client.get("/", base_url=BASE_URL).get_data(as_text=True)
    ).split()[-1]


def assert_nothing_happened(site: Site, client: FlaskClient) -> None:
    """No user logged in, no token stored, on_login never called."""
    assert user_of(client) is None
    assert site.logins == []
    if isinstance(site.storage, MemoryStorage):
        assert site.storage._tokens == {}
        assert site.storage._identities == {}
