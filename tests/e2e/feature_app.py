"""A small app for the browser tests of ``test_features.py``: one provider per
feature under test, all at the same OpenID provider, each registered with the
keywords the test passes (``form_post``, ``private_key_jwt`` ...).

Usage: ``python tests/e2e/feature_app.py PORT`` with

- ``FEATURE_PROVIDERS``: a JSON object ``{name: register keywords}``;
- ``FEATURE_ISSUER``: the provider's issuer (its discovery URL is derived);
- ``SECRET_KEY``; ``SESSION_COOKIE_SAMESITE`` (default ``Lax``: what browsers
  apply to a cookie without the attribute, without Chromium's two-minute
  exception for POSTs);
- ``E2E_REFRESH_LEEWAY``: seconds (default 1).

Pages: ``/`` (a login link per provider, ``#login-<name>``), ``/profile/<name>``
(the claims, read from the userinfo endpoint with the stored token, which
refreshes it when it expired), ``/scoped/<name>`` for a provider with
``optional_scopes`` (needs them all: ``scopes_required``) and ``/state`` (JSON, for
the tests: the stored tokens by provider and user, each on_login's user, and what
each POST to a callback carried).
"""

from __future__ import annotations

import json
import os
import sys
import typing as t
from pathlib import Path

from flask import abort
from flask import Flask
from flask import jsonify
from flask import render_template_string
from flask import request
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin

INDEX = """<!doctype html><title>Feature app</title>
<p id="user">{{ current_user.get_id() if current_user.is_authenticated else "" }}</p>
{% for name in providers %}<a id="login-{{ name }}" href="{{ url_for(name + '.login',
 next='/profile/' + name) }}">Log in with {{ name }}</a><br>{% endfor %}"""

PROFILE = """<!doctype html><title>Profile</title>
<h1 id="provider">{{ provider }}</h1>
<table>{% for name, value in claims.items() %}
<tr><th>{{ name }}</th><td data-claim="{{ name }}">{{ value }}</td></tr>
{% endfor %}</table>
<p id="expires-at">{{ token.get("expires_at", "") | int }}</p>"""


class User(UserMixin):
    def __init__(self, user_id: str, claims: dict[str, t.Any]) -> None:
        self.id = user_id
        self.claims = claims


def create_app() -> Flask:
    # The checkout's package, unless an installed one (tox's wheel) comes first.
    sys.path.append(str(Path(__file__).resolve().parents[2]))
    from flask_oauthclient import OAuth
    from flask_oauthclient.storage import MemoryStorage

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ["SECRET_KEY"],
        SESSION_COOKIE_SAMESITE=os.environ.get("SESSION_COOKIE_SAMESITE", "Lax")
        or None,
        OAUTHCLIENT_INSECURE_TRANSPORT=True,
        OAUTHCLIENT_REFRESH_LEEWAY=float(os.environ.get("E2E_REFRESH_LEEWAY", 1)),
    )
    issuer = os.environ["FEATURE_ISSUER"].rstrip("/")
    providers: dict[str, dict[str, t.Any]] = json.loads(os.environ["FEATURE_PROVIDERS"])
    users: dict[str, User] = {}
    posts: list[dict[str, t.Any]] = []
    logins: list[str] = []
    storage = MemoryStorage(user=lambda: current_user.get_id())
    oauth = OAuth()
    for name, config in providers.items():
        oauth.register(
            name,
            **{
                "server_metadata_url": f"{issuer}/.well-known/openid-configuration",
                "scope": ["openid", "email", "profile", "offline_access"],
                "authorize_params": {"prompt": "consent"},
                **config,
            },
        )

    @oauth.on_login
    def on_login(provider: t.Any, token: t.Any, userinfo: dict[str, t.Any]) -> User:
        user_id = f"{provider.name}:{userinfo['sub']}"
        logins.append(user_id)
        user = users[user_id] = User(user_id, dict(userinfo))
        return user

    login_manager = LoginManager(app)
    login_manager.user_loader(users.get)
    oauth.init_app(app, storage=storage)

    @app.before_request
    def record_callback_posts() -> None:
        # Headers and cookies only: reading the form here would consume the body.
        if request.method == "POST" and request.path.endswith("/authorized"):
            posts.append(
                {
                    "path": request.path,
                    "sec_fetch_site": request.headers.get("Sec-Fetch-Site"),
                    "cookie": app.config["SESSION_COOKIE_NAME"] in request.cookies,
                }
            )

    @app.get("/")
    def index() -> str:
        return render_template_string(INDEX, providers=list(providers))

    @app.get("/profile/<name>")
    @login_required
    def profile(name: str) -> str:
        if name not in providers:
            abort(404)
        provider = oauth[name]
        claims = provider.userinfo()
        return render_template_string(
            PROFILE, provider=name, claims=claims, token=provider.token or {}
        )

    from flask_oauthclient import scopes

    for name, config in providers.items():
        if config.get("optional_scopes"):
            needed = list(config["optional_scopes"])

            @oauth[name].scopes_required(*needed)
            def scoped(name: str = name) -> t.Any:
                return jsonify(
                    provider=name,
                    user=current_user.get_id(),
                    scope=scopes.parse_scope((oauth[name].token or {}).get("scope")),
                )

            app.add_url_rule(
                f"/scoped/{name}", f"scoped_{name}", login_required(scoped)
            )

    @app.get("/state")
    def state() -> t.Any:
        tokens = {
            name: {
                user_id: dict(token)
                for user_id in users
                if (token := storage.get(name, user=user_id)) is not None
            }
            for name in providers
        }
        return jsonify(
            tokens=tokens,
            users={k: u.claims for k, u in users.items()},
            logins=logins,
            posts=posts,
        )

    return app


def main() -> None:
    port = int(sys.argv[1])
    app = create_app()
    print(f" * feature app on http://127.0.0.1:{port}/", flush=True)
    app.run(host="127.0.0.1", port=port, threaded=True)


if __name__ == "__main__":
    main()
