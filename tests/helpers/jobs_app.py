"""The app of ``test_jobs.py``: users log in through the development provider, their
tokens live in PostgreSQL (``SQLAlchemyStorage``), views call the provider's
``/api/`` for the logged-in user, and Celery tasks, run by a real worker process
on the Redis broker, call it for any user with ``oauth.dev.for_user(user)``.

The worker runs ``celery -A helpers.jobs_app worker``; it builds the Flask app on
its first task, from the environment: ``JOBS_PROVIDER_URL`` (the development
provider), ``JOBS_DATABASE_URL``, and ``JOBS_BROKER_URL`` (default
``redis://127.0.0.1:6379/0``) for the broker and the results. The test process
builds the same app with :func:`create_app` and sends tasks with :func:`send`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import typing as t

import sqlalchemy as sa
from celery import Celery
from flask import current_app
from flask import Flask
from flask import jsonify
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy

from flask_oauthclient import OAuth
from flask_oauthclient import Provider
from flask_oauthclient import ReauthorizationRequired
from flask_oauthclient import TokenError
from flask_oauthclient import TokenMissing
from flask_oauthclient.sqla import OAuthTokenMixin
from flask_oauthclient.sqla import SQLAlchemyStorage

BROKER_URL = os.environ.get("JOBS_BROKER_URL", "redis://127.0.0.1:6379/0")

db = SQLAlchemy()


class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "jobs_user"
    id = db.Column(db.Integer, primary_key=True)
    #: The user's ``sub`` at the development provider (its user name).
    name = db.Column(db.String(200), nullable=False, unique=True)


class OAuthToken(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "jobs_oauth_token"
    user_id = db.Column(db.ForeignKey(User.id), nullable=False)
    user = db.relationship(User)


def digest(value: str) -> str:
    """A short digest of a token, for comparing tokens without showing them."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def oauth_of(app: Flask) -> OAuth:
    return t.cast(OAuth, app.extensions["jobs_oauth"])


def create_app(provider_url: str, database_url: str) -> Flask:
    provider_url = provider_url.rstrip("/")
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="jobs test secret key",
        SQLALCHEMY_DATABASE_URI=database_url,
        OAUTHCLIENT_INSECURE_TRANSPORT=True,
        SESSION_COOKIE_NAME="jobs_session",
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 20},
    )
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
        api_base_url=f"{provider_url}/api/",
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
    app.extensions["jobs_oauth"] = oauth

    @app.get("/whoami")
    @login_required
    def whoami() -> ResponseReturnValue:
        """The current user's call; with ``?at=<epoch seconds>``, made at that time
        (so that it meets the worker's calls)."""
        from flask import request

        _sleep_until(request.args.get("at", 0.0, type=float))
        started = time.time()
        response = oauth.dev.get("whoami")
        token = oauth.dev.token or {}
        return jsonify(
            started=started,
            ended=time.time(),
            status=response.status_code,
            sub=response.json().get("sub") if response.ok else None,
            access_token=digest(token.get("access_token", "")),
        )

    with app.app_context():
        db.create_all()
    return app


def _sleep_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)


# -- the worker's side ----------------------------------------------------------------

celery = Celery("jobs_app", broker=BROKER_URL, backend=BROKER_URL)
celery.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    result_expires=600,
)

_app: Flask | None = None
_app_lock = threading.Lock()


def worker_app() -> Flask:
    """The worker's Flask app, built on its first task."""
    global _app
    with _app_lock:
        if _app is None:
            _app = create_app(
                os.environ["JOBS_PROVIDER_URL"], os.environ["JOBS_DATABASE_URL"]
            )
        return _app


@celery.task(name="jobs.call_api")  # type: ignore[untyped-decorator]
def call_api(user_id: int, at: float = 0.0) -> dict[str, t.Any]:
    """Call the provider's API for one user at time ``at``: whom the provider saw,
    and the access token the call used."""
    app = worker_app()
    with app.app_context():
        user = db.session.get(User, user_id)
        client = oauth_of(app).dev.for_user(user)
        _sleep_until(at)
        started = time.time()
        try:
            response = client.get("whoami")
        except TokenError as e:
            return {"error": type(e).__name__, "message": str(e)}
        token = client.token or {}
        return {
            "started": started,
            "ended": time.time(),
            "status": response.status_code,
            "sub": response.json().get("sub") if response.ok else None,
            "access_token": digest(token.get("access_token", "")),
            "pid": os.getpid(),
        }


@celery.task(name="jobs.sync_all")  # type: ignore[untyped-decorator]
def sync_all() -> list[dict[str, t.Any]]:
    """The nightly job: for every user with a stored token, one API call in that
    user's name, in one app context. A user who must log in again is reported, and
    the loop goes on."""
    app = worker_app()
    done: list[dict[str, t.Any]] = []
    with app.app_context():
        oauth = oauth_of(current_app)
        users = db.session.scalars(
            sa.select(User)
            .join(OAuthToken)
            .where(OAuthToken.provider == "dev", OAuthToken.token.is_not(None))
            .order_by(User.id)
        )
        for user in users:
            try:
                response = oauth.dev.for_user(user).get(f"sync/{user.name}")
            except ReauthorizationRequired:
                # The user revoked the app (their token was removed): ask them to
                # log in again, by email say.
                done.append({"user": user.name, "error": "must log in again"})
                continue
            except TokenMissing:
                done.append({"user": user.name, "error": "no token"})
                continue
            body = response.json()
            done.append({"user": user.name, "sub": body["sub"], "path": body["path"]})
    return done


def send(name: str, *args: t.Any, queue: str) -> t.Any:
    """Send task ``name`` to ``queue``; returns its ``AsyncResult``."""
    return celery.send_task(name, args=args, queue=queue)
