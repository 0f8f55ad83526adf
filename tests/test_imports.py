"""What importing the package, ``init_app`` and a request load: a worker that only
answers API calls carries no module that only a login, an ID token, the CLI,
another database or a rarely used API needs. Each test runs a fresh interpreter
with the quick start's app (``SQLAlchemyStorage`` on SQLite, Flask-Login, a
provider found by discovery) and reads its ``sys.modules``; each absence checked
here is matched by a test showing that using the feature does load the module, so
that a misspelt name or a module that moved cannot make a check pass for nothing.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent

#: The quick start's app, with an in-process provider (a requests adapter) that
#: answers discovery, the token endpoint and an API, and ``stage(name)``, which
#: records the modules loaded so far. The ``id_token`` the token endpoint returns
#: with a refreshed token is ``REFRESH_ID_TOKEN``.
APP = """
import io
import json
import sys
import time

import requests
from flask import Flask
from flask import jsonify
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from requests.adapters import BaseAdapter

STAGES = {}


def stage(name):
    STAGES[name] = sorted(sys.modules)


stage("base")

from flask_oauthclient import OAuth
from flask_oauthclient.sqla import OAuthTokenMixin
from flask_oauthclient.sqla import SQLAlchemyStorage

stage("import")

ISSUER = "https://idp.example"
REFRESH_ID_TOKEN = None


def response(request, body, status=200):
    r = requests.Response()
    r.status_code = status
    r.raw = io.BytesIO(json.dumps(body).encode())
    r.headers["Content-Type"] = "application/json"
    r.encoding = "utf-8"
    r.request = request
    r.url = request.url
    return r


class IdP(BaseAdapter):
    def send(self, request, **kwargs):
        path = request.url[len(ISSUER):].split("?")[0]
        if path == "/.well-known/openid-configuration":
            return response(request, {
                "issuer": ISSUER,
                "authorization_endpoint": ISSUER + "/authorize",
                "token_endpoint": ISSUER + "/token",
                "userinfo_endpoint": ISSUER + "/userinfo",
                "jwks_uri": ISSUER + "/jwks",
            })
        if path == "/token":
            body = {"access_token": "a2", "token_type": "Bearer",
                    "expires_in": 3600, "refresh_token": "r2"}
            if REFRESH_ID_TOKEN:
                body["id_token"] = REFRESH_ID_TOKEN
            return response(request, body)
        if path == "/api/me":
            return response(request, {"token": request.headers["Authorization"]})
        return response(request, {"error": "not_found"}, 404)

    def close(self):
        pass


db = SQLAlchemy()
login_manager = LoginManager()
oauth = OAuth()
oauth.register(
    "corp",
    client_id="client-1",
    client_secret="secret-1",
    server_metadata_url=ISSUER + "/.well-known/openid-configuration",
    scope=["openid", "email"],
    api_base_url=ISSUER + "/api/",
)


class User(UserMixin, db.Model):
    id = db.Column(db.Integer, primary_key=True)


class OAuthToken(OAuthTokenMixin, db.Model):
    user_id = db.Column(db.ForeignKey(User.id), nullable=False)


@login_manager.user_loader
def load_user(user_id):
    return db.session.get(User, int(user_id))


app = Flask("imports_app")
app.config.update(SECRET_KEY="k", SQLALCHEMY_DATABASE_URI=DATABASE_URL, **CONFIG)
db.init_app(app)
login_manager.init_app(app)
storage = SQLAlchemyStorage(OAuthToken, db.session, user=lambda: current_user)
oauth.init_app(app, storage=storage)
ap = app.extensions["oauthclient"].providers["corp"]
ap.adapter = IdP()
ap.http.mount("https://", ap.adapter)


@app.get("/api")
@login_required
def api():
    return jsonify(oauth.corp.get("me").json())


stage("init_app")

client = app.test_client()
with client.session_transaction() as session:
    session["_user_id"] = "1"
    session["_fresh"] = True


def call_api():
    reply = client.get("/api")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.get_json()
"""

#: Run once, in a process of its own, before a test's: the tables, user 1 and
#: their token, as the worker that handled the login left them.
SETUP = """
with app.app_context():
    db.create_all()
    user = User(id=1)
    db.session.add(user)
    db.session.commit()
    storage.set(
        "corp",
        {"access_token": "a1", "token_type": "Bearer", "refresh_token": "r1",
         "expires_at": time.time() + EXPIRES_IN, "scope": "openid email"},
        user=user,
    )
