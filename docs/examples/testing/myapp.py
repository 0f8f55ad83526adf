"""A small app: log in with GitHub, list the user's repositories."""

from __future__ import annotations

import typing as t

from flask import Blueprint
from flask import Flask
from flask import jsonify
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy

from flask_oauthclient import OAuth
from flask_oauthclient.sqla import OAuthTokenMixin
from flask_oauthclient.sqla import SQLAlchemyStorage

db = SQLAlchemy()
login_manager = LoginManager()
oauth = OAuth()
oauth.register("github")  # OAUTHCLIENT_GITHUB_CLIENT_ID / _SECRET in the config
bp = Blueprint("site", __name__)


class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False)


class OAuthToken(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
    user_id = db.Column(db.ForeignKey(User.id), nullable=False)
    user = db.relationship(User)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


@oauth.on_login
def find_or_create_user(provider: t.Any, token: t.Any, userinfo: t.Any) -> User:
    user: User | None = provider.find_user(userinfo)
    if user is None:
        user = User(name=userinfo.get("name") or userinfo["sub"])
        db.session.add(user)
        db.session.commit()
    return user


@bp.get("/repos")
@login_required
def repos() -> t.Any:
    response = oauth.github.get("user/repos", params={"sort": "updated"})
    if not response.ok:
        return {"error": "GitHub is not answering, try again later"}, 502
    return jsonify([repo["full_name"] for repo in response.json()])


def create_app(config: t.Mapping[str, t.Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY="change me", SQLALCHEMY_DATABASE_URI="sqlite:///myapp.sqlite"
    )
    app.config.from_mapping(config or {})
    db.init_app(app)
    login_manager.init_app(app)
    oauth.init_app(
        app,
        storage=SQLAlchemyStorage(OAuthToken, db.session, user=lambda: current_user),
    )
    app.register_blueprint(bp)
    with app.app_context():
        db.create_all()
    return app
