"""The example app in a real browser against a real OpenID provider: log in through
the provider's own sign-in and consent pages, refresh an expired token (rotation),
log out (revocation). Fixtures and requirements: conftest.py in this folder."""

from __future__ import annotations

import re
import time
import typing as t

import pytest

from .conftest import ARTIFACTS
from .conftest import REFRESH_LEEWAY
from .conftest import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    # pytest-playwright 0.10's own base_url fixture (used when pytest-base-url isn't
    # installed) is a session fixture on a plugin instance, deprecated in pytest 9.
    pytest.mark.filterwarnings(
        r"ignore:Session-scoped fixtures defined as instance methods are deprecated"
        r"[\s\S]*'base_url':pytest.PytestDeprecationWarning"
    ),
]


def expect(locator: t.Any) -> t.Any:
    # Imported here: without Playwright the module must still import (to skip).
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def log_in(page: t.Any, stack: Stack, login: str) -> None:
    """Home page → "Log in" → the provider's sign-in and consent pages → profile."""
    page.goto(stack.app_url + "/")
    page.click("#login-dev")
    page.wait_for_url(re.compile(re.escape(stack.issuer) + r"/interaction/"))
    expect(page.locator("h1")).to_contain_text("Sign-in")
    page.fill('input[name="login"]', login)
    page.fill('input[name="password"]', "any password")
    page.get_by_role("button", name="Sign-in").click()
    expect(page.locator("h1")).to_contain_text("Authorize")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(stack.app_url + "/profile")
    expect(claim(page, "sub")).to_have_text(login)


def claim(page: t.Any, name: str) -> t.Any:
    return page.locator(f'td[data-claim="{name}"]')


def shown_expiry(page: t.Any) -> int:
    return int(page.locator("#expires-at").inner_text())


def test_log_in_shows_the_claims(ui: t.Any, stack: Stack) -> None:
    log_in(ui, stack, "alice")
    expect(ui.locator("#profile-name")).to_have_text("Test User alice")
    expect(claim(ui, "email")).to_have_text("alice@example.test")
    expect(claim(ui, "email_verified")).to_have_text("True")
    expect(claim(ui, "preferred_username")).to_have_text("alice")
    expect(ui.locator("#logout")).to_be_visible()
    token = stack.stored_token("alice")
    assert token is not None, "no token row for alice in the example app's database"
    assert token.get("refresh_token"), "no refresh token (offline_access not granted?)"
    assert shown_expiry(ui) == int(token["expires_at"])
    ui.screenshot(path=str(ARTIFACTS / "profile.png"), full_page=True)


def test_expired_token_is_refreshed_and_rotated(ui: t.Any, stack: Stack) -> None:
    log_in(ui, stack, "rita")
    first = stack.stored_token("rita")
    assert first is not None and first.get("refresh_token")
    assert shown_expiry(ui) == int(first["expires_at"])

    # Still valid: a page view uses the token as it is.
    ui.reload()
    expect(claim(ui, "sub")).to_have_text("rita")
    # (Valid only if that view came before the app's refresh leeway began.)
    assert time.time() < first["expires_at"] - REFRESH_LEEWAY, (
        "too slow: the token was due for refresh before the page view; raise "
        "ACCESS_TOKEN_TTL in tests/e2e/conftest.py"
    )
    unchanged = stack.stored_token("rita")
    assert unchanged is not None
    assert unchanged["refresh_token"] == first["refresh_token"]
    assert unchanged["access_token"] == first["access_token"]

    # Expired: the provider refuses the access token (clockTolerance 0) ...
    time.sleep(max(0.0, first["expires_at"] - time.time()) + 0.3)
    assert stack.userinfo(first["access_token"]).status_code == 401

    # ... and the next page view refreshes it through the provider.
    ui.reload()
    expect(claim(ui, "sub")).to_have_text("rita")
    expect(claim(ui, "email")).to_have_text("rita@example.test")
    second = stack.stored_token("rita")
    assert second is not None
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"], (
        "refresh token not rotated"
    )
    assert second["expires_at"] > first["expires_at"]
    expect(ui.locator("#expires-at")).to_have_text(str(int(second["expires_at"])))

    # The stored (rotated) refresh token is the provider's live one, the old one is
    # consumed.
    live = stack.introspect(second["refresh_token"])
    assert live["active"] is True and live["sub"] == "rita", live
    assert stack.introspect(first["refresh_token"])["active"] is False

    # Last: presenting the consumed refresh token is refused -- and the provider's
    # reuse detection then revokes the whole grant, the new refresh token included.
    r = stack.refresh(first["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_logout_revokes_the_token(ui: t.Any, stack: Stack) -> None:
    log_in(ui, stack, "lola")
    token = stack.stored_token("lola")
    assert token is not None and token.get("refresh_token")
    assert stack.introspect(token["refresh_token"])["active"] is True

    ui.click("#logout")
    # Back on the home page, logged out (the POST and its redirect are done).
    expect(ui.locator("#login-dev")).to_be_visible()
    expect(ui.locator("#logout")).to_have_count(0)

    assert stack.introspect(token["refresh_token"])["active"] is False
    assert stack.stored_token("lola") is None, "the token row outlived the logout"
    # The profile is gone too: it sends us back to the login page.
    ui.goto(stack.app_url + "/profile")
    expect(ui.locator("#login-dev")).to_be_visible()