"""

#: What only a refresh or a token write needs (the refresh machinery, its locks).
FOR_REFRESHES = [
    "flask_oauthclient.refresh",
    "flask_oauthclient.locks",
    "flask_oauthclient.sqla.locking",
]

#: What only a login, an ID token, the CLI, another database, a rare API or a
#: refresh needs.
NOT_FOR_API_CALLS = [
    *FOR_REFRESHES,
    "jwt",
    "cryptography",
    "sqlalchemy.dialects.mysql",
    "sqlalchemy.dialects.postgresql",
    "flask_oauthclient.cli",
    "flask_oauthclient.testing",
    "flask_oauthclient.oidc",
    "flask_oauthclient.login",
    "flask_oauthclient.flow",
    "flask_oauthclient.form_post",
    "flask_oauthclient.scopes",
    "flask_oauthclient.linking",
    "flask_oauthclient.revocation",
    "flask_oauthclient.app_token",
    "flask_oauthclient.storage.session",
    "flask_oauthclient.storage.memory",
    "flask_oauthclient.sqla.reencrypt",
    "flask_oauthclient.cipher",
]


def loaded(modules: t.Iterable[str], *names: str) -> list[str]:
    """Those of ``names`` that are loaded: the module or any module under it."""
    modules = list(modules)
    return [
        name
        for name in names
        if any(m == name or m.startswith(name + ".") for m in modules)
    ]


def run(
    tmp_path: Path,
    code: str,
    *,
    expires_in: int = 3600,
    config: dict[str, t.Any] | None = None,
) -> dict[str, list[str]]:
    """Set the database up, then run :data:`APP` (with ``config`` added to the app's
    config) and ``code`` in a fresh interpreter; return the modules loaded at each
    ``stage``."""
    database_url = f"sqlite:///{tmp_path / 'imports.sqlite'}"
    prelude = (
        f"DATABASE_URL = {database_url!r}\nEXPIRES_IN = {expires_in!r}\n"
        f"CONFIG = {config or {}!r}\n"
    )
    _python(prelude + APP + SETUP)
    out = _python(prelude + APP + textwrap.dedent(code) + "\nprint(json.dumps(STAGES))")
    return t.cast("dict[str, list[str]]", json.loads(out.splitlines()[-1]))


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- what a worker that answers API calls carries ------------------------------------


def test_import_init_app_and_api_calls_load_nothing_they_do_not_need(
    tmp_path: Path,
) -> None:
    stages = run(
        tmp_path,
        """
        assert call_api() == {"token": "Bearer a1"}
        stage("api call")
        call_api()
        stage("second api call")
        """,
    )
    for name in ("import", "init_app", "api call", "second api call"):
        assert loaded(stages[name], *NOT_FOR_API_CALLS) == [], name
    # The first call loaded what every call needs, and nothing else is loaded later.
    assert stages["second api call"] == stages["api call"]


def test_a_refresh_without_id_token_loads_neither_pyjwt_nor_a_login(
    tmp_path: Path,
) -> None:
    """The token endpoint comes from discovery; the refreshed token has no ID token,
    so nothing checks one."""
    stages = run(
        tmp_path,
        """
        assert call_api() == {"token": "Bearer a2"}
        stage("refresh")
        """,
        expires_in=-600,
    )
    modules = stages["refresh"]
    assert loaded(modules, *FOR_REFRESHES) == FOR_REFRESHES
    assert loaded(modules, "flask_oauthclient.oidc") == ["flask_oauthclient.oidc"]
    assert loaded(modules, "jwt", "cryptography") == []
    assert loaded(modules, "flask_oauthclient.login", "flask_oauthclient.flow") == []


# -- and that using each feature does load its modules -------------------------------


def test_an_id_token_loads_pyjwt_and_cryptography(tmp_path: Path) -> None:
    stages = run(
        tmp_path,
        """
        REFRESH_ID_TOKEN = "not.a.jwt"
        reply = client.get("/api")  # refused: the refreshed ID token is malformed
        assert reply.status_code == 502, reply.status_code
        stage("refresh with an id token")
        """,
        expires_in=-600,
    )
    modules = stages["refresh with an id token"]
    assert loaded(modules, "jwt", "cryptography") == ["jwt", "cryptography"]


def test_a_login_loads_the_login_modules(tmp_path: Path) -> None:
    stages = run(
        tmp_path,
        """
        reply = client.get("/login/corp", base_url="https://localhost")
        assert reply.status_code == 302, reply.status_code
        assert reply.location.startswith(ISSUER + "/authorize?")
        stage("login")
        """,
    )
    modules = stages["login"]
    login = ["flask_oauthclient.login", "flask_oauthclient.flow"]
    assert loaded(modules, *login) == login
    # Sending the user to the provider checks no ID token yet.
    assert loaded(modules, "jwt", "cryptography") == []


def test_rarely_used_apis_load_their_modules(tmp_path: Path) -> None:
    stages = run(
        tmp_path,
        """
        with app.test_request_context():
            oauth.corp.for_app()
            oauth.corp.has_scopes("email")
            oauth.corp.title
        import flask_oauthclient
        flask_oauthclient.SessionStorage
        flask_oauthclient.MemoryStorage
        stage("used")
        """,
    )
    names = [
        "flask_oauthclient.app_token",
        "flask_oauthclient.scopes",
        "flask_oauthclient.linking",
        "flask_oauthclient.storage.session",
        "flask_oauthclient.storage.memory",
    ]
    assert loaded(stages["used"], *names) == names


def test_encryption_keys_load_the_cipher(tmp_path: Path) -> None:
    """An app that encrypts its tokens loads the Fernet cipher at ``init_app``; its
    API calls read the token stored encrypted."""
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    stages = run(
        tmp_path,
        """
        with app.app_context():
            stored = db.session.execute(db.select(OAuthToken.token)).scalar_one()
        assert list(stored) == ["enc"], stored
        assert call_api() == {"token": "Bearer a1"}
        stage("api call")
        """,
        config={"OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS": key},
    )
    cipher = "flask_oauthclient.cipher"
    assert loaded(stages["import"], cipher) == []
    assert loaded(stages["init_app"], cipher) == [cipher]


def test_the_cli_loads_its_commands(tmp_path: Path) -> None:
    stages = run(
        tmp_path,
        """
        result = app.test_cli_runner().invoke(args=["oauth", "--help"])
        assert result.exit_code == 0, result.output
        assert "providers" in result.output, result.output
        stage("cli")
        """,
    )
    assert loaded(stages["init_app"], "flask_oauthclient.cli") == []
    assert loaded(stages["cli"], "flask_oauthclient.cli") == ["flask_oauthclient.cli"]
    # Without encryption keys, the CLI has no cipher to load either.
    assert loaded(stages["cli"], "flask_oauthclient.cipher") == []


def test_an_engine_loads_its_own_dialect_only(tmp_path: Path) -> None:
    stages = run(
        tmp_path,
        """
        import sqlalchemy as sa

        with app.app_context():
            token = {"access_token": "a3", "token_type": "Bearer"}
            storage.set("corp", token, user=db.session.get(User, 1))
        stage("sqlite write")
        ddl = str(sa.schema.CreateTable(OAuthToken.__table__).compile(
            sa.create_engine("mysql+pymysql://")
        ))
        assert ddl.count("DATETIME(6)") == 3, ddl
        stage("mysql")
        sa.create_engine("postgresql+psycopg://")
        stage("postgresql")
        """,
    )
    mysql, postgresql = "sqlalchemy.dialects.mysql", "sqlalchemy.dialects.postgresql"
    assert loaded(stages["sqlite write"], mysql, postgresql) == []
    assert loaded(stages["mysql"], mysql, postgresql) == [mysql]
    assert loaded(stages["postgresql"], postgresql) == [postgresql]


# -- the MySQL timestamps, without the MySQL dialect ---------------------------------


def _timestamps() -> tuple[sa.types.TypeEngine[t.Any], sa.types.TypeEngine[t.Any]]:
    """The mixin's timestamp type, and the one it stands for."""
    from sqlalchemy.dialects import mysql

    from flask_oauthclient.sqla import OAuthTokenMixin

    ours = OAuthTokenMixin.__dict__["created_at"].column.type
    real = sa.DateTime(timezone=True).with_variant(
        mysql.DATETIME(timezone=True, fsp=6), "mysql", "mariadb"
    )
    return ours, real


