"""A provider's API client bound to one user: what ``oauth.<name>`` is for the
current user, and ``oauth.<name>.for_user(user)`` for any user, in a request or
out of one (a job, a CLI command, a thread with an app context).

Where the client keeps the user's token and session:

- in a request, on ``g`` (:func:`.oauth_session.request_entry`), keyed by the
  provider and the storage's key of the user
  (:meth:`~flask_oauthclient.storage.BaseStorage.user_key`): the current user's
  calls and ``for_user(the same user)`` share one session, two users never do;
- outside a request, in the client object itself, and only while the key of its
  user stays the same: a loop over users gets a token per user, never the previous
  one's.
"""

from __future__ import annotations

import typing as t
from contextlib import contextmanager
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
from flask import has_request_context

from . import signals
from .errors import ConfigurationError
from .errors import OAuthClientError
from .errors import TokenError
from .errors import TokenMissing
from .oauth_session import Entry
from .oauth_session import forget
from .oauth_session import new_session
from .oauth_session import ProviderSession
from .oauth_session import request_entry
from .state import get_state
from .storage.base import CURRENT_USER
from .tokens import Token
from .transport import translate_http_error

if t.TYPE_CHECKING:
    from .app_provider import AppProvider
    from .state import AppState
    from .storage.base import BaseStorage


def api_url(app_provider: AppProvider, url: str) -> str:
    """``url`` joined to the provider's ``api_base_url`` when it is relative."""
    base = app_provider.api_base_url
    if base and not urlsplit(url).scheme:
        return urljoin(base, url)
    return url


@contextmanager
def calling(provider: str, *, user: str | None = None) -> t.Iterator[None]:
    """Name ``provider`` in the errors raised inside the block, and translate the
    failures of ``requests`` into :class:`~flask_oauthclient.ProviderError`.

    :param user: who the call was for, when it is not the current user: token
        errors then say so in their message and in ``user``, so that the app's
        error page does not send the current browser to log in (it would store the
        browser's token, not that user's).
    """
    try:
        yield
    except requests.RequestException as e:
        failure = translate_http_error(e)
        failure.provider = provider
        raise failure from None
    except TokenError as e:
        e.provider = provider
        if user is not None:
            e.user = user
            if e.args and f"for {user}" not in str(e.args[0]):
                e.args = (f"{e.args[0]} ({provider}, {user})", *e.args[1:])
        raise
    except OAuthClientError as e:
        e.provider = provider
        raise


