"""The floor: the same work as the other apps, written by hand with no OAuth library,
the least an app can do for it. Whatever an app costs above this is the price of its
OAuth client and token storage.

- Login: state, nonce and a PKCE verifier in the session; the code exchanged on a
  module-level :class:`requests.Session` (keep-alive); the ID token verified with
  PyJWT against the provider's key (discovery and JWKS fetched once) and its nonce
  checked; the user found by (issuer, subject) or created; the token row written;
  one commit; Flask-Login.
- ``GET /api``: Flask-Login loads the user (one query), one SQL query reads that
  user's access token, the same module-level session calls userinfo with it.
- ``GET /bare``: the same call without a user or a database: userinfo with a fixed
  bearer token (``BENCH_FLOOR_TOKEN``), the floor of earlier runs.

Both sessions have ``trust_env`` off, as Flask-OAuthClient's have: with it on,
requests reads the proxy variables and ``~/.netrc`` on every call. PyJWT is imported
by the first login, so a worker that only answers API calls does not load it. No
refresh (the storms leave the floor out), no error pages, no logging: a floor.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import typing as t
from urllib.parse import urlencode

import requests
from flask import abort
from flask import Flask
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask_login import current_user
from flask_login import login_required
from flask_login import login_user
from flask_login import LoginManager
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select
from sqlalchemy import text

from benchmarks.apps import _bench

settings = _bench.Settings()
db = SQLAlchemy()
login_manager = LoginManager()
http = requests.Session()
http.trust_env = False
bare = requests.Session()
bare.trust_env = False
bare.headers["Authorization"] = f"Bearer {settings.floor_token}"


class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_floor_user"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200))


class Token(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_floor_token"
    __table_args__ = (db.UniqueConstraint("issuer", "subject"),)
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.ForeignKey(User.id), nullable=False, unique=True)
    issuer = db.Column(db.String(255), nullable=False)
    subject = db.Column(db.String(255), nullable=False)
    access_token = db.Column(db.String(255), nullable=False)
    refresh_token = db.Column(db.String(255))
    expires_at = db.Column(db.Integer)
    user = db.relationship(User)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


class _Provider:
    """Discovery and the signing keys, fetched once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.metadata: dict[str, t.Any] | None = None
        self.keys: dict[str, t.Any] = {}

    def get(self) -> dict[str, t.Any]:
        if self.metadata is None:
            with self._lock:
                if self.metadata is None:
                    import jwt

                    metadata = http.get(settings.metadata_url, timeout=10).json()
                    jwks = http.get(metadata["jwks_uri"], timeout=10).json()
                    self.keys = {
                        k["kid"]: jwt.PyJWK(k, algorithm="RS256") for k in jwks["keys"]
                    }
                    self.metadata = metadata
        return self.metadata


provider = _Provider()


_ACCESS_TOKEN = text(
    "SELECT access_token FROM bench_floor_token WHERE user_id = :user_id"
)


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(_bench.flask_config(settings))
    db.init_app(app)
    login_manager.init_app(app)

    @app.get("/")
    def index() -> str:
        return "ok"

    @app.get("/login/dev")
    def login() -> t.Any:
        metadata = provider.get()
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        session["oauth"] = {"state": state, "verifier": verifier, "nonce": nonce}
        query = urlencode(
            {
                "response_type": "code",
                "client_id": settings.client_id,
                "redirect_uri": url_for("authorized", _external=True),
                "scope": " ".join(settings.scope),
                "state": state,
                "nonce": nonce,
                "code_challenge": _challenge(verifier),
                "code_challenge_method": "S256",
                "prompt": "consent",
            }
        )
        return redirect(f"{metadata['authorization_endpoint']}?{query}")

    @app.get("/login/dev/authorized")
    def authorized() -> t.Any:
        pending = session.pop("oauth", None)
        if not pending or request.args.get("state") != pending["state"]:
            abort(400)
        metadata = provider.get()
        answer = http.post(
            metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": request.args.get("code", ""),
                "redirect_uri": url_for("authorized", _external=True),
                "code_verifier": pending["verifier"],
            },
            auth=(settings.client_id, settings.client_secret),
            headers={"Accept": "application/json"},
            timeout=10,
        )
        if answer.status_code != 200:
            abort(502)
        import jwt

        token = answer.json()
        id_token = token["id_token"]
        key = provider.keys[jwt.get_unverified_header(id_token)["kid"]]
        claims = jwt.decode(
            id_token,
            key,
            algorithms=["RS256"],
            audience=settings.client_id,
            issuer=metadata["issuer"],
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
        if claims.get("nonce") != pending["nonce"]:
            abort(400)
        row = db.session.scalar(
            select(Token).filter_by(issuer=claims["iss"], subject=claims["sub"])
        )
        if row is None:
            user = User(name=claims.get("name"))
            row = Token(user=user, issuer=claims["iss"], subject=claims["sub"])
            db.session.add(row)
        row.access_token = token["access_token"]
        row.refresh_token = token.get("refresh_token")
        row.expires_at = int(time.time()) + int(token.get("expires_in", 3600))
        db.session.commit()
        login_user(row.user)
        return redirect(url_for("index"))

    @app.get("/api")
    @login_required
    def api() -> t.Any:
        access_token = db.session.execute(
            _ACCESS_TOKEN, {"user_id": current_user.id}
        ).scalar()
        return _bench.userinfo_response(
            http.get(
                settings.userinfo_url,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=10,
            )
        )

    @app.get("/bare")
    def bare_api() -> t.Any:
        return _bench.userinfo_response(bare.get(settings.userinfo_url, timeout=10))

    _bench.install(app)
    return app


def init_db() -> None:
    """Drop and create this app's tables (the runner calls it before serving)."""
    with app.app_context():
        db.drop_all()
        db.create_all()


app = create_app()
