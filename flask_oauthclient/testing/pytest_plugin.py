"""A pytest plugin for apps that use Flask-OAuthClient, loaded automatically when the
package is installed (entry point ``pytest11``). It works with pytest-flask's
``app`` and ``client`` fixtures.

``oauth_login(client, user, provider, token=None)``
    Log ``client`` in as ``user`` (for Flask-Login) with a token for ``provider``,
    without any HTTP round trip. Returns the token that was stored.

``oauth_dev_provider``
    A :class:`~flask_oauthclient.testing.DevProvider` served on a free loopback port
    for the whole test session, for integration tests that go through a real login.
"""

from __future__ import annotations

import time
import typing as t

import pytest
from flask import Flask
from flask.testing import FlaskClient

if t.TYPE_CHECKING:
    from .devprovider import DevProvider

LoginHelper = t.Callable[..., dict[str, t.Any]]


def make_token(**overrides: t.Any) -> dict[str, t.Any]:
    """A well-formed bearer token that expires in an hour."""
    now = time.time()
    token: dict[str, t.Any] = {
        "access_token": f"test-access-{now}",
        "refresh_token": f"test-refresh-{now}",
        "token_type": "Bearer",
        "expires_in": 3600,
        "expires_at": now + 3600,
    }
    token.update(overrides)
    return token


def login(
    client: FlaskClient,
    user: t.Any,
    provider: str,
    token: t.Mapping[str, t.Any] | None = None,
) -> dict[str, t.Any]:
    """Log ``client`` in as ``user`` and store ``token`` (or a fresh test token)
    for ``provider`` through the app's storage."""
    from ..storage.session import _KEY as SESSION_TOKENS
    from ..storage.session import SessionStorage

    app: Flask = client.application
    state = app.extensions.get("oauthclient")
    if state is None:
        raise RuntimeError("The client's app is not set up with Flask-OAuthClient.")
    if provider not in state.providers:
        raise KeyError(f"No provider named {provider!r} is registered.")
    stored = dict(token) if token is not None else make_token()
    with client.session_transaction() as session:
        if user is not None:
            session["_user_id"] = str(user.get_id())
            session["_fresh"] = True
        if isinstance(state.storage, SessionStorage):
            tokens = dict(session.get(SESSION_TOKENS) or {})
            tokens[provider] = stored
            session[SESSION_TOKENS] = tokens
    if not isinstance(state.storage, SessionStorage):
        with app.app_context():
            state.storage.set(provider, stored, user=user)
    return stored


@pytest.fixture
def oauth_login() -> LoginHelper:
    """``oauth_login(client, user, provider, token=None)``: see :func:`login`."""
    return login


@pytest.fixture(scope="session")
def oauth_dev_provider() -> t.Iterator[DevProvider]:
    """A development provider on a free loopback port, for the test session."""
    from .devprovider import DevProvider

    provider = DevProvider()
    with provider.serve(host="127.0.0.1", port=0):
        yield provider
