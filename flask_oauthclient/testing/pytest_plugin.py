"""A pytest plugin for apps that use Flask-OAuthClient, loaded automatically when the
package is installed (entry point ``pytest11``). It works with pytest-flask's
``app`` and ``client`` fixtures, or with your own. See :doc:`/testing`.

``oauth_login(client, user, provider, token=None)``
    Log ``client`` in as ``user`` (for Flask-Login) with a token for ``provider``,
    without any HTTP round trip. Returns the token that was stored.

``oauth_mock_api(provider, method, url, json=..., status=200)``
    Make the provider's API answer a canned response to calls made through
    ``oauth.<name>.get/post/...``, for the rest of the test. Calls without a canned
    answer fail the test.

``oauth_dev_provider``
    A :class:`~flask_oauthclient.testing.DevProvider` served on a free loopback port
    for the whole test session, for integration tests that go through a real login.

``oauth_dev_login(client, provider, username, next=None, *, dev=None)``
    Log ``client`` in through the real login flow of ``provider`` as ``username``,
    at the :class:`~flask_oauthclient.testing.DevProvider` the login goes to:
    ``oauth_dev_provider`` or one the test serves itself.
"""

from __future__ import annotations

import io
import json as _json
import threading
import time
import typing as t
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import parse_qsl
from urllib.parse import urljoin
from urllib.parse import urlsplit

import pytest
import requests
from flask import current_app
from flask import Flask
from flask import has_app_context
from flask import url_for
from flask.testing import FlaskClient
from requests.adapters import BaseAdapter
from werkzeug.test import TestResponse

from ..errors import ConfigurationError
from ..state import AppState
from ..state import get_state

if t.TYPE_CHECKING:
    from .devprovider import DevProvider

__all__ = [
    "CannedResponse",
    "MockAPI",
    "UnmatchedRequest",
    "dev_login",
    "login",
    "make_token",
]

LoginHelper = t.Callable[..., dict[str, t.Any]]
DevLoginHelper = t.Callable[..., TestResponse]


def make_token(**overrides: t.Any) -> dict[str, t.Any]:
    """A well-formed bearer token that expires in an hour; ``overrides`` replace or
    add fields (``expires_at=time.time() - 1`` makes an expired one)."""
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


def _state_of(app: Flask) -> AppState:
    try:
        return get_state(app)
    except ConfigurationError:
        raise RuntimeError(
            "The app is not set up with Flask-OAuthClient: call oauth.init_app(app)."
        ) from None


def _check_provider(state: AppState, provider: str) -> None:
    if provider not in state.providers:
        known = ", ".join(sorted(state.providers)) or "none"
        raise KeyError(
            f"No provider named {provider!r} is registered (registered: {known})."
        )


def login(
    client: FlaskClient,
    user: t.Any,
    provider: str,
    token: t.Mapping[str, t.Any] | None = None,
) -> dict[str, t.Any]:
    """Log ``client`` in as ``user`` and store ``token`` (or a fresh test token,
    see :func:`make_token`) for ``provider`` through the app's storage.

    :param client: the test client whose session is logged in.
    :param user: the Flask-Login user (anything with ``get_id()``), or ``None`` to
        store the token only. With
        :class:`~flask_oauthclient.sqla.SQLAlchemyStorage` it must be committed.
    :param provider: the name of a registered provider.
    :param token: the token to store.
    :return: the token that was stored.
    """
    from ..storage.session import SessionStorage

    app: Flask = client.application
    state = _state_of(app)
    _check_provider(state, provider)
    stored = dict(token) if token is not None else make_token()
    session_id = _session_identifier(app, client) if user is not None else None
    with client.session_transaction() as session:
        if user is not None:
            session["_user_id"] = str(user.get_id())
            session["_fresh"] = True
            if session_id is not None:
                # Flask-Login compares it on every request ("strong" session
                # protection logs out a session without it).
                session["_id"] = session_id
        if isinstance(state.storage, SessionStorage):
            with app.app_context():
                state.storage.set_in(session, provider, stored)
    if not isinstance(state.storage, SessionStorage):
        with app.app_context():
            state.storage.set(provider, stored, user=user)
    return stored


