"""The public :class:`Provider`: ``oauth.<name>``. It holds no per-app or
per-request state: each use looks up the current app's provider
(:mod:`.app_provider`) and the current request's session (:mod:`.oauth_session`)."""

from __future__ import annotations

import typing as t
from contextlib import contextmanager
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
from flask import url_for

from . import signals
from .errors import ConfigurationError
from .errors import OAuthClientError
from .errors import TokenMissing
from .errors import UnlinkRefused
from .linking import can_unlink
from .oauth_session import Entry
from .oauth_session import forget
from .oauth_session import new_session
from .oauth_session import ProviderSession
from .oauth_session import request_entry
from .provider_config import display_title
from .state import get_state
from .storage.base import CURRENT_USER
from .tokens import Identity
from .tokens import Token
from .transport import translate_http_error

if t.TYPE_CHECKING:
    from .app_provider import AppProvider
    from .state import AppState
    from .storage.base import BaseStorage


class Provider:
    """A registered provider, as returned by :meth:`OAuth.register` and reached as
    ``oauth.<name>``. It holds no per-app or per-request state: every method looks up
    the current app's settings and the current request's session.

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
    def _app_provider(self) -> AppProvider:
        return self._state.provider(self.name)

    @property
    def title(self) -> str:
        """The name shown to users (``"Google"``)."""
        return display_title(self.name, self.config.get("title"))

    @property
    def storage(self) -> BaseStorage:
        """The token storage of the current app."""
        return self._state.storage

    def _entry(self) -> Entry:
        return request_entry((self.name, CURRENT_USER))

    @property
    def token(self) -> Token | None:
        """The current user's token, read from the storage once per request."""
        entry = self._entry()
        if not entry.loaded:
            entry.load(self.storage.get(self.name))
        token = entry.token
        return Token(token) if token is not None else None

    @token.setter
    def token(self, value: t.Mapping[str, t.Any] | None) -> None:
        """Store (or with ``None``, delete) the current user's token."""
        if value is None:
            self.storage.delete(self.name)
        else:
            self.storage.set(self.name, Token(value))
        forget(self.name)

    @property
    def authorized(self) -> bool:
        """Whether the current user has a token for this provider."""
        return self.token is not None

    @property
    def session(self) -> ProviderSession:
        """This request's :class:`~requests_oauthlib.OAuth2Session` with the current
        user's token; built once per request."""
        entry = self._entry()
        if entry.session is None:
            token = self.token
            state = self._state
            entry.session = new_session(
                state.provider(self.name),
                token=token,
                storage=state.storage,
                sender=self,
            )
        return entry.session

    def _authorized_session(self) -> ProviderSession:
        """:attr:`session`, for a call that needs a token.

        :raises TokenMissing: the current user has no token for this provider.
        """
        session = self.session
        if not session.token:
            raise TokenMissing(f"No {self.name} token is stored for the current user.")
        return session

    @contextmanager
    def _calling(self) -> t.Iterator[None]:
        """Name this provider in the errors of a call, and translate the failures of
        ``requests``."""
        try:
            yield
        except requests.RequestException as e:
            failure = translate_http_error(e)
            failure.provider = self.name
            raise failure from None
        except OAuthClientError as e:
            e.provider = self.name
            raise

    def request(self, method: str, url: str, **kwargs: t.Any) -> requests.Response:
        """Call the provider's API as the current user. A relative ``url`` is joined
        to ``api_base_url``. An expiring token is refreshed first.

        :raises TokenMissing: the current user has no token for this provider.
        :raises ReauthorizationRequired: the provider refused the refresh token.
        """
        with self._calling():
            session = self._authorized_session()
            base = self._app_provider.api_base_url
            if base and not urlsplit(url).scheme:
                url = urljoin(base, url)
            return session.request(method, url, **kwargs)

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
        with self._calling():
            return self._authorized_session().refresh_token()

    def userinfo(self) -> dict[str, t.Any]:
        """The current user's claims, fresh from the provider, with OpenID Connect
        names: the userinfo endpoint, or for plain OAuth 2 presets the mapped
        profile. The token is refreshed first if needed.

        :raises TokenMissing: the current user has no token for this provider.
        :raises ProviderError: the provider refused or failed the request.
        """
        with self._calling():
            claims = self._app_provider.fetch_profile(self._authorized_session())
        if claims is None:
            raise ConfigurationError(
                f"Provider {self.name!r} has no userinfo endpoint or profile mapping."
            )
        return claims

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

    def revoke_token(self) -> bool:
        """Revoke the current user's token at the provider (RFC 7009) and delete it
        from the storage, whatever the provider answers.

        The refresh token is revoked first (that ends the grant at most providers),
        then the access token.

        :return: whether the provider confirmed every revocation; ``False`` when it
            has no revocation endpoint, failed, or could not be reached.
        """
        token = self.token
        if token is None:
            return False
        confirmed = self._app_provider.revoke(token)
        self.storage.delete(self.name)
        forget(self.name)
        signals.token_revoked.send(self, reason="logout")
        return confirmed
