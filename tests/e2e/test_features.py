"""Login features in a real browser against a real OpenID provider (panva's
``oidc-provider``), with a small app (``feature_app.py``) that registers one
provider per feature:

- ``fp``: ``response_mode="form_post"``, at a client the provider allows only
  ``form_post``. The provider is on ``localhost`` and the app on ``127.0.0.1``:
  two sites, so the provider's POST is cross-site and the app's ``SameSite=Lax``
  session cookie does not go with it.
- ``pkjwt``: ``token_endpoint_auth_method="private_key_jwt"``, at a client the
  provider knows by its public key; ``badkey``: the same client with another
  private key, which the provider refuses. ``csjwt``: ``client_secret_jwt``.
- ``inc``: ``optional_scopes=["calendar"]``, a scope the provider offers besides
  the login's, asked for later (incremental authorization).

Fixtures and requirements: conftest.py in this folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from .conftest import ACCESS_TOKEN_TTL
from .conftest import ARTIFACTS
from .conftest import free_port
from .conftest import HERE
from .conftest import REFRESH_LEEWAY
from .conftest import Server
from .conftest import start_provider

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        r"ignore:Session-scoped fixtures defined as instance methods are deprecated"
        r"[\s\S]*'base_url':pytest.PytestDeprecationWarning"
    ),
]

REPO = HERE.parent.parent
FP_CLIENT = "e2e-form-post"
FP_SECRET = "e2e-form-post-secret"
PKJWT_CLIENT = "e2e-pkjwt"
CSJWT_CLIENT = "e2e-csjwt"
CSJWT_SECRET = "e2e-client-secret-jwt-secret-of-48-characters-long"
INC_CLIENT = "e2e-incremental"
INC_SECRET = "e2e-incremental-secret"


def expect(locator: t.Any) -> t.Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@dataclass
class Features:
    issuer: str
    app_url: str
    provider_log: Path
    app_log: Path
    #: The same app with Flask's default session cookie (no SameSite attribute),
    #: ``fp`` only.
    default_app_url: str

    def state(self) -> dict[str, t.Any]:
        r = requests.get(f"{self.app_url}/state", timeout=5)
        r.raise_for_status()
        return t.cast(dict[str, t.Any], r.json())

    def tokens(self, provider: str) -> dict[str, dict[str, t.Any]]:
        return t.cast(dict[str, dict[str, t.Any]], self.state()["tokens"][provider])


@pytest.fixture(scope="module")
def features(e2e_ready: None) -> t.Iterator[Features]:
    """The provider on ``localhost`` and the feature app on ``127.0.0.1``."""
    op_port, app_port, default_port = free_port(), free_port(), free_port()
    issuer = f"http://localhost:{op_port}"
    app_url = f"http://127.0.0.1:{app_port}"
    default_url = f"http://127.0.0.1:{default_port}"
    clients = [
        {
            "client_id": FP_CLIENT,
            "client_secret": FP_SECRET,
            "redirect_uris": [
                f"{app_url}/login/fp/authorized",
                f"{default_url}/login/fp/authorized",
            ],
            "response_modes": ["form_post"],
        },
    ]
    key, wrong_key = _rsa_key(), _rsa_key()
    clients += [
        {
            "client_id": PKJWT_CLIENT,
            "redirect_uris": [
                f"{app_url}/login/pkjwt/authorized",
                f"{app_url}/login/badkey/authorized",
            ],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [_public_jwk(key, "e2e-key-1")]},
        },
        {
            "client_id": CSJWT_CLIENT,
            "client_secret": CSJWT_SECRET,
            "redirect_uris": [f"{app_url}/login/csjwt/authorized"],
            "token_endpoint_auth_method": "client_secret_jwt",
        },
        {
            "client_id": INC_CLIENT,
            "client_secret": INC_SECRET,
            "redirect_uris": [f"{app_url}/login/inc/authorized"],
        },
    ]
    providers = {
        "fp": {
            "client_id": FP_CLIENT,
            "client_secret": FP_SECRET,
            "response_mode": "form_post",
        },
        "pkjwt": {
            "client_id": PKJWT_CLIENT,
            "token_endpoint_auth_method": "private_key_jwt",
            "client_private_key": _pem(key),
            "client_key_id": "e2e-key-1",
        },
        "badkey": {
            "client_id": PKJWT_CLIENT,
            "token_endpoint_auth_method": "private_key_jwt",
            "client_private_key": _pem(wrong_key),
            "client_key_id": "e2e-key-1",
        },
        "csjwt": {
            "client_id": CSJWT_CLIENT,
            "client_secret": CSJWT_SECRET,
            "token_endpoint_auth_method": "client_secret_jwt",
        },
        "inc": {
            "client_id": INC_CLIENT,
            "client_secret": INC_SECRET,
            "optional_scopes": ["calendar"],
        },
    }
    servers: list[Server] = []
    try:
        provider = start_provider(
            "features-provider",
            op_port,
            issuer,
            OP_REDIRECT_URIS=f"{app_url}/unused",
            OP_ACCESS_TOKEN_TTL=str(ACCESS_TOKEN_TTL),
            OP_EXTRA_CLIENTS=_json(clients),
            OP_EXTRA_SCOPES="calendar",
        )
        servers.append(provider)
        app = Server(
            "features-app",
            [sys.executable, str(HERE / "feature_app.py"), str(app_port)],
            app_port,
            cwd=REPO,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "FEATURE_ISSUER": issuer,
                "FEATURE_PROVIDERS": _json(providers),
                "SECRET_KEY": "e2e feature secret key",
                "SESSION_COOKIE_SAMESITE": "Lax",
                "E2E_REFRESH_LEEWAY": str(REFRESH_LEEWAY),
            },
        )
        servers.append(app)
        default_app = Server(
            "features-app-default-cookie",
            [sys.executable, str(HERE / "feature_app.py"), str(default_port)],
            default_port,
            cwd=REPO,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "FEATURE_ISSUER": issuer,
                "FEATURE_PROVIDERS": _json({"fp": providers["fp"]}),
                "SECRET_KEY": "e2e feature secret key",
                "SESSION_COOKIE_SAMESITE": "",
            },
        )
        servers.append(default_app)
        app.wait(f"{app_url}/")
        default_app.wait(f"{default_url}/")
        yield Features(issuer, app_url, provider.log, app.log, default_url)
    finally:
        for server in reversed(servers):
            server.stop()


def _json(value: t.Any) -> str:
    return json.dumps(value)


def _rsa_key() -> t.Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: t.Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return t.cast(
        str,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def _public_jwk(key: t.Any, kid: str) -> dict[str, t.Any]:
    from jwt.algorithms import RSAAlgorithm

    jwk = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def sign_in_at_provider(page: t.Any, features: Features, login: str) -> None:
    """The provider's own sign-in and consent pages."""
    page.wait_for_url(re.compile(re.escape(features.issuer) + r"/interaction/"))
    expect(page.locator("h1")).to_contain_text("Sign-in")
    page.fill('input[name="login"]', login)
    page.fill('input[name="password"]', "any password")
    page.get_by_role("button", name="Sign-in").click()
    expect(page.locator("h1")).to_contain_text("Authorize")
    page.get_by_role("button", name="Continue").click()