def _session_identifier(app: Flask, client: FlaskClient) -> str | None:
    """Flask-Login's session identifier for requests of ``client``."""
    manager = getattr(app, "login_manager", None)
    make_id = getattr(manager, "_session_identifier_generator", None)
    if not callable(make_id):
        return None
    with app.test_request_context(environ_base=client.environ_base):
        return str(make_id())


# -- canned API responses ----------------------------------------------------------


class UnmatchedRequest(AssertionError):
    """A request reached a provider for which :func:`oauth_mock_api` has no canned
    response. It fails the test (it is not a :class:`requests.RequestException`, so
    the extension does not turn it into a 502 page)."""


@dataclass
class CannedResponse:
    """One canned answer of :class:`MockAPI`."""

    method: str
    url: str
    status: int
    body: bytes
    headers: dict[str, str]
    #: The requests this answer was given to.
    calls: list[requests.PreparedRequest] = field(default_factory=list)

    def matches(self, method: str, url: str) -> bool:
        if method != self.method:
            return False
        want, got = urlsplit(self.url), urlsplit(url)
        if (want.scheme, want.netloc, want.path) != (got.scheme, got.netloc, got.path):
            return False
        # The query string counts only when the canned URL has one.
        return not want.query or sorted(parse_qsl(want.query)) == sorted(
            parse_qsl(got.query)
        )

    def build(self, request: requests.PreparedRequest) -> requests.Response:
        response = requests.Response()
        response.status_code = self.status
        response.headers.update(self.headers)
        response.raw = io.BytesIO(self.body)
        response.url = request.url or self.url
        response.request = request
        response.reason = _REASONS.get(self.status, "")
        response.encoding = "utf-8"
        return response


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request"}
_REASONS.update({401: "Unauthorized", 403: "Forbidden", 404: "Not Found"})
_REASONS.update({429: "Too Many Requests", 500: "Internal Server Error"})


class _MockAdapter(BaseAdapter):
    """Mounted where a provider's sessions find their connection pool."""

    def __init__(self, mock: MockAPI, provider: str, original: BaseAdapter) -> None:
        super().__init__()
        self.mock = mock
        self.provider = provider
        self.original = original

    def send(
        self, request: requests.PreparedRequest, *args: t.Any, **kwargs: t.Any
    ) -> requests.Response:
        canned = self.mock._answer(self.provider, request)
        if canned is not None:
            return canned
        if self.mock.passthrough:
            return self.original.send(request, *args, **kwargs)
        raise UnmatchedRequest(self.mock._unmatched_message(self.provider, request))

    def close(self) -> None:
        pass


