"""The token model under Flask-Migrate / Alembic: the example app's shipped migration
creates the tables the models describe, and SQLAlchemyStorage works on them."""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

pytest.importorskip("flask_migrate")

from flask_migrate import Migrate  # noqa: E402

from flask_oauthclient.sqla import SQLAlchemyStorage  # noqa: E402
from flask_oauthclient.storage import Identity  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "example_app" / "migrations"


def inspect_tables(url: str) -> dict[str, t.Any]:
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        out: dict[str, t.Any] = {"tables": tables}
        if "o_auth_token" in tables:
            out["columns"] = {c["name"] for c in inspector.get_columns("o_auth_token")}
            out["unique"] = sorted(
                tuple(u["column_names"])
                for u in inspector.get_unique_constraints("o_auth_token")
            )
            out["indexes"] = {
                i["name"]: i["column_names"]
                for i in inspector.get_indexes("o_auth_token")
            }
        if "alembic_version" in tables:
            with engine.connect() as conn:
                out["version"] = conn.execute(
                    sa.text("SELECT version_num FROM alembic_version")
                ).scalar()
        return out
    finally:
        engine.dispose()


def head_revision() -> str:
    (script,) = (MIGRATIONS / "versions").glob("*.py")
    return script.name.split("_", 1)[0]


def check_token_table(found: dict[str, t.Any]) -> None:
    assert {"user", "o_auth_token", "alembic_version"} <= found["tables"]
    assert found["columns"] == {
        "id",
        "user_id",
        "provider",
        "issuer",
        "subject",
        "token",
        "expires_at",
        "created_at",
        "updated_at",
    }
    assert found["unique"] == [
        ("provider", "issuer", "subject"),
        ("provider", "user_id"),
    ]
    assert found["indexes"] == {"ix_o_auth_token_expires_at": ["expires_at"]}
    assert found["version"] == head_revision()


def test_flask_db_upgrade_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    """What a user of the example runs: ``flask --app example_app db upgrade``."""
    database = tmp_path / "fresh.sqlite"
    url = f"sqlite:///{database}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "example_app", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Running upgrade" in result.stderr
    check_token_table(inspect_tables(url))
    # Running it again is a no-op.
    again = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "example_app", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "Running upgrade" not in again.stderr


@pytest.fixture
def migrated_app(tmp_path: Path) -> t.Iterator[Flask]:
    """The example's models on a bare app with no ``create_all``: the migration
    alone makes the schema."""
    from example_app import db

    app = Flask("migrated")
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'migrated.sqlite'}",
    )
    db.init_app(app)
    Migrate(app, db, directory=str(MIGRATIONS))
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def flask_db(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_migration_matches_the_models(migrated_app: Flask) -> None:
    url = migrated_app.config["SQLALCHEMY_DATABASE_URI"]
    flask_db(migrated_app, "upgrade")
    check_token_table(inspect_tables(url))
    # Alembic compares the migrated schema with the models: nothing to generate.
    flask_db(migrated_app, "check")
    flask_db(migrated_app, "downgrade", "base")
    assert inspect_tables(url)["tables"] == {"alembic_version"}


def test_storage_on_the_migrated_schema(migrated_app: Flask) -> None:
    from example_app import db
    from example_app import OAuthToken
    from example_app import User

    flask_db(migrated_app, "upgrade")
    storage = SQLAlchemyStorage(OAuthToken, db.session)
    with migrated_app.app_context():
        alice = User(name="Alice")
        db.session.add(alice)
        db.session.commit()
        identity = Identity("https://idp.example", "alice")
        storage.set("dev", {"access_token": "a"}, user=alice, identity=identity)
        # The upsert relies on the (provider, user_id) constraint of the migration.
        storage.set("dev", {"access_token": "b"}, user=alice)
        assert storage.get("dev", user=alice) == {"access_token": "b"}
        storage.delete("dev", user=alice)
        assert storage.find_user("dev", identity) is alice