def log_in(page: t.Any, features: Features, provider: str, login: str) -> None:
    page.goto(features.app_url + "/")
    page.click(f"#login-{provider}")
    sign_in_at_provider(page, features, login)
    page.wait_for_url(f"{features.app_url}/profile/{provider}")
    expect(page.locator('td[data-claim="sub"]')).to_have_text(login)


# ------------------------------------------------------------------ form_post


def test_form_post_login_with_a_lax_session_cookie(
    ui: t.Any, features: Features
) -> None:
    authorize_requests: list[str] = []
    ui.on(
        "request",
        lambda r: authorize_requests.append(r.url) if "/auth?" in r.url else None,
    )
    log_in(ui, features, "fp", "fiona")
    assert any("response_mode=form_post" in url for url in authorize_requests)
    expect(ui.locator('td[data-claim="email"]')).to_have_text("fiona@example.test")

    state = features.state()
    assert list(state["tokens"]["fp"]) == ["fp:fiona"]
    assert state["tokens"]["fp"]["fp:fiona"]["refresh_token"]
    # The provider's POST came cross-site without the session cookie (SameSite=Lax);
    # the page's POST came from the app itself, with it.
    posts = [p for p in state["posts"] if p["path"] == "/login/fp/authorized"]
    assert [(p["sec_fetch_site"], p["cookie"]) for p in posts] == [
        ("cross-site", False),
        ("same-origin", True),
    ]
    ui.screenshot(path=str(ARTIFACTS / "form-post-profile.png"), full_page=True)


def test_form_post_login_with_flasks_default_session_cookie(
    ui: t.Any, features: Features
) -> None:
    """Flask sets no SameSite attribute by default: Chromium treats the cookie as
    Lax, except that it may still send a fresh one with a cross-site POST. Either
    way the login completes."""
    default = dataclasses.replace(features, app_url=features.default_app_url)
    log_in(ui, default, "fp", "dora")
    state = default.state()
    assert list(state["tokens"]["fp"]) == ["fp:dora"]
    posts = [p for p in state["posts"] if p["path"] == "/login/fp/authorized"]
    assert [p["sec_fetch_site"] for p in posts] == ["cross-site", "same-origin"]
    assert posts[1]["cookie"] is True


