"""Flask-Dance, written as its docs recommend for a multi-user app
(docs/multi-user.rst, docs/storages.rst): an ``OAuth2ConsumerBlueprint`` with PKCE
and auto refresh, ``SQLAlchemyStorage`` on an ``OAuthConsumerMixin`` model tied to
``current_user``, and an ``oauth_authorized`` handler that fetches the profile, finds
or creates the user by the provider's user id, and logs them in.

Two changes from the docs' example, both in Flask-Dance's favour: a returning
user's row gets the new token (the example keeps the old one), so that every login
leaves a working token as in the other apps; and ``provider_user_id`` is nullable.
With the docs' ``nullable=False`` every automatic refresh fails, because the storage
saves a refreshed token by deleting the row and inserting one without that column
(singingwolfboy/flask-dance#421, open); the storms would then measure that bug
instead of the refresh itself. Flask-Dance has no OpenID Connect support, so the ID
token is not checked; the profile comes from the userinfo endpoint.
"""

from __future__ import annotations

import os
import typing as t

from flask import Flask
from flask_dance.consumer import OAuth2ConsumerBlueprint
from flask_dance.consumer import oauth_authorized
from flask_dance.consumer.storage.sqla import OAuthConsumerMixin
from flask_dance.consumer.storage.sqla import SQLAlchemyStorage
from flask_login import current_user
from flask_login import login_required
from flask_login import login_user
from flask_login import LoginManager
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy

from benchmarks.apps import _bench

# requests-oauthlib refuses http:// without it (loopback only).
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

settings = _bench.Settings()
db = SQLAlchemy()
login_manager = LoginManager()


class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_dance_user"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200))


class OAuth(OAuthConsumerMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_dance_oauth"
    provider_user_id = db.Column(db.String(256), unique=True)
    user_id = db.Column(db.Integer, db.ForeignKey(User.id), nullable=False)
    user = db.relationship(User)


token_url = f"{settings.provider_url}/token"
blueprint = OAuth2ConsumerBlueprint(
    "dev",
    __name__,
    client_id=settings.client_id,
    client_secret=settings.client_secret,
    base_url=f"{settings.provider_url}/",
    authorization_url=f"{settings.provider_url}/authorize",
    token_url=token_url,
    auto_refresh_url=token_url,
    scope=settings.scope,
    use_pkce=True,
    redirect_to="index",
    storage=SQLAlchemyStorage(
        OAuth, db.session, user=current_user, user_required=False
    ),
)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


@oauth_authorized.connect_via(blueprint)
def logged_in(blueprint: t.Any, token: t.Any) -> bool:
    if not token:
        return False
    response = blueprint.session.get("userinfo")
    if not response.ok:
        return False
    info = response.json()
    oauth = OAuth.query.filter_by(
        provider=blueprint.name, provider_user_id=info["sub"]
    ).first()
    if oauth is None:
        oauth = OAuth(
            provider=blueprint.name, provider_user_id=info["sub"], token=token
        )
    else:
        oauth.token = token
    if oauth.user:
        db.session.commit()
        login_user(oauth.user)
    else:
        user = User(name=info.get("name"))
        oauth.user = user
        db.session.add_all([user, oauth])
        db.session.commit()
        login_user(user)
    # Flask-Dance must not store the token itself: it was stored above.
    return False


def expire_token() -> bool:
    token = blueprint.storage.get(blueprint)
    if token is None:
        return False
    blueprint.storage.set(blueprint, _bench.expired(token))
    return True


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(_bench.flask_config(settings))
    db.init_app(app)
    login_manager.init_app(app)
    app.register_blueprint(blueprint, url_prefix="/login")

    @app.get("/")
    def index() -> str:
        return "ok"

    @app.get("/api")
    @login_required
    def api() -> t.Any:
        return _bench.userinfo_response(blueprint.session.get("userinfo"))

    _bench.install(app, expire_token)
    return app


def init_db() -> None:
    """Drop and create this app's tables (the runner calls it before serving)."""
    with app.app_context():
        db.drop_all()
        db.create_all()


app = create_app()
