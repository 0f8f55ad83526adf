"""The app under test of ``test_refresh_storm.py``: users log in through the
development provider, their tokens live in the database (``SQLAlchemyStorage``), and
the views call the provider's ``/api/`` endpoint, which echoes whose token it got.

Served in the test process by werkzeug, or by gunicorn workers
(``storm_app:create_app()``), configured from the environment:
``STORM_PROVIDER_URL`` (the development provider's base URL),
``STORM_DATABASE_URL`` and ``STORM_SECRET_KEY``.

There is no route that seeds users or tokens: tests log in for real and change
tokens in the database directly.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import typing as t

from flask import Flask
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy

from flask_oauthclient import OAuth
from flask_oauthclient import Provider
from flask_oauthclient.sqla import OAuthTokenMixin
from flask_oauthclient.sqla import SQLAlchemyStorage

db = SQLAlchemy()


class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "storm_user"
    id = db.Column(db.Integer, primary_key=True)
    #: The user's ``sub`` at the development provider (its user name).
    name = db.Column(db.String(200), nullable=False, unique=True)


class OAuthToken(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "storm_oauth_token"
    user_id = db.Column(db.ForeignKey(User.id), nullable=False)
    user = db.relationship(User)


def digest(value: str) -> str:
    """A short digest of a token, for comparing tokens without showing them."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def create_app(
    provider_url: str | None = None,
    database_url: str | None = None,
    secret_key: str | None = None,
    config: t.Mapping[str, t.Any] | None = None,
) -> Flask:
    """The app; the arguments default to ``STORM_PROVIDER_URL``,
    ``STORM_DATABASE_URL`` and ``STORM_SECRET_KEY``; ``config`` overrides the rest
    of the configuration."""
    provider_url = (provider_url or os.environ["STORM_PROVIDER_URL"]).rstrip("/")
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key or os.environ.get("STORM_SECRET_KEY", "storm secret"),
        SQLALCHEMY_DATABASE_URI=database_url or os.environ["STORM_DATABASE_URL"],
        OAUTHCLIENT_INSECURE_TRANSPORT=True,
        # The provider's cookies live on the same host (127.0.0.1).
        SESSION_COOKIE_NAME="storm_session",
        # More connections than threads: a request's session holds one while the
        # token storage takes another (docs/deployment.rst). 20 covers the tests'
        # 16 concurrent requests in one process.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 20},
    )
    app.config.update(config or {})
    db.init_app(app)
    login_manager = LoginManager(app)

    @login_manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(user_id: str) -> User | None:
        return db.session.get(User, int(user_id))

    oauth = OAuth()
    oauth.register(
        "dev",
        client_id="dev-client",
        client_secret="dev-secret",
        server_metadata_url=f"{provider_url}/.well-known/openid-configuration",
        scope=["openid", "email", "profile", "offline_access"],
        api_base_url=f"{provider_url}/",
    )

    @oauth.on_login
    def find_or_create_user(
        provider: Provider, token: dict[str, t.Any], userinfo: dict[str, t.Any]
    ) -> User:
        user: User | None = provider.find_user(userinfo)
        if user is None:
            user = User(name=userinfo["sub"])
            db.session.add(user)
            db.session.commit()
        return user

    oauth.init_app(
        app,
        storage=SQLAlchemyStorage(OAuthToken, db.session, user=lambda: current_user),
    )

    @app.get("/ping")
    def ping() -> ResponseReturnValue:
        return jsonify(pid=os.getpid())

    @app.get("/whoami")
    @login_required
    def whoami() -> ResponseReturnValue:
        """Who the provider says the current user's token belongs to. With
        ``?work=<seconds>``, the view first works that long with its database
        session open (Flask-Login's user loader opened it)."""
        time.sleep(request.args.get("work", 0.0, type=float))
        response = oauth.dev.get("api/whoami")
        token = oauth.dev.token or {}
        body = {
            "user": current_user.name,
            "provider_status": response.status_code,
            "sub": response.json().get("sub") if response.ok else None,
            "access_token": digest(token.get("access_token", "")),
            "pid": os.getpid(),
            "thread": threading.get_ident(),
        }
        return jsonify(body), 200 if response.ok else 502

    @app.get("/page")
    @login_required
    def page() -> ResponseReturnValue:
        """A page a browser loads: a token error sends it back through the login."""
        response = oauth.dev.get("api/page")
        response.raise_for_status()
        return f"<p>Hello {response.json()['sub']}</p>"

    @app.post("/refresh")
    @login_required
    def refresh() -> ResponseReturnValue:
        """Refresh the current user's token now, expired or not."""
        token = oauth.dev.refresh_token()
        return jsonify(access_token=digest(token["access_token"]))

    with app.app_context():
        db.create_all()
    return app