def test_form_post_refused_by_the_user_is_a_clear_page(
    ui: t.Any, features: Features
) -> None:
    ui.goto(features.app_url + "/")
    ui.click("#login-fp")
    ui.wait_for_url(re.compile(re.escape(features.issuer) + r"/interaction/"))
    ui.fill('input[name="login"]', "nora")
    ui.fill('input[name="password"]', "any password")
    ui.get_by_role("button", name="Sign-in").click()
    expect(ui.locator("h1")).to_contain_text("Authorize")
    ui.get_by_role("link", name=re.compile("Cancel", re.I)).click()
    expect(ui.locator("#oauthclient-error-title")).to_have_text("Login refused")
    assert "fp:nora" not in features.tokens("fp")


# ------------------------------------------------- JWT client authentication


@pytest.mark.parametrize("provider", ["pkjwt", "csjwt"])
def test_jwt_client_authentication_logs_in_and_refreshes(
    ui: t.Any, features: Features, provider: str
) -> None:
    login = f"{provider}-user"
    user = f"{provider}:{login}"
    log_in(ui, features, provider, login)
    first = features.tokens(provider)[user]
    assert first["refresh_token"]
    expect(ui.locator("#expires-at")).to_have_text(str(int(first["expires_at"])))

    # Expired: the next page view refreshes it, authenticated by a new assertion.
    time.sleep(max(0.0, first["expires_at"] - time.time()) + 0.3)
    ui.reload()
    expect(ui.locator('td[data-claim="sub"]')).to_have_text(login)
    second = features.tokens(provider)[user]
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    expect(ui.locator("#expires-at")).to_have_text(str(int(second["expires_at"])))


def test_a_key_the_provider_does_not_know_is_a_clear_502(
    ui: t.Any, features: Features
) -> None:
    ui.goto(features.app_url + "/")
    ui.click("#login-badkey")
    sign_in_at_provider(ui, features, "mallory")
    expect(ui.locator("#oauthclient-error-title")).to_have_text("Provider error")
    assert features.tokens("badkey") == {}
    assert "badkey:mallory" not in features.state()["users"]
    ui.goto(features.app_url + "/")
    expect(ui.locator("#user")).to_have_text("")
    assert "invalid_client" in features.app_log.read_text(errors="replace")


# ------------------------------------------------- incremental authorization


def test_a_scope_is_asked_for_when_a_page_needs_it(
    ui: t.Any, features: Features
) -> None:
    log_in(ui, features, "inc", "ines")
    first = features.tokens("inc")["inc:ines"]
    assert "calendar" not in first["scope"]

    # The page needs "calendar": to the provider's consent page (the provider
    # session is still there) and back to the page.
    ui.goto(features.app_url + "/scoped/inc")
    ui.wait_for_url(re.compile(re.escape(features.issuer) + r"/interaction/"))
    expect(ui.locator("h1")).to_contain_text("Authorize")
    ui.get_by_role("button", name="Continue").click()
    ui.wait_for_url(features.app_url + "/scoped/inc")
    shown = json.loads(ui.locator("body").inner_text())
    assert shown["user"] == "inc:ines"
    assert "calendar" in shown["scope"]

    state = features.state()
    second = state["tokens"]["inc"]["inc:ines"]
    assert "calendar" in second["scope"]
    assert second["access_token"] != first["access_token"]
    assert list(state["users"]).count("inc:ines") == 1


def test_a_scope_request_answered_by_another_account_is_409(
    ui: t.Any, features: Features
) -> None:
    log_in(ui, features, "inc", "olga")
    before = features.tokens("inc")["inc:olga"]
    # At the provider, another account signs in (its session is gone).
    ui.context.clear_cookies(domain="localhost")
    ui.goto(features.app_url + "/scoped/inc")
    sign_in_at_provider(ui, features, "someone-else")
    expect(ui.locator("#oauthclient-error-title")).to_have_text("Another account")
    tokens = features.tokens("inc")
    assert tokens["inc:olga"] == before
    assert "inc:someone-else" not in tokens


def test_a_scope_request_declined_at_the_provider_keeps_the_user_logged_in(
    ui: t.Any, features: Features
) -> None:
    log_in(ui, features, "inc", "dana")
    before = features.tokens("inc")["inc:dana"]
    ui.goto(features.app_url + "/scoped/inc")
    ui.wait_for_url(re.compile(re.escape(features.issuer) + r"/interaction/"))
    expect(ui.locator("h1")).to_contain_text("Authorize")
    ui.get_by_role("link", name=re.compile("Cancel", re.I)).click()
    expect(ui.locator("#oauthclient-error-title")).to_have_text(
        "Permission not granted"
    )
    expect(ui.locator("body")).to_contain_text("You are still logged in")
    expect(ui.get_by_role("link", name="Try again")).to_have_count(0)
    assert features.tokens("inc")["inc:dana"] == before
    # Still logged in, with the token as it was.
    ui.goto(f"{features.app_url}/profile/inc")
    expect(ui.locator('td[data-claim="sub"]')).to_have_text("dana")
