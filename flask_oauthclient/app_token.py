"""The app's own token: the client credentials grant (RFC 6749 §4.4), for calls
the app makes in its own name rather than a user's; ``oauth.<name>.for_app()``.

One token per app, provider and scope, kept in this process: fetched on first use,
shared by every thread until it is about to expire (the refresh leeway, see
:func:`.tokens.is_expiring`), fetched again once when a call gets a 401. Callers
that need it at the same moment wait for one fetch; when that fetch fails, those
waiting share its error rather than asking the provider again one after the other.
"""

from __future__ import annotations

import threading
import typing as t
from dataclasses import dataclass
from dataclasses import field
from weakref import WeakKeyDictionary

import requests
from oauthlib.oauth2 import BackendApplicationClient
from oauthlib.oauth2 import OAuth2Error

from .client import api_url
from .client import calling
from .errors import ConfigurationError
from .errors import ProviderError
from .errors import refusal_description
from .state import get_state
from .tokens import is_expiring
from .tokens import Token
from .transport import body_cap
from .transport import check_token_response
from .transport import MAX_TOKEN_RESPONSE_BYTES
from .transport import translate_http_error

if t.TYPE_CHECKING:
    from .app_provider import AppProvider

#: The scopes of an app token, in a canonical order; ``None``: no ``scope`` sent.
ScopeKey = t.Optional[tuple[str, ...]]


@dataclass
class _Slot:
    """The app token of one app, provider and scope, and its fetch."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    token: Token | None = None
    #: Fetches finished, successful or not.
    attempts: int = 0
    #: The error of the last fetch, if it failed: (class, message).
    failure: tuple[type[Exception], str] | None = None


_guard = threading.Lock()
#: The slots of each app provider; they go with the app.
_slots: WeakKeyDictionary[AppProvider, dict[ScopeKey, _Slot]] = WeakKeyDictionary()


def _slot(app_provider: AppProvider, scope: ScopeKey) -> _Slot:
    with _guard:
        slots = _slots.get(app_provider)
        if slots is None:
            slots = _slots[app_provider] = {}
        found = slots.get(scope)
        if found is None:
            found = slots[scope] = _Slot()
        return found


def _usable(token: Token | None, stale: Token | None, leeway: float) -> bool:
    if token is None or is_expiring(token, leeway):
        return False
    return stale is None or token.get("access_token") != stale.get("access_token")


def app_token(
    app_provider: AppProvider, scope: ScopeKey, *, stale: Token | None = None
) -> Token:
    """The app's token for ``scope``: the one held, unless it expires within the
    refresh leeway or is ``stale`` (the provider refused it); otherwise a new one,
    fetched once however many threads ask at the same moment.

    :raises ProviderError: the provider refused the grant, failed, or could not be
        reached.
    """
    slot = _slot(app_provider, scope)
    leeway = app_provider.settings.refresh_leeway
    token = slot.token
    if _usable(token, stale, leeway):
        return Token(t.cast(Token, token))
    attempts = slot.attempts
    with slot.lock:
        token = slot.token
        if _usable(token, stale, leeway):
            return Token(t.cast(Token, token))
        if slot.failure is not None and slot.attempts != attempts:
            # The fetch this caller waited for failed a moment ago: share it.
            error_class, message = slot.failure
            raise error_class(message)
        try:
            token = fetch_app_token(app_provider, scope)
        except (ProviderError, ConfigurationError) as e:
            slot.failure = (type(e), str(e))
            raise
        except BaseException:
            slot.failure = None
            raise
        else:
            slot.failure = None
            slot.token = token
        finally:
            # Counted when done: a caller that read the count before it waits for
            # this fetch and shares its outcome.
            slot.attempts += 1
        return Token(token)


def fetch_app_token(app_provider: AppProvider, scope: ScopeKey) -> Token:
    """Ask the token endpoint for a token with the client credentials grant,
    authenticating as the app provider does for every token request."""
    ap = app_provider
    session = ap.new_session(client=BackendApplicationClient(client_id=ap.client_id))
    # Read the answer with a cap, before requests-oauthlib reads (and logs) it.
    session.hooks["response"].append(body_cap(MAX_TOKEN_RESPONSE_BYTES))
    session.register_compliance_hook("access_token_response", check_token_response)
    kwargs: dict[str, t.Any] = ap.client_auth()
    if scope:
        kwargs["scope"] = ap.scope_separator.join(scope)
    try:
        token = session.fetch_token(
            ap.endpoint("token_url"), headers={"Accept": "application/json"}, **kwargs
        )
    except requests.RequestException as e:
        raise translate_http_error(e) from None
    except OAuth2Error as e:
        # invalid_client, unauthorized_client (the grant is not enabled for this
        # client), invalid_scope: the app's configuration at the provider.
        raise ProviderError(
            f"The token endpoint refused the client credentials grant: {e.error}.",
            description=refusal_description(e.error),
        ) from None
    except ValueError:
        raise ProviderError("The token endpoint sent an invalid answer.") from None
    if getattr(ap, "token_type_required", False) and not token.get("token_type"):
        raise ProviderError(
            "The token endpoint's answer has no token_type (RFC 6749 §5.1)."
        )
    return Token(token)


def _scope_key(scope: str | t.Iterable[str] | None) -> ScopeKey:
    if scope is None:
        return None
    items = scope.split() if isinstance(scope, str) else [str(s) for s in scope]
    return tuple(sorted(set(items))) or None


def _replayable(kwargs: t.Mapping[str, t.Any]) -> bool:
    """Whether the request's body can be sent twice (not a stream or files)."""
    data = kwargs.get("data")
    return kwargs.get("files") is None and (
        data is None or isinstance(data, (bytes, str, dict, list, tuple))
    )


