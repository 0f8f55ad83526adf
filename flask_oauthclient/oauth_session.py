"""The ``OAuth2Session`` of a provider and user, and where a request keeps it: on
``g``, tied to the request object, keyed by the provider and the storage's key of
the user (:meth:`~flask_oauthclient.storage.BaseStorage.user_key`).

A session is built at most once per request, provider and user, and is never shared
between requests or users, so one user's token cannot reach another user's call.
Outside a request (a job, a CLI command) the client that asked for it keeps it
(:mod:`.client`). It holds the only copy of the token where it is kept: read from
the storage once, replaced by a refresh. Its connections come from the provider's
shared pool (see :mod:`.transport`).
"""

from __future__ import annotations

import functools
import typing as t

import requests
from flask import g
from flask import has_request_context
from flask import request
from oauthlib.oauth2 import OAuth2Error
from oauthlib.oauth2 import TokenExpiredError
from requests_oauthlib import OAuth2Session
from requests_oauthlib.oauth2_session import TokenUpdated

from . import signals
from .errors import ProviderError
from .errors import ReauthorizationRequired
from .errors import refusal_description
from .storage.base import CURRENT_USER
from .tokens import is_expiring
from .tokens import Token
from .transport import capped
from .transport import check_token_response
from .transport import MAX_TOKEN_RESPONSE_BYTES
from .transport import PooledOAuth2Session
from .transport import translate_http_error

if t.TYPE_CHECKING:
    from .app_provider import AppProvider
    from .storage.base import BaseStorage


class Entry:
    """What one request knows about one provider and user: the token as read from
    the storage, until :attr:`session` is built; from then on the session holds it."""

    __slots__ = ("_token", "loaded", "session")

    def __init__(self) -> None:
        self._token: Token | None = None
        self.loaded = False
        self.session: ProviderSession | None = None

    @property
    def token(self) -> Token | None:
        if self.session is not None:
            token = self.session.token
            return Token(token) if token else None
        return self._token

    def load(self, token: Token | None) -> None:
        self._token = token
        self.loaded = True


def request_entry(key: t.Hashable) -> Entry:
    """This request's :class:`Entry` for ``key``: a provider and the storage's key of
    a user.

    ``g`` belongs to the app context, which a test harness (pytest-flask) may keep
    across several requests: entries are tied to the request object too, so that a
    test switching users never reuses the previous request's token.

    :raises RuntimeError: outside a request (a job or a command keeps its
        entries in its client instead).
    """
    entries = _entries(create=True)
    if entries is None:
        raise RuntimeError("request_entry() needs a request context.")
    found = entries.get(key)
    if found is None:
        found = entries[key] = Entry()
    return found


def forget(provider: str) -> None:
    """Drop this request's entries of ``provider`` (for every user), after its
    stored token changed: the next use reads the storage again."""
    entries = _entries(create=False)
    if entries is not None:
        for key in [k for k in entries if k[0] == provider]:
            del entries[key]


def _entries(create: bool) -> dict[t.Any, Entry] | None:
    if not has_request_context():
        return None
    owner = request._get_current_object()  # type: ignore[attr-defined]
    held: tuple[t.Any, dict[t.Any, Entry]] | None = g.get("_oauthclient_requests")
    if held is None or held[0] is not owner:
        if not create:
            return None
        held = g._oauthclient_requests = (owner, {})
    return held[1]


def new_session(
    app_provider: AppProvider,
    *,
    token: Token | None,
    storage: BaseStorage,
    sender: object,
    user: t.Any = CURRENT_USER,
) -> ProviderSession:
    """A :class:`ProviderSession` of ``user``, holding ``token``."""
    return app_provider.new_session(
        token=token,
        session_class=ProviderSession,
        app_provider=app_provider,
        storage=storage,
        sender=sender,
        user=user,
        # requests-oauthlib's own auto refresh, should the token expire between our
        # check and its own, lands in our single-flight refresh_token(); without
        # auto refresh, TokenExpiredError is raised.
        auto_refresh=app_provider.auto_refresh,
        token_updater=_saved_already if app_provider.auto_refresh else None,
    )


def _expired_on_arrival() -> ProviderError:
    """A token refreshed just now is expired already: requests-oauthlib would raise
    ``TokenExpiredError`` (a 500). The provider's token lifetime, or a clock, is
    off."""
    return ProviderError(
        "The provider issued an access token that had already expired; check its "
        "token lifetime and the clocks of both servers."
    )


def _saved_already(token: Token) -> None:
    """The session's ``token_updater``: the single-flight refresh saved it."""