class UserClient:
    """The API client of a provider for one user, as returned by
    :meth:`Provider.for_user <flask_oauthclient.Provider.for_user>`: everything
    ``oauth.<name>`` offers for the current user, for that user instead, in a
    request or outside of one (a job, a CLI command, a thread with an app context).

    .. code-block:: python

        with app.app_context():
            for user in User.query:
                response = oauth.google.for_user(user).get("oauth2/v3/userinfo")

    Calls refresh an expiring token first, through the same single-flight refresh
    as views (one refresh per user across threads and processes), and save the new
    token for that user. A user without a token gets
    :exc:`~flask_oauthclient.TokenMissing`; a user whose grant the provider refused
    :exc:`~flask_oauthclient.ReauthorizationRequired` (their token was removed):
    catch them in a job, there is no browser to send to the login. See
    :doc:`/jobs`.

    The client reads the token from the storage once, on first use, and keeps it
    with its session (in a request: for the rest of the request). It needs an app
    context whenever it is used.

    .. versionadded:: 0.1
    """

    def __init__(self, name: str, owner: object, user: t.Any, *, sender: object):
        if user is None:
            raise ValueError(
                "for_user() needs a user or a user id, not None (was the user found?)."
            )
        #: The provider's name.
        self.name = name
        #: The user the client is bound to, as given; ``CURRENT_USER`` for the
        #: current user.
        self.user = user
        self._owner = owner
        self._sender = sender
        #: Outside a request: the user's key and entry, while the key is the same.
        self._own: tuple[t.Hashable, Entry] | None = None

    def __repr__(self) -> str:
        who = "current user" if self.user is CURRENT_USER else repr(self.user)
        return f"<UserClient {self.name!r} for {who}>"

    # -- where the token is kept -------------------------------------------------

    @property
    def _state(self) -> AppState:
        return get_state(owner=self._owner)

    @property
    def storage(self) -> BaseStorage:
        """The token storage of the current app."""
        return self._state.storage

    def _user_kw(self) -> dict[str, t.Any]:
        # The current user is left to the storage, as before user= existed.
        return {} if self.user is CURRENT_USER else {"user": self.user}

    def _who(self, key: t.Hashable) -> str:
        if self.user is CURRENT_USER:
            return "the current user"
        return f"user {key!r}" if key is not None else "that user"

    def _entry(self, state: AppState) -> tuple[Entry, t.Hashable]:
        """The entry holding the user's token and session, and the user's key."""
        key = state.storage.user_key(self.user)
        if has_request_context() and (key is not None or self.user is CURRENT_USER):
            return request_entry((self.name, key)), key
        # Outside a request (or an explicit user the storage has no key for): the
        # client keeps its own, and drops it when its user's key changes (a storage
        # whose current user is read from g in a loop).
        own = self._own
        if own is None or own[0] != key:
            own = self._own = (key, Entry())
        return own[1], key

    def _load(self, state: AppState, entry: Entry) -> Token | None:
        if not entry.loaded:
            entry.load(state.storage.get(self.name, **self._user_kw()))
        token = entry.token
        return Token(token) if token is not None else None

    def _forget(self) -> None:
        forget(self.name)
        self._own = None

    def _calling(self) -> t.ContextManager[None]:
        if self.user is CURRENT_USER:
            return calling(self.name)
        try:
            key = self._state.storage.user_key(self.user)
        except Exception:
            key = None
        return calling(self.name, user=self._who(key))

    # -- the token -----------------------------------------------------------------

    @property
    def token(self) -> Token | None:
        """The user's token (``None`` without one), read from the storage once.

        Assigning a token stores it for the user; assigning ``None`` deletes it.
        """
        state = self._state
        entry, _ = self._entry(state)
        return self._load(state, entry)

    @token.setter
    def token(self, value: t.Mapping[str, t.Any] | None) -> None:
        storage = self._state.storage
        if value is None:
            storage.delete(self.name, **self._user_kw())
        else:
            storage.set(self.name, Token(value), **self._user_kw())
        self._forget()

    @property
    def authorized(self) -> bool:
        """Whether the user has a token for this provider."""
        return self.token is not None

    @property
    def session(self) -> ProviderSession:
        """The :class:`~requests_oauthlib.OAuth2Session` holding the user's token,
        built once per request (or per client, outside a request)."""
        state = self._state
        entry, _ = self._entry(state)
        return self._session(state, entry)

    def _session(self, state: AppState, entry: Entry) -> ProviderSession:
        if entry.session is None:
            token = self._load(state, entry)
            entry.session = new_session(
                state.provider(self.name),
                token=token,
                storage=state.storage,
                sender=self._sender,
                user=self.user,
            )
        return entry.session

    def _authorized_session(self) -> tuple[AppState, ProviderSession]:
        """The app's state and :attr:`session`, for a call that needs a token.

        :raises TokenMissing: the user has no token for this provider.
        """
        state = self._state
        entry, key = self._entry(state)
        session = self._session(state, entry)
        if not session.token:
            raise TokenMissing(f"No {self.name} token is stored for {self._who(key)}.")
        return state, session

    # -- calls ---------------------------------------------------------------------

    def request(self, method: str, url: str, **kwargs: t.Any) -> requests.Response:
        """Call the provider's API as the user. A relative ``url`` is joined to
        ``api_base_url``. An expiring token is refreshed first, and a 401 answer
        refreshes it and retries once.

        :raises TokenMissing: the user has no token for this provider.
        :raises ReauthorizationRequired: the provider refused the refresh token;
            the stored token was removed.
        :raises ProviderError: the provider failed the refresh, or could not be
            reached.
        """
        with self._calling():
            state, session = self._authorized_session()
            return session.request(
                method, api_url(state.provider(self.name), url), **kwargs
            )

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
        """Refresh the user's token now, whether it expired or not, and save it.

        :raises TokenMissing: the user has no token for this provider.
        :raises ReauthorizationRequired: the provider refused the refresh token.
        """
        with self._calling():
            return self._authorized_session()[1].refresh_token()

    def userinfo(self) -> dict[str, t.Any]:
        """The user's claims, fresh from the provider, with OpenID Connect names:
        the userinfo endpoint, or for plain OAuth 2 presets the mapped profile.
        The token is refreshed first if needed.

        :raises TokenMissing: the user has no token for this provider.
        :raises ProviderError: the provider refused or failed the request.
        """
        with self._calling():
            state, session = self._authorized_session()
            claims = state.provider(self.name).fetch_profile(session)
        if claims is None:
            raise ConfigurationError(
                f"Provider {self.name!r} has no userinfo endpoint or profile mapping."
            )
        return claims

    def revoke_token(self) -> bool:
        """Revoke the user's token at the provider (RFC 7009) and delete it from
        the storage, whatever the provider answers.

        :return: whether the provider confirmed every revocation; ``False`` when
            it has no revocation endpoint, failed, or could not be reached, or the
            user had no token.
        """
        token = self.token
        if token is None:
            return False
        state = self._state
        confirmed = state.provider(self.name).revoke(token)
        state.storage.delete(self.name, **self._user_kw())
        self._forget()
        signals.token_revoked.send(self._sender, reason="logout")
        return confirmed
