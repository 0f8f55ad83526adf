"""The public :class:`Provider`: ``oauth.<name>``. It holds no per-app or
per-request state: its calls for the current user go through a
:class:`~.client.UserClient` bound to ``CURRENT_USER``, the same client that
:meth:`Provider.for_user` binds to any user; :meth:`Provider.for_app` gives the
app's own (:mod:`.app_token`)."""

from __future__ import annotations

import typing as t

import requests
from flask import has_app_context
from flask import url_for

from . import signals
from .client import UserClient
from .errors import UnlinkRefused
from .oauth_session import forget
from .oauth_session import ProviderSession
from .state import get_state
from .storage.base import CURRENT_USER
from .tokens import Identity
from .tokens import Token

if t.TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from .app_token import AppClient
    from .state import AppState
    from .storage.base import BaseStorage

# Imported where they are used, not with the package: what only the app's own
# token (app_token), unlinking (linking), scope upgrades (scopes) or the title
# (provider_config) needs; a worker that answers API calls loads none of them.

F = t.TypeVar("F", bound=t.Callable[..., t.Any])


class Provider:
    """A registered provider, as returned by :meth:`OAuth.register` and reached as
    ``oauth.<name>``. It holds no per-app or per-request state: every method looks up
    the current app's settings and the current request's session. Its calls are the
    current user's; :meth:`for_user` gives the same calls for any user, and
    :meth:`for_app` with the app's own token.

    .. versionadded:: 0.1
    """

    def __init__(self, owner: object, name: str, config: dict[str, t.Any]) -> None:
        self._owner = owner
        self.name = name
        #: The ``register`` keywords merged with the preset's defaults.
        self.config = config

    def __repr__(self) -> str:
        return f"<Provider {self.name!r}>"

    @property
    def _state(self) -> AppState:
        return get_state(owner=self._owner)

    @property
    def title(self) -> str:
        """The name shown to users (``"Google"``)."""
        from .provider_config import display_title

        return display_title(self.name, self.config.get("title"))

    @property
    def storage(self) -> BaseStorage:
        """The token storage of the current app."""
        return self._state.storage

    def _current(self) -> UserClient:
        """The client of the current user; the storage tells who that is."""
        return UserClient(self.name, self._owner, CURRENT_USER, sender=self)

    def for_user(self, user: t.Any) -> UserClient:
        """A client of this provider bound to ``user``: the same calls as
        ``oauth.<name>`` (:meth:`get`, :meth:`post`, ..., :attr:`token`,
        :attr:`authorized`, :meth:`refresh_token`, :meth:`userinfo`) with that
        user's token, in a request (for a user other than the one logged in) or
        outside one (a job, a CLI command, a thread with an app context).

        .. code-block:: python

            @app.cli.command()
            def sync():
                for user in db.session.scalars(select(User)):
                    try:
                        events = oauth.google.for_user(user).get("calendar/v3/...")
                    except TokenError:  # no token, or the user revoked the app
                        continue

        The same single-flight refresh as views applies (one refresh per user
        across threads and processes) and the refreshed token is saved for that
        user. Tokens of two users are never mixed, whatever the loop or thread:
        see :class:`~flask_oauthclient.UserClient` and :doc:`/jobs`.

        :param user: a user object, or an id, as the storage understands it
            (:meth:`~flask_oauthclient.storage.BaseStorage.user_key`).
        :raises ConfigurationError: the app keeps tokens in the session
            (:class:`~flask_oauthclient.SessionStorage`), which holds only the
            browser's own token.

        .. versionadded:: 0.1
        """
        if user is CURRENT_USER:
            return self._current()
        client = UserClient(self.name, self._owner, user, sender=self)
        if has_app_context():
            # Fail here rather than at the first call, when the storage can't
            # serve another user (SessionStorage).
            self._state.storage.user_key(user)
        return client

    def for_app(self, scope: str | t.Iterable[str] | None = None) -> AppClient:
        """A client of this provider with the app's own token, from the client
        credentials grant (RFC 6749 §4.4): for calls the app makes in its own
        name, with no user involved.

        .. code-block:: python

            oauth.corp.for_app(scope="reports.read").get("reports/daily")

        The token is fetched on first use, shared by the threads of the process
        until it is about to expire, and fetched again once on a 401 answer. See
        :class:`~flask_oauthclient.AppClient`.

        :param scope: the scopes to ask for (a list, or a space-separated
            string); ``None`` asks for none, which leaves it to the provider.

        .. versionadded:: 0.1
        """
        from .app_token import AppClient

        return AppClient(self.name, self._owner, scope)

    @property
    def token(self) -> Token | None:
        """The current user's token, read from the storage once per request."""
        return self._current().token

    @token.setter
    def token(self, value: t.Mapping[str, t.Any] | None) -> None:
        """Store (or with ``None``, delete) the current user's token."""
        self._current().token = value

    @property
    def authorized(self) -> bool:
        """Whether the current user has a token for this provider."""
        return self._current().authorized

    @property
    def session(self) -> ProviderSession:
        """This request's :class:`~requests_oauthlib.OAuth2Session` with the current
        user's token; built once per request (outside a request, once per use)."""
        return self._current().session

    def request(self, method: str, url: str, **kwargs: t.Any) -> requests.Response:
        """Call the provider's API as the current user. A relative ``url`` is joined
        to ``api_base_url``. An expiring token is refreshed first.

        :raises TokenMissing: the current user has no token for this provider.
        :raises ReauthorizationRequired: the provider refused the refresh token.
        """
        return self._current().request(method, url, **kwargs)

    def get(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``GET`` :meth:`request`."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``POST`` :meth:`request`."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``PUT`` :meth:`request`."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``PATCH`` :meth:`request`."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``DELETE`` :meth:`request`."""
        return self.request("DELETE", url, **kwargs)

    def refresh_token(self) -> Token:
        """Refresh the current user's token now, whether it expired or not.

        :raises TokenMissing: the current user has no token for this provider.
        """
        return self._current().refresh_token()

    def userinfo(self) -> dict[str, t.Any]:
        """The current user's claims, fresh from the provider, with OpenID Connect
        names: the userinfo endpoint, or for plain OAuth 2 presets the mapped
        profile. The token is refreshed first if needed.

        :raises TokenMissing: the current user has no token for this provider.
        :raises ProviderError: the provider refused or failed the request.
        """
        return self._current().userinfo()

    def find_user(
        self,
        userinfo: t.Mapping[str, t.Any],
        *,
        by_email: t.Callable[[str], t.Any] | None = None,
    ) -> t.Any | None:
        """The user who logged in with this provider identity before, or ``None``.

        Call it from ``on_login`` with the ``userinfo`` it was given: a returning
        user is recognized by the provider's ``(iss, sub)``, never by email.

        Linking by email is off unless the app opts in with
        ``OAUTHCLIENT_LINK_BY_VERIFIED_EMAIL = True`` *and* passes ``by_email``:
        then a user not found by identity is looked up with ``by_email(email)``,
        only when the provider says the email is verified (``email_verified`` is
        ``True``, not a string). The token is then stored for that user, which
        links the identity to them. Only opt in for providers that verify every
        address they assert.

        .. code-block:: python

            def user_with_email(email):
                return db.session.scalars(select(User).filter_by(email=email)).first()

            @oauth.on_login
            def on_login(provider, token, userinfo):
                user = provider.find_user(userinfo, by_email=user_with_email)
                return user or create_user(userinfo)

        :param userinfo: the claims ``on_login`` was given.
        :param by_email: returns the user with this email address, or ``None``.
        """
        identity = Identity(str(userinfo["iss"]), str(userinfo["sub"]))
        user = self.storage.find_user(self.name, identity)
        if user is not None or by_email is None:
            return user
        if not self._state.settings.link_by_verified_email:
            return None
        email = userinfo.get("email")
        if userinfo.get("email_verified") is not True or not isinstance(email, str):
            return None
        if not email.strip():
            return None
        return by_email(email)

    @property
    def linked(self) -> bool:
        """Whether this provider is linked to the current user: a token is stored,
        or the provider identity still is (see
        :meth:`~flask_oauthclient.storage.BaseStorage.linked`).

        .. versionadded:: 0.1
        """
        return self.storage.linked(self.name)

    def unlink(self, *, revoke: bool | None = None) -> bool:
        """Unlink this provider from the current user: revoke their token at the
        provider (RFC 7009, best effort), delete it, and forget the provider
        identity, so that logging in with it no longer finds this user.
        ``POST /login/<name>/unlink`` calls it.

        :param revoke: revoke at the provider first; the default is
            ``OAUTHCLIENT_REVOKE_ON_LOGOUT``.
        :return: whether the provider was linked.
        :raises ~flask_oauthclient.errors.UnlinkRefused: it is the user's last way
            to log in (see :meth:`OAuth.can_unlink`); nothing was changed.

        .. versionadded:: 0.1
        """
        from .linking import can_unlink

        if not self.linked:
            return False
        if not can_unlink(self._state, self.name):
            error = UnlinkRefused(
                f"Unlinking {self.name!r} would leave the user no way to log in."
            )
            error.provider = self.name
            raise error
        state = self._state
        token = self.token
        if revoke is None:
            revoke = state.settings.revoke_on_logout
        if token is not None and revoke:
            state.provider(self.name).revoke(token)
        state.storage.unlink(self.name)
        forget(self.name)
        signals.token_revoked.send(self, reason="unlink")
        return True

    def login_url(self, next: str | None = None) -> str:
        """The URL of this provider's login view."""
        return url_for(f"{self.name}.login", next=next)

    def has_scopes(self, *scopes: str) -> bool:
        """Whether the current user's token has every one of ``scopes`` (from the
        scope recorded with the token); ``False`` without a token.

        .. versionadded:: 0.1
        """
        from . import scopes as _scopes

        return _scopes.has_scopes(self, *scopes)

    def request_scopes(self, *scopes: str, next: str | None = None) -> Response:
        """The redirect that asks the provider for ``scopes`` on top of those the
        current user granted (with the provider's own flag where it has one, such
        as Google's ``include_granted_scopes``). On return the token is stored for
        the same user with the scope updated, and the browser goes to ``next``. A
        different provider identity than the one linked is refused (409).

        :raises ConfigurationError: a scope was not declared in ``scope`` or
            ``optional_scopes`` of :meth:`~flask_oauthclient.OAuth.register`.

        .. versionadded:: 0.1
        """
        from . import scopes as _scopes

        return _scopes.request_scopes(self, *scopes, next=next)

    def scopes_required(self, *scopes: str) -> t.Callable[[F], F]:
        """A view decorator: the view runs when the current user's token has
        ``scopes``; a browser's ``GET`` is otherwise sent to
        :meth:`request_scopes` (and back to the page), any other request gets 403
        with ``insufficient_scope``
        (:exc:`~flask_oauthclient.scopes.InsufficientScope`).

        .. code-block:: python

            @app.get("/calendar")
            @login_required
            @oauth.google.scopes_required(CALENDAR)
            def calendar():
                return oauth.google.get(CALENDAR_API).json()

        .. versionadded:: 0.1
        """
        from . import scopes as _scopes

        return _scopes.scopes_required(self, *scopes)

    def revoke_token(self) -> bool:
        """Revoke the current user's token at the provider (RFC 7009) and delete it
        from the storage, whatever the provider answers.

        The refresh token is revoked first (that ends the grant at most providers),
        then the access token.

        :return: whether the provider confirmed every revocation; ``False`` when it
            has no revocation endpoint, failed, or could not be reached.
        """
        return self._current().revoke_token()
