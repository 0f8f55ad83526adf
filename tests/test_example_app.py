"""The example app, end to end against the development provider: what a newcomer
sees after ``./scripts/run-example``."""

from __future__ import annotations

import os
import re
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_flow import log_in

from flask_oauthclient.testing import DevProvider


@pytest.fixture(scope="module")
def dev() -> t.Iterator[DevProvider]:
    provider = DevProvider()
    with provider.serve():
        yield provider


@pytest.fixture
def app(dev: DevProvider, tmp_path: Path) -> t.Iterator[Flask]:
    os.environ["DEV_PROVIDER_URL"] = dev.issuer
    try:
        from example_app import create_app

        yield create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'example.sqlite'}",
            }
        )
    finally:
        del os.environ["DEV_PROVIDER_URL"]


def test_home_page_offers_the_development_provider(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'id="login-dev"' in page
    assert "Log in with Development provider" in page


def test_login_profile_logout(client: FlaskClient, dev: DevProvider) -> None:
    r = log_in(client, dev, "newcomer")
    assert r.headers["Location"] == "/profile"
    profile = client.get("/profile").get_data(as_text=True)
    assert 'data-claim="email">newcomer@example.test<' in profile
    assert "Newcomer" in profile
    home = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', home)
    assert csrf is not None
    r = client.post("/logout", data={"csrf_token": csrf.group(1)})
    assert r.status_code == 302
    # Logged out: Flask-Login sends the visitor to the home page to log in.
    r = client.get("/profile")
    assert r.status_code == 302 and r.headers["Location"].startswith("/?next=")


def test_returning_user_is_recognized(
    app: Flask, client: FlaskClient, dev: DevProvider
) -> None:
    from example_app import db
    from example_app import User

    log_in(client, dev, "returning")
    client.post("/logout", data={"csrf_token": _csrf(client)})
    log_in(client, dev, "returning")
    with app.app_context():
        assert db.session.query(User).filter_by(name="Returning").count() == 1


def _csrf(client: FlaskClient) -> str:
    match = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)
    )
    assert match is not None
    return match.group(1)
