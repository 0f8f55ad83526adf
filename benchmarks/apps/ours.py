"""Flask-OAuthClient, written as its quick start shows: ``oauth.register`` with
discovery, ``SQLAlchemyStorage`` on an ``OAuthTokenMixin`` model, Flask-Login, an
``on_login`` handler that finds a returning user with ``provider.find_user`` (by
issuer and subject) or creates one."""

from __future__ import annotations

import typing as t

from flask import Flask
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy

from benchmarks.apps import _bench
from flask_oauthclient import OAuth
from flask_oauthclient.sqla import OAuthTokenMixin
from flask_oauthclient.sqla import SQLAlchemyStorage

settings = _bench.Settings()
db = SQLAlchemy()
login_manager = LoginManager()
oauth = OAuth()
oauth.register(
    "dev",
    client_id=settings.client_id,
    client_secret=settings.client_secret,
    server_metadata_url=settings.metadata_url,
    scope=settings.scope,
    api_base_url=f"{settings.provider_url}/",
)


class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_ours_user"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200))


class OAuthToken(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_ours_token"
    user_id = db.Column(db.ForeignKey(User.id), nullable=False)
    user = db.relationship(User)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


@oauth.on_login
def find_or_create_user(provider: t.Any, token: t.Any, userinfo: t.Any) -> User:
    # As the quick start: a returning user is found by the provider's identity
    # (issuer, subject).
    known = provider.find_user(userinfo)
    if known is not None:
        return known  # type: ignore[no-any-return]
    user = User(name=userinfo.get("name"))
    db.session.add(user)
    db.session.commit()
    return user


def expire_token() -> bool:
    token = oauth.dev.token
    if token is None:
        return False
    oauth.dev.token = _bench.expired(token)
    return True


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(_bench.flask_config(settings))
    app.config["OAUTHCLIENT_INSECURE_TRANSPORT"] = True  # loopback http only
    db.init_app(app)
    login_manager.init_app(app)
    oauth.init_app(
        app,
        storage=SQLAlchemyStorage(OAuthToken, db.session, user=lambda: current_user),
    )

    @app.get("/")
    def index() -> str:
        return "ok"

    @app.get("/api")
    @login_required
    def api() -> t.Any:
        return _bench.userinfo_response(oauth.dev.get("userinfo"))

    _bench.install(app, expire_token)
    return app


def init_db() -> None:
    """Drop and create this app's tables (the runner calls it before serving)."""
    with app.app_context():
        db.drop_all()
        db.create_all()


app = create_app()