class MockAPI:
    """What the ``oauth_mock_api`` fixture gives: call it to add a canned response.

    .. code-block:: python

        def test_profile(client, user, oauth_login, oauth_mock_api):
            oauth_login(client, user, "github")
            oauth_mock_api("github", "GET", "user", json={"login": "octocat"})
            assert client.get("/profile").json == {"login": "octocat"}

    Several answers for the same method and URL are given in turn; the last one
    repeats. The mock is removed when the test ends.

    .. versionadded:: 0.1
    """

    def __init__(self, get_app: t.Callable[[], Flask]) -> None:
        self._get_app = get_app
        self._lock = threading.Lock()
        self._canned: dict[str, list[CannedResponse]] = {}
        self._installed: list[tuple[t.Any, _MockAdapter]] = []
        #: Every request the mocked providers received, answered or not, as
        #: ``(provider name, request)``.
        self.calls: list[tuple[str, requests.PreparedRequest]] = []
        #: Send requests without a canned response to the provider after all
        #: (for example to a :class:`~flask_oauthclient.testing.DevProvider`),
        #: instead of failing with :exc:`UnmatchedRequest`.
        self.passthrough = False

    def __call__(
        self,
        provider: str,
        method: str,
        url: str,
        *,
        json: t.Any = None,
        body: str | bytes | None = None,
        status: int = 200,
        headers: t.Mapping[str, str] | None = None,
        app: Flask | None = None,
    ) -> CannedResponse:
        """Answer ``method url`` of ``provider`` with a canned response.

        :param provider: the name of a registered provider.
        :param method: the HTTP method, e.g. ``"GET"``.
        :param url: a URL relative to the provider's ``api_base_url`` (as given to
            ``oauth.<name>.get``), or an absolute URL (the token endpoint, for
            instance). Its query string, if any, must match too.
        :param json: a body to send as JSON.
        :param body: a raw body, instead of ``json``.
        :param status: the HTTP status.
        :param headers: response headers.
        :param app: the app whose provider answers; default: the current app, or
            else the test's ``app`` fixture.
        :return: the canned response; its ``calls`` list the requests it answered.
        """
        if json is not None and body is not None:
            raise TypeError("Pass json= or body=, not both.")
        app = app if app is not None else self._get_app()
        state = _state_of(app)
        _check_provider(state, provider)
        ap = state.providers[provider]
        if not urlsplit(url).scheme:
            if not ap.api_base_url:
                raise ValueError(
                    f"{url!r} is relative, but provider {provider!r} has no "
                    "api_base_url: pass an absolute URL."
                )
            url = urljoin(ap.api_base_url, url)
        response_headers = dict(headers or {})
        if body is None:
            data = _json.dumps(json).encode() if json is not None else b""
            if json is not None:
                response_headers.setdefault("Content-Type", "application/json")
        else:
            data = body.encode() if isinstance(body, str) else body
        response_headers.setdefault("Content-Length", str(len(data)))
        canned = CannedResponse(
            method.upper(), url, status, data, response_headers, calls=[]
        )
        self._install(ap, provider)
        with self._lock:
            self._canned.setdefault(provider, []).append(canned)
        return canned

    def _install(self, ap: t.Any, provider: str) -> None:
        if any(installed is ap for installed, _ in self._installed):
            return
        adapter = _MockAdapter(self, provider, ap.adapter)
        # New per-request sessions mount ap.adapter; ap.http serves discovery, the
        # JWKS and revocation.
        ap.adapter = adapter
        ap.http.mount("https://", adapter)
        ap.http.mount("http://", adapter)
        self._installed.append((ap, adapter))

    def _answer(
        self, provider: str, request: requests.PreparedRequest
    ) -> requests.Response | None:
        method = (request.method or "GET").upper()
        url = request.url or ""
        with self._lock:
            self.calls.append((provider, request))
            matching = [
                c for c in self._canned.get(provider, ()) if c.matches(method, url)
            ]
            if not matching:
                return None
            canned = matching[0]
            if len(matching) > 1:
                # Given once; the next registration answers the next call.
                self._canned[provider].remove(canned)
            canned.calls.append(request)
        return canned.build(request)

    def _unmatched_message(
        self, provider: str, request: requests.PreparedRequest
    ) -> str:
        known = [f"{c.method} {c.url}" for c in self._canned.get(provider, ())]
        listed = "; ".join(known) or "none"
        return (
            f"No canned response for {request.method} {request.url} of provider "
            f"{provider!r} (canned: {listed}). Add one with oauth_mock_api(...), or "
            "set oauth_mock_api.passthrough = True to let it through."
        )

    def remove(self) -> None:
        """Put the providers' own connection pools back."""
        for ap, adapter in reversed(self._installed):
            ap.adapter = adapter.original
            ap.http.mount("https://", adapter.original)
            ap.http.mount("http://", adapter.original)
        self._installed.clear()


def _find_app(request: pytest.FixtureRequest) -> Flask:
    if has_app_context():
        return t.cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
    return t.cast(Flask, request.getfixturevalue("app"))


