from __future__ import annotations

import os

import pytest
from flask import Flask

from flask_oauthclient.testing import DevProvider

#: Set by ``.ci/run``: a test that would skip for want of a service fails instead.
REQUIRE_SERVICES = os.environ.get("FLASK_OAUTHCLIENT_REQUIRE_SERVICES") == "1"
#: A PostgreSQL URL for the storage tests, e.g.
#: ``postgresql+psycopg://postgres@127.0.0.1:5432/test``.
POSTGRES_URL = os.environ.get("FLASK_OAUTHCLIENT_TEST_POSTGRES_URL")
#: A MariaDB (or MySQL) URL for the storage tests, e.g.
#: ``mysql+pymysql://root@127.0.0.1:3306/test``.
MARIADB_URL = os.environ.get("FLASK_OAUTHCLIENT_TEST_MARIADB_URL")

#: The ``database_url`` variants, by name.
DATABASES = ("sqlite", "postgresql", "mariadb")


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs a missing service, or fail it when CI requires every
    service to be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (FLASK_OAUTHCLIENT_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def postgres_url() -> str:
    """:data:`POSTGRES_URL`, or skip (fail under CI) when it is not set."""
    if not POSTGRES_URL:
        skip_or_fail(
            "PostgreSQL tests need FLASK_OAUTHCLIENT_TEST_POSTGRES_URL, e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    return POSTGRES_URL  # type: ignore[return-value]


def mariadb_url() -> str:
    """:data:`MARIADB_URL`, or skip (fail under CI) when it is not set."""
    if not MARIADB_URL:
        skip_or_fail(
            "MariaDB tests need FLASK_OAUTHCLIENT_TEST_MARIADB_URL, e.g. "
            "mysql+pymysql://root@127.0.0.1:3306/test"
        )
    return MARIADB_URL  # type: ignore[return-value]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Runs a test once on SQLite (a file, so several connections share it), once on
    PostgreSQL and once on MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    if request.param == "mariadb":
        return mariadb_url()
    return postgres_url()


@pytest.fixture
def dev(oauth_dev_provider: DevProvider) -> DevProvider:
    """The development provider served for the whole test session, through our own
    pytest plugin's fixture."""
    return oauth_dev_provider


@pytest.fixture
def app() -> Flask:
    app = Flask("test_app")
    app.config.update(TESTING=True, SECRET_KEY="test secret key")
    return app


@pytest.fixture
def app_ctx(app: Flask):
    with app.app_context() as ctx:
        yield ctx
