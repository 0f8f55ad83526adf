"""A small site that logs users in with Flask-OAuthClient.

Run it with ``./scripts/run-example`` (or ``python -m example_app`` in the project's
virtual environment). With no credentials it uses the development provider that ships
with Flask-OAuthClient; set ``GOOGLE_CLIENT_ID``/``GOOGLE_CLIENT_SECRET`` or
``GITHUB_CLIENT_ID``/``GITHUB_CLIENT_SECRET`` to add those providers.

``/contacts`` needs a scope the login did not ask for: the first visit sends the
user to the provider to grant it (incremental authorization, see
:mod:`example_app.contacts`).

``flask --app example_app users sync`` reads every user's profile again from the
provider, with that user's token; ``POST /webhooks/<provider>`` does it for one user
(set ``WEBHOOK_SECRET``). See :mod:`example_app.sync`.
"""

from __future__ import annotations

import os
import typing as t

from flask import abort
from flask import Blueprint
from flask import Flask
from flask import render_template
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from flask_oauthclient import OAuth
from flask_oauthclient import Provider
from flask_oauthclient.sqla import OAuthTokenMixin
from flask_oauthclient.sqla import SQLAlchemyStorage

db = SQLAlchemy()
login_manager = LoginManager()
login_manager.login_view = "site.index"
oauth = OAuth()

#: Where the development provider listens unless DEV_PROVIDER_URL says otherwise.
DEFAULT_DEV_PROVIDER_URL = "http://127.0.0.1:5001"
#: The development provider's scope the contacts page needs on top of the login's:
#: asked for when the page is first visited (:mod:`example_app.contacts`).
CONTACTS_SCOPE = "contacts.read"


class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    email = db.Column(db.String(320))
    picture = db.Column(db.String(2048))


class OAuthToken(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
    user_id = db.Column(db.ForeignKey(User.id), nullable=False)
    user = db.relationship(User)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def _register_providers() -> None:
    """Register the providers once, from the environment, before the first app."""
    if "dev" in oauth:
        return
    dev_url = os.environ.get("DEV_PROVIDER_URL", DEFAULT_DEV_PROVIDER_URL).rstrip("/")
    oauth.register(
        "dev",
        title="Development provider",
        client_id=os.environ.get("DEV_CLIENT_ID", "dev-client"),
        client_secret=os.environ.get("DEV_CLIENT_SECRET", "dev-secret"),
        server_metadata_url=f"{dev_url}/.well-known/openid-configuration",
        scope=["openid", "email", "profile", "offline_access"],
        # Not asked for at login; the contacts page asks for it when it needs it.
        optional_scopes=[CONTACTS_SCOPE],
        api_base_url=f"{dev_url}/",
        authorize_params={"prompt": "consent"},
    )
    if os.environ.get("GOOGLE_CLIENT_ID"):
        oauth.register(
            "google",
            client_id=os.environ["GOOGLE_CLIENT_ID"],
            client_secret=os.environ.get("GOOGLE_CLIENT_SECRET"),
        )
    if os.environ.get("GITHUB_CLIENT_ID"):
        oauth.register(
            "github",
            client_id=os.environ["GITHUB_CLIENT_ID"],
            client_secret=os.environ.get("GITHUB_CLIENT_SECRET"),
        )


@oauth.on_login
def find_or_create_user(
    provider: Provider, token: dict[str, t.Any], userinfo: dict[str, t.Any]
) -> User:
    """A returning user is recognized by (issuer, subject), never by email."""
    user: User | None = provider.find_user(userinfo)
    if user is None:
        user = User(name=userinfo.get("name") or userinfo["sub"])
        db.session.add(user)
    user.email = userinfo.get("email") if userinfo.get("email_verified") else None
    user.picture = userinfo.get("picture")
    # Commit before the extension stores the token: the token row refers to the user.
    db.session.commit()
    return user


site = Blueprint("site", __name__)


@site.get("/")
def index() -> str:
    return render_template("index.html", providers=list(oauth))


@site.get("/profile")
@login_required
def profile() -> str:
    linked = [p for p in oauth if p.authorized]
    if not linked:
        abort(404)
    provider = linked[0]
    # An API call with the stored token (refreshed first if it is about to expire).
    claims = provider.userinfo()
    return render_template(
        "profile.html", provider=provider, claims=claims, token=provider.token
    )


def create_app(config: t.Mapping[str, t.Any] | None = None) -> Flask:
    """The app factory."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev: change me in production"),
        SQLALCHEMY_DATABASE_URI=os.environ.get(
            "DATABASE_URL", "sqlite:///example_app.sqlite"
        ),
        # The example runs on plain http on 127.0.0.1 with the development provider.
        OAUTHCLIENT_INSECURE_TRANSPORT=os.environ.get(
            "OAUTHCLIENT_INSECURE_TRANSPORT", "1"
        )
        == "1",
        # The provider's cookies live on the same host (127.0.0.1): keep ours apart.
        SESSION_COOKIE_NAME="example_session",
        # The shared secret of POST /webhooks/<provider>; without it, refused.
        WEBHOOK_SECRET=os.environ.get("WEBHOOK_SECRET"),
    )
    # FLASK_* environment variables, e.g. FLASK_OAUTHCLIENT_REFRESH_LEEWAY=1.
    app.config.from_prefixed_env()
    app.config.update(config or {})
    _register_providers()
    db.init_app(app)
    # `flask --app example_app db upgrade` applies example_app/migrations; batch mode
    # lets later migrations alter tables on SQLite.
    Migrate(
        app,
        db,
        directory=os.path.join(os.path.dirname(__file__), "migrations"),
        render_as_batch=True,
    )
    login_manager.init_app(app)
    oauth.init_app(
        app,
        storage=SQLAlchemyStorage(OAuthToken, db.session, user=lambda: current_user),
    )
    app.register_blueprint(site)
    # Imported once the providers are registered: @oauth.dev.scopes_required
    # checks that the scope was declared.
    from .contacts import contacts

    app.register_blueprint(contacts)
    # Acting for users who are not logged in: `flask users sync` and a webhook.
    from .sync import users_cli
    from .sync import webhooks

    app.cli.add_command(users_cli)
    app.register_blueprint(webhooks)
    with app.app_context():
        db.create_all()
    return app