# -- the real login through the development provider ----------------------------


def dev_login(
    client: FlaskClient,
    dev: DevProvider | None,
    provider: str,
    username: str,
    next: str | None = None,
) -> TestResponse:
    """Log ``client`` in through the real login flow of ``provider`` as the
    development provider's user ``username``.

    :param client: the test client to log in.
    :param dev: the :class:`~flask_oauthclient.testing.DevProvider` that
        ``provider`` is registered against (``server_metadata_url=
        dev.metadata_url``), or ``None`` to find it: the one that
        :meth:`~flask_oauthclient.testing.DevProvider.serve` serves, in this
        process, at the URL the login redirects to.
    :param provider: the name of a registered provider.
    :param username: any user name; the development provider signs it in.
    :param next: where the app sends the user after the login.
    :return: the response of the app's callback view (a redirect to ``next`` when
        the login succeeded).
    """
    query = {"next": next} if next is not None else {}
    start = client.get(_login_url(client, provider), query_string=query)
    if start.status_code not in (302, 303):
        raise AssertionError(
            f"The login view of {provider!r} answered {start.status_code}, not a "
            "redirect to the provider."
        )
    authorize_url = start.headers["Location"]
    dev = _dev_provider_at(authorize_url, dev)
    previous, dev.auto_login = dev.auto_login, username
    try:
        authorize = requests.get(authorize_url, allow_redirects=False, timeout=10)
    finally:
        dev.auto_login = previous
    if authorize.status_code not in (302, 303):
        raise AssertionError(
            f"The development provider at {dev.issuer} answered "
            f"{authorize.status_code} to {_without_query(authorize_url)}, not a "
            f"redirect back to the app: {authorize.text[:200]}"
        )
    back = urlsplit(authorize.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def _dev_provider_at(url: str, dev: DevProvider | None) -> DevProvider:
    """The development provider that answers the authorization request ``url``:
    ``dev`` when given, else the one served at ``url``."""
    from .devprovider import DevProvider

    if dev is not None:
        return dev
    served = DevProvider.served_at(url)
    if served is None:
        raise AssertionError(
            f"The login redirects to {_without_query(url)}, where no DevProvider is "
            "served in this process: register the provider against one served with "
            "'with dev.serve():' (server_metadata_url=dev.metadata_url), or pass "
            "dev=."
        )
    return served


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _login_url(client: FlaskClient, provider: str) -> str:
    app = client.application
    _check_provider(_state_of(app), provider)
    with app.test_request_context():
        return url_for(f"{provider}.login")


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture
def oauth_login() -> LoginHelper:
    """``oauth_login(client, user, provider, token=None)``: see :func:`login`."""
    return login


@pytest.fixture
def oauth_mock_api(request: pytest.FixtureRequest) -> t.Iterator[MockAPI]:
    """``oauth_mock_api(provider, method, url, json=None, status=200, ...)``: canned
    provider API answers for this test; see :class:`MockAPI`."""
    mock = MockAPI(lambda: _find_app(request))
    try:
        yield mock
    finally:
        mock.remove()


@pytest.fixture(scope="session")
def oauth_dev_provider() -> t.Iterator[DevProvider]:
    """A development provider on a free loopback port, for the test session."""
    from .devprovider import DevProvider

    provider = DevProvider()
    with provider.serve(host="127.0.0.1", port=0):
        yield provider


@pytest.fixture
def oauth_dev_login() -> DevLoginHelper:
    """``oauth_dev_login(client, provider, username, next=None, *, dev=None)``: log
    in at the development provider the login of ``provider`` goes to, found among
    those served in this process (``oauth_dev_provider``, or one of the test's
    own); ``dev=`` names it instead. See :func:`dev_login`."""

    def log_in(
        client: FlaskClient,
        provider: str,
        username: str,
        next: str | None = None,
        *,
        dev: DevProvider | None = None,
    ) -> TestResponse:
        return dev_login(client, dev, provider, username, next)

    return log_in