class AppClient:
    """The API client of a provider with the app's own token, as returned by
    :meth:`Provider.for_app <flask_oauthclient.Provider.for_app>`: the client
    credentials grant (RFC 6749 §4.4), for calls the app makes in its own name.

    .. code-block:: python

        reports = oauth.corp.for_app(scope="reports.read").get("reports/daily")

    The token is fetched on first use and shared by every thread of the process
    (per app, provider and scope) until it is about to expire; a 401 answer gets
    one new token and one retry. Many threads needing a token at the same moment
    cause one fetch. The client authenticates at the token endpoint as it does
    for logins (``token_endpoint_auth_method``). It needs an app context whenever
    it is used.

    :raises ~flask_oauthclient.ProviderError: (from every call) the provider
        refused the grant (the client may not use it, or the scope is unknown),
        failed, or could not be reached: 502, 503 or 504 in a request.

    .. versionadded:: 0.1
    """

    def __init__(
        self, name: str, owner: object, scope: str | t.Iterable[str] | None = None
    ) -> None:
        #: The provider's name.
        self.name = name
        #: The scopes asked for, sorted; ``None``: the provider's default.
        self.scope = _scope_key(scope)
        self._owner = owner

    def __repr__(self) -> str:
        return f"<AppClient {self.name!r} scope={self.scope!r}>"

    def _app_provider(self) -> AppProvider:
        return get_state(owner=self._owner).provider(self.name)

    @property
    def token(self) -> Token:
        """The app's token, fetched if none is held or it is about to expire."""
        with calling(self.name):
            return app_token(self._app_provider(), self.scope)

    def fetch_token(self) -> Token:
        """Replace the app's token now with a new one from the provider (one fetch
        for every thread asking at the same moment), and return it."""
        with calling(self.name):
            ap = self._app_provider()
            held = _slot(ap, self.scope).token
            return app_token(ap, self.scope, stale=held or Token())

    def request(self, method: str, url: str, **kwargs: t.Any) -> requests.Response:
        """Call the provider's API with the app's token. A relative ``url`` is
        joined to ``api_base_url``. A 401 answer gets a new token and one retry
        (unless the body is a stream or files, which cannot be sent twice).

        :raises ProviderError: no token could be had, or the provider could not be
            reached.
        """
        with calling(self.name):
            ap = self._app_provider()
            url = api_url(ap, url)
            token = app_token(ap, self.scope)
            response = ap.new_session(token=token).request(method, url, **kwargs)
            if response.status_code == 401 and _replayable(kwargs):
                response.close()
                token = app_token(ap, self.scope, stale=token)
                response = ap.new_session(token=token).request(method, url, **kwargs)
            return response

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