@pytest.mark.parametrize("url", ["mysql+pymysql://", "mariadb+pymysql://"])
def test_mysql_timestamps_compile_as_the_dialect_type(url: str) -> None:
    ours, real = _timestamps()
    dialect = sa.create_engine(url).dialect
    column = sa.Column("at", ours)
    assert (
        str(sa.schema.CreateColumn(column).compile(dialect=dialect)) == "at DATETIME(6)"
    )
    assert ours.compile(dialect=dialect) == real.compile(dialect=dialect)
    impl, real_impl = ours.dialect_impl(dialect), real.dialect_impl(dialect)
    assert impl.bind_processor(dialect) is real_impl.bind_processor(dialect) is None
    assert impl.result_processor(dialect, None) is None
    assert real_impl.result_processor(dialect, None) is None


def test_mysql_timestamps_render_in_alembic_as_the_dialect_type() -> None:
    pytest.importorskip("alembic")
    from alembic.autogenerate import render
    from alembic.autogenerate.api import AutogenContext
    from alembic.migration import MigrationContext

    rendered = []
    for type_ in _timestamps():
        context = MigrationContext.configure(
            dialect_name="mysql",
            opts={
                "sqlalchemy_module_prefix": "sa.",
                "alembic_module_prefix": "op.",
                "user_module_prefix": None,
            },
        )
        autogen = AutogenContext(context)
        rendered.append((render._repr_type(type_, autogen), autogen.imports))
    assert rendered[0] == rendered[1]
    assert "mysql.DATETIME(timezone=True, fsp=6)" in rendered[0][0]


def test_mysql_timestamps_pickle_as_the_dialect_type() -> None:
    from sqlalchemy.dialects import mysql

    ours, _ = _timestamps()
    copied = pickle.loads(pickle.dumps(ours))
    variant = copied._variant_mapping["mysql"]
    assert type(variant) is mysql.DATETIME
    assert (variant.timezone, variant.fsp) == (True, 6)