class ProviderSession(PooledOAuth2Session):
    """The session of one provider and user: the user's token, refreshed
    by itself before it expires and once on a 401, through the single-flight
    refresh, which saves the new token for that user."""

    @property
    def token(self) -> t.Any:
        return OAuth2Session.token.fget(self)

    @token.setter
    def token(self, value: t.Any) -> None:
        OAuth2Session.token.fset(self, value)
        if value and "expires_at" not in value and "expires_in" not in value:
            # oauthlib's client keeps the previous token's expiry when the new one
            # has none (expires_in is only RECOMMENDED, RFC 6749 §5.1): a refreshed
            # token would look expired forever and refresh on every call.
            self._client._expires_at = None

    def __init__(
        self,
        *args: t.Any,
        app_provider: AppProvider,
        storage: BaseStorage,
        sender: object,
        user: t.Any = CURRENT_USER,
        auto_refresh: bool = False,
        **kwargs: t.Any,
    ) -> None:
        self.app_provider = app_provider
        self.storage = storage
        #: The public :class:`~flask_oauthclient.Provider`: the signals' sender.
        self.sender = sender
        #: Whose token this is (``CURRENT_USER``: the storage's current user).
        self.user = user
        self._auto_refresh = auto_refresh
        self._auto_refresh_url: str | None = None
        super().__init__(*args, **kwargs)

    @property
    def auto_refresh_url(self) -> str | None:
        """Where requests-oauthlib's own refresh goes. With ``auto_refresh`` the
        token endpoint is looked up only when a refresh happens, so that an API
        call with a valid token never waits for (or fails on) discovery."""
        if self._auto_refresh_url is not None:
            return self._auto_refresh_url
        if self._auto_refresh:
            return self.app_provider.endpoint("token_url")
        return None

    @auto_refresh_url.setter
    def auto_refresh_url(self, value: str | None) -> None:
        self._auto_refresh_url = value

    def request(
        self,
        method: str,
        url: str,
        data: t.Any = None,
        headers: t.Any = None,
        withhold_token: bool = False,
        **kwargs: t.Any,
    ) -> requests.Response:
        ap = self.app_provider
        if withhold_token or not self.token or not ap.auto_refresh:
            return super().request(
                method,
                url,
                data=data,
                headers=headers,
                withhold_token=withhold_token,
                **kwargs,
            )
        if is_expiring(self.token, ap.settings.refresh_leeway):
            if ap.token_updater is None:
                # requests-oauthlib's third style: refresh, save nothing, and hand
                # the new token to the caller in TokenUpdated.
                if not self.token.get("refresh_token"):
                    raise TokenExpiredError()
                from .refresh import InvalidGrant

                try:
                    self.token = self.refresh_at_provider(
                        self.token, token_url=ap.endpoint("token_url")
                    )
                except InvalidGrant:
                    raise ReauthorizationRequired(
                        "The provider refused the refresh token (invalid_grant)."
                    ) from None
                raise TokenUpdated(Token(self.token))
            self.refresh_token()
            if is_expiring(self.token, 0):
                raise _expired_on_arrival()
        used = self.token
        try:
            response = super().request(
                method, url, data=data, headers=headers, **kwargs
            )
        except TokenExpiredError:
            # Expired between our check and requests-oauthlib's, which refreshed
            # it again itself and found the new one expired too.
            raise _expired_on_arrival() from None
        if (
            response.status_code == 401
            and ap.token_updater is not None
            and used.get("refresh_token")
            and (data is None or isinstance(data, (bytes, str, dict, list, tuple)))
        ):
            # The token looked valid but was refused (revoked early, clock skew):
            # refresh once and retry once.
            response.close()
            self.refresh_token()
            response = super().request(
                method, url, data=data, headers=headers, **kwargs
            )
        return response

    def refresh_token(
        self,
        token_url: str | None = None,
        refresh_token: str | None = None,
        **kwargs: t.Any,
    ) -> Token:
        """Refresh the token through the single-flight refresh and save it.

        Unless another caller refreshed it meanwhile (the stored access token
        changed), the provider is asked; the arguments of requests-oauthlib's
        signature are accepted and the provider's settings used instead.
        """
        # Imported by the first refresh: a call with a valid token needs none of
        # it (nor its locks).
        from . import refresh

        ap = self.app_provider
        stale = Token(self.token or {})
        if refresh_token:
            stale["refresh_token"] = refresh_token
        call_provider = functools.partial(
            self.refresh_at_provider, token_url=token_url or ap.endpoint("token_url")
        )
        try:
            token, refreshed_here = refresh.single_flight(
                scope=ap.refresh_scope,
                provider=ap.name,
                storage=self.storage,
                stale=stale,
                call_provider=call_provider,
                leeway=ap.settings.refresh_leeway,
                user=self.user,
            )
        except refresh.GrantRevoked:
            signals.token_revoked.send(self.sender, reason="invalid_grant")
            raise
        self.token = token
        if refreshed_here:
            signals.token_refreshed.send(self.sender, token=token)
            if callable(ap.token_updater):
                ap.token_updater(token)
        return token

    def refresh_at_provider(self, current: Token, *, token_url: str) -> Token:
        """Send one refresh request for ``current`` and return the new token, merged
        with ``current`` where the answer is silent. Nothing is saved.

        :raises refresh.InvalidGrant: the provider refused the refresh token.
        """
        from .refresh import InvalidGrant

        ap = self.app_provider
        hooks = self.compliance_hook["refresh_token_response"]
        if check_token_response not in hooks:
            self.register_compliance_hook(
                "refresh_token_response", check_token_response
            )
        try:
            with capped(self, MAX_TOKEN_RESPONSE_BYTES):
                new = super().refresh_token(
                    token_url,
                    refresh_token=current["refresh_token"],
                    headers={"Accept": "application/json"},
                    **ap.refresh_auth(),
                )
        except requests.RequestException as e:
            raise translate_http_error(e) from None
        except OAuth2Error as e:
            if e.error == "invalid_grant":
                raise InvalidGrant() from None
            # invalid_client (a rotated secret), unauthorized_client, ...: our side
            # or the provider's, not the user's; the stored token stays.
            raise ProviderError(
                f"The token endpoint refused the refresh: {e.error}.",
                description=refusal_description(e.error),
            ) from None
        except ValueError:
            raise ProviderError("The token endpoint sent an invalid answer.") from None
        merged = Token(new)
        # RFC 6749 §6: the provider may keep the refresh token; keep ours then.
        merged.setdefault("refresh_token", current["refresh_token"])
        if "id_token" in merged:
            ap.check_refreshed_id_token(current, merged)
        elif "id_token" in current:
            merged["id_token"] = current["id_token"]
        return merged
