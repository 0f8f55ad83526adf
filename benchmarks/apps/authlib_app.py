"""Authlib's Flask client, written as its docs recommend
(docs/client/flask.rst): ``OAuth(app, fetch_token=..., update_token=...)`` with
functions reading and writing an ``OAuth2Token`` model, ``oauth.register`` with
discovery and PKCE, login and callback views with ``authorize_redirect`` and
``authorize_access_token`` (which checks the ID token and gives its claims as
``token["userinfo"]``), Flask-Login for the logged-in user."""

from __future__ import annotations

import os
import typing as t

from authlib.integrations.flask_client import OAuth
from flask import Flask
from flask import redirect
from flask import url_for
from flask_login import current_user
from flask_login import login_required
from flask_login import login_user
from flask_login import LoginManager
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy

from benchmarks.apps import _bench

# Authlib refuses http:// without it (loopback only).
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

settings = _bench.Settings()
db = SQLAlchemy()
login_manager = LoginManager()


class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_authlib_user"
    id = db.Column(db.Integer, primary_key=True)
    sub = db.Column(db.String(255), unique=True, nullable=False)
    name = db.Column(db.String(200))


class OAuth2Token(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_authlib_token"
    __table_args__ = (db.UniqueConstraint("name", "user_id"),)
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey(User.id), nullable=False)
    name = db.Column(db.String(40), nullable=False)
    token_type = db.Column(db.String(40))
    access_token = db.Column(db.String(200), nullable=False)
    refresh_token = db.Column(db.String(200))
    expires_at = db.Column(db.Integer)
    id_token = db.Column(db.Text)

    def to_token(self) -> dict[str, t.Any]:
        return dict(
            access_token=self.access_token,
            token_type=self.token_type,
            refresh_token=self.refresh_token,
            expires_at=self.expires_at,
        )


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def fetch_token(name: str) -> dict[str, t.Any] | None:
    item = OAuth2Token.query.filter_by(name=name, user_id=current_user.id).first()
    return item.to_token() if item else None


def update_token(
    name: str,
    token: dict[str, t.Any],
    refresh_token: str | None = None,
    access_token: str | None = None,
) -> None:
    if refresh_token:
        item = OAuth2Token.query.filter_by(name=name, refresh_token=refresh_token)
    elif access_token:
        item = OAuth2Token.query.filter_by(name=name, access_token=access_token)
    else:
        return
    item = item.first()
    if item is None:
        return
    item.access_token = token["access_token"]
    item.refresh_token = token.get("refresh_token")
    item.expires_at = token["expires_at"]
    db.session.commit()


oauth = OAuth(fetch_token=fetch_token, update_token=update_token)
oauth.register(
    "dev",
    client_id=settings.client_id,
    client_secret=settings.client_secret,
    server_metadata_url=settings.metadata_url,
    api_base_url=f"{settings.provider_url}/",
    client_kwargs={
        "scope": " ".join(settings.scope),
        "code_challenge_method": "S256",
    },
)


def save_token(user: User, token: dict[str, t.Any]) -> None:
    item = OAuth2Token.query.filter_by(name="dev", user_id=user.id).first()
    if item is None:
        item = OAuth2Token(name="dev", user_id=user.id)
        db.session.add(item)
    item.token_type = token.get("token_type")
    item.access_token = token["access_token"]
    item.refresh_token = token.get("refresh_token")
    item.expires_at = token.get("expires_at")
    item.id_token = token.get("id_token")


def expire_token() -> bool:
    item = OAuth2Token.query.filter_by(name="dev", user_id=current_user.id).first()
    if item is None:
        return False
    item.expires_at = int(_bench.expired({})["expires_at"])
    db.session.commit()
    return True


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(_bench.flask_config(settings))
    db.init_app(app)
    login_manager.init_app(app)
    oauth.init_app(app)

    @app.get("/")
    def index() -> str:
        return "ok"

    @app.get("/login/dev")
    def login() -> t.Any:
        return oauth.dev.authorize_redirect(url_for("authorized", _external=True))

    @app.get("/login/dev/authorized")
    def authorized() -> t.Any:
        token = oauth.dev.authorize_access_token()
        claims = token["userinfo"]
        user = User.query.filter_by(sub=claims["sub"]).first()
        if user is None:
            user = User(sub=claims["sub"], name=claims.get("name"))
            db.session.add(user)
            db.session.flush()
        save_token(user, token)
        db.session.commit()
        login_user(user)
        return redirect(url_for("index"))

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
