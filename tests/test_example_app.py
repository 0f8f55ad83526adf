"""The example app, end to end against the development provider: what a newcomer
sees after ``./scripts/run-example``."""

from __future__ import annotations

import os
import re
import typing as t
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from test_flow import log_in

from flask_oauthclient.testing import DevProvider


@pytest.fixture
def app(dev: DevProvider, tmp_path: Path) -> t.Iterator[Flask]:
    os.environ["DEV_PROVIDER_URL"] = dev.issuer
    try:
        from example_app import create_app
        from example_app import db

        app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'example.sqlite'}",
            }
        )
        yield app
        with app.app_context():
            # Close the pooled connections (Python 3.13 warns about unclosed ones).
            db.engine.dispose()
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


def test_contacts_page_asks_for_its_scope_then_shows(
    app: Flask, client: FlaskClient, dev: DevProvider
) -> None:
    """``/contacts`` needs ``contacts.read``, which the login did not ask for: the
    first visit sends the user to the provider for it (on top of the granted
    scopes), and after granting the page is built with a token carrying both."""
    from example_app import CONTACTS_SCOPE
    from example_app import db
    from example_app import OAuthToken

    log_in(client, dev, "contactful")
    assert 'id="nav-contacts" href="/contacts"' in client.get("/").get_data(
        as_text=True
    )
    r = client.get("/contacts")
    assert r.status_code == 302
    ask = urlsplit(r.headers["Location"])
    assert ask.path == "/login/dev"
    assert parse_qs(ask.query) == {"scope": [CONTACTS_SCOPE], "next": ["/contacts"]}
    r = client.get(r.headers["Location"])
    assert r.status_code == 302
    authorize = urlsplit(r.headers["Location"])
    assert r.headers["Location"].startswith(f"{dev.issuer}/authorize?")
    asked = parse_qs(authorize.query)["scope"][0].split()
    assert set(asked) == {"openid", "email", "profile", "offline_access"} | {
        CONTACTS_SCOPE
    }
    dev.auto_login = "contactful"
    try:
        granted = requests.get(r.headers["Location"], allow_redirects=False, timeout=5)
    finally:
        dev.auto_login = None
    assert granted.status_code in (302, 303), granted.text
    back = urlsplit(granted.headers["Location"])
    r = client.get(f"{back.path}?{back.query}")
    assert (r.status_code, r.headers["Location"]) == (302, "/contacts")
    page = client.get("/contacts")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-api="sub">contactful<' in html
    api_scope = re.search(r'data-api="scope">([^<]*)<', html)
    assert api_scope is not None
    assert {"openid", CONTACTS_SCOPE} <= set(api_scope.group(1).split())
    with app.app_context():
        row = db.session.query(OAuthToken).filter_by(subject="contactful").one()
        scope = row.token["scope"]
        scopes = scope.split() if isinstance(scope, str) else scope
        assert {"openid", "email", "profile", CONTACTS_SCOPE} <= set(scopes)
        # One row: the wider token replaced the login's, for the same user.
        assert (
            db.session.query(OAuthToken)
            .filter_by(provider="dev")
            .filter(OAuthToken.user_id == row.user_id)
            .count()
            == 1
        )


def _csrf(client: FlaskClient) -> str:
    match = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)
    )
    assert match is not None
    return match.group(1)


def test_the_readme_example_command_serves_a_working_site(tmp_path: Path) -> None:
    """``./scripts/run-example`` runs ``python -m example_app``: the site and the
    development provider both stay up, and a login goes through."""
    import socket
    import subprocess
    import sys
    import time
    from urllib.parse import urljoin

    import requests

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    port, provider_port = free_port(), free_port()
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite'}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "example_app", "--port", str(port)]
        + ["--provider-port", str(provider_port)],
        cwd=Path(__file__).parent.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        http = requests.Session()
        deadline = time.monotonic() + 20
        while True:
            try:
                http.get(base + "/", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, "the example app exited"
                assert time.monotonic() < deadline, "the example app never answered"
                time.sleep(0.1)
        page = http.get(base + "/login/dev?next=/profile", timeout=5)
        assert page.url.startswith(f"http://127.0.0.1:{provider_port}/authorize")
        fields = dict(
            re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text)
        )
        fields["username"] = "readme"
        action = re.search(r'<form[^>]*action="([^"]*)"', page.text)
        target = urljoin(page.url, action.group(1) if action else "")
        profile = http.post(target, data=fields, timeout=10)
        assert profile.url == base + "/profile"
        assert "readme@example.test" in profile.text
    finally:
        proc.terminate()
        proc.wait(10)
