"""Incremental authorization: ask a logged-in user for more scopes when a feature
needs them, rather than for everything at the first login.

- :func:`has_scopes`: whether the current user's token has the scopes.
- :func:`request_scopes`: a redirect to ``/login/<name>?scope=...``, which asks the
  provider for those scopes on top of the granted ones.
- :func:`scopes_required`: a view decorator doing both.

Only the scopes declared at ``register`` (``optional_scopes``) can be asked for.
The callback of a scope request stores the new token for the same user, with its
scope recorded, and refuses (409) another provider identity than the one linked:
:func:`check_identity`.

Nothing here imports the provider or the views: ``Provider`` delegates to these
functions, and :mod:`.login` calls :func:`begin` and :func:`check_identity`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import functools
import typing as t

from flask import redirect
from flask import request
from flask import url_for
from werkzeug.wrappers import Response

from .errors import CallbackError
from .errors import ConfigurationError
from .errors import OAuthClientError
from .errors import ProviderError
from .errors import TokenError
from .errors import TokenMissing
from .linking import identity_owner
from .linking import is_current_user
from .storage.base import BaseStorage

if t.TYPE_CHECKING:
    from .state import AppState
    from .tokens import Identity
    from .tokens import Token


F = t.TypeVar("F", bound=t.Callable[..., t.Any])

#: The longest ``scope`` parameter the login view takes.
MAX_SCOPE_PARAM = 2048


class ProviderLike(t.Protocol):
    """What these functions use of :class:`~flask_oauthclient.Provider`."""

    name: str
    config: dict[str, t.Any]

    @property
    def token(self) -> Token | None: ...

    def userinfo(self) -> dict[str, t.Any]: ...


class InsufficientScope(OAuthClientError):
    """The current user's token lacks a scope the view needs
    (:func:`scopes_required`, for an API client: a browser is sent to the
    provider instead). Answers 403 ``insufficient_scope`` (RFC 6750 §3.1).

    .. versionadded:: 0.1
    """

    status_code = 403
    title = "Permission needed"
    description = "This needs a permission that was not granted."
    reason = "insufficient_scope"

    def __init__(self, provider: str, scopes: t.Iterable[str]) -> None:
        #: The scopes that were missing.
        self.scopes = sorted(scopes)
        self.provider = provider
        super().__init__(f"{provider!r} token lacks the scopes {self.scopes}.")


class ScopeNotAllowed(CallbackError):
    """``/login/<name>?scope=...`` asked for a scope not declared in
    ``optional_scopes`` (a crafted link): 400, and nothing was asked of the
    provider.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        super().__init__(
            "scope_not_allowed",
            "The scope request names a scope not declared.",
            description=(
                "This link asks for a permission this site does not ask for. "
                "Nothing was sent to the provider."
            ),
        )


class IdentityMismatch(CallbackError):
    """A scope request came back with another account at the provider than the
    one linked to the user: 409, nothing was stored.

    .. versionadded:: 0.1
    """

    status_code = 409
    title = "Another account"
    description = (
        "You signed in with another account than the one linked here. Nothing was "
        "changed: sign in with the linked account to grant the permission."
    )

    def __init__(self, provider: str) -> None:
        super().__init__(
            "identity_mismatch",
            f"The {provider!r} scope request came back with another identity.",
        )


def parse_scope(value: t.Any, separator: str = " ") -> list[str]:
    """The scopes of a token's ``scope`` (a string, split on white space and on
    the provider's ``separator``; or a list), in order, without repeats."""
    if isinstance(value, str):
        value = [value]
    elif not isinstance(value, (list, tuple)):
        return []
    items = [
        scope
        for item in value
        for scope in str(item).replace(separator or " ", " ").split()
    ]
    return list(dict.fromkeys(items))


def _config_scopes(config: t.Mapping[str, t.Any], key: str) -> list[str]:
    value = config.get(key)
    return value.split() if isinstance(value, str) else list(value or [])


def granted_scopes(
    token: t.Mapping[str, t.Any] | None, config: t.Mapping[str, t.Any]
) -> list[str]:
    """The scopes of ``token``: its ``scope``, or without one (RFC 6749 §5.1: then
    it is what was asked for) the ``scope`` of ``register``."""
    if token is None:
        return []
    if token.get("scope"):
        return parse_scope(token["scope"], config.get("scope_separator") or " ")
    return _config_scopes(config, "scope")


def has_scopes(provider: ProviderLike, *scopes: str) -> bool:
    """Whether the current user's token of ``provider`` has every one of
    ``scopes``: ``False`` without a token.

    .. versionadded:: 0.1
    """
    try:
        token = provider.token
    except TokenError:
        return False
    if token is None:
        return False
    return set(scopes) <= set(granted_scopes(token, provider.config))


def _check_declared(provider: ProviderLike, scopes: t.Sequence[str]) -> None:
    if not scopes:
        raise ConfigurationError("request_scopes() needs at least one scope.")
    declared = set(_config_scopes(provider.config, "optional_scopes"))
    declared |= set(_config_scopes(provider.config, "scope"))
    undeclared = [s for s in scopes if s not in declared]
    if undeclared:
        raise ConfigurationError(
            f"Provider {provider.name!r}: {', '.join(undeclared)} is not declared; "
            "add it to optional_scopes=[...] in oauth.register() to ask for it later."
        )


def request_scopes(
    provider: ProviderLike, *scopes: str, next: str | None = None
) -> Response:
    """A redirect that asks the provider for ``scopes`` on top of those granted
    to the current user (through ``/login/<name>?scope=...``). On return the token
    is stored for the same user, with the scope updated, and the browser goes to
    ``next`` (checked to stay on this site).

    :raises ConfigurationError: a scope is not in ``optional_scopes`` (or
        ``scope``) of ``register``.

    .. versionadded:: 0.1
    """
    _check_declared(provider, scopes)
    return redirect(
        url_for(f"{provider.name}.login", scope=" ".join(scopes), next=next)
    )


def scopes_required(provider: ProviderLike, *scopes: str) -> t.Callable[[F], F]:
    """A view decorator: the view runs when the current user's token has
    ``scopes``. Otherwise a browser's ``GET`` is sent to the provider to grant
    them (:func:`request_scopes`, then back to this page); any other request
    gets 403 ``insufficient_scope``; a user without a token gets the usual
    :exc:`~flask_oauthclient.TokenMissing` (a browser is sent to log in).

    .. versionadded:: 0.1
    """
    _check_declared(provider, scopes)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: t.Any, **kwargs: t.Any) -> t.Any:
            if has_scopes(provider, *scopes):
                return view(*args, **kwargs)
            if not _has_token(provider):
                error = TokenMissing(f"No {provider.name!r} token for this user.")
                error.provider = provider.name
                raise error
            if request.method == "GET" and not _wants_json():
                next_url = request.full_path if request.query_string else request.path
                return request_scopes(provider, *scopes, next=next_url)
            missing = set(scopes) - set(granted_scopes(provider.token, provider.config))
            raise InsufficientScope(provider.name, missing)

        return t.cast(F, wrapped)

    return decorator


def _has_token(provider: ProviderLike) -> bool:
    try:
        return provider.token is not None
    except TokenError:
        return False


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" or request.is_json


# -- the login view's side -----------------------------------------------------


class ScopeRequest:
    """What :func:`begin` found: the scopes to ask for, and the identity the
    callback must come back with when the storage can't tell."""

    def __init__(
        self, scopes: list[str], identity: tuple[str | None, str] | None
    ) -> None:
        self.scopes = scopes
        self.identity = identity


def begin(
    state: AppState, provider: ProviderLike, param: t.Sequence[str]
) -> ScopeRequest:
    """Check the login view's ``scope`` parameter and make the scope request:
    the login's scopes, the granted ones and the requested ones.

    :param param: every value of the ``scope`` parameter.
    :raises ScopeNotAllowed: a scope not in ``optional_scopes`` (400, before
        anything is asked of the provider).
    :raises TokenMissing: the current user has no token to add to.
    """
    ap = state.provider(provider.name)
    if len(param) != 1 or len(param[0]) > MAX_SCOPE_PARAM:
        raise ScopeNotAllowed()
    requested = param[0].split()
    if not requested or not set(requested) <= set(ap.optional_scopes) | set(ap.scope):
        raise ScopeNotAllowed()
    token = state.storage.get(provider.name)
    if token is None:
        error = TokenMissing("A scope request needs the user's token to add to.")
        error.provider = provider.name
        raise error
    granted = granted_scopes(token, provider.config)
    scopes = list(dict.fromkeys([*ap.scope, *granted, *requested]))
    return ScopeRequest(scopes, _expected_identity(state.storage, provider, token))


def _expected_identity(
    storage: BaseStorage, provider: ProviderLike, token: Token
) -> tuple[str | None, str] | None:
    """Who the token belongs to at the provider, for storages that don't record
    it: its ID token's ``(iss, sub)`` (verified at login), else the ``sub`` of
    the user's profile, asked of the provider now."""
    id_token = token.get("id_token")
    if isinstance(id_token, str):
        import jwt

        try:
            claims = jwt.decode(id_token, options={"verify_signature": False})
            return str(claims["iss"]), str(claims["sub"])
        except (jwt.InvalidTokenError, KeyError):
            pass
    if type(storage).find_user is not BaseStorage.find_user:
        return None  # the storage knows whose identity it is
    sub = provider.userinfo().get("sub")
    if not isinstance(sub, str) or not sub:
        raise ProviderError("The provider's profile has no user id.")
    return None, sub


def check_identity(
    state: AppState,
    provider: str,
    identity: Identity,
    expected: tuple[str | None, str] | None,
) -> None:
    """Refuse a scope request's token of another identity than the user's.

    :raises IdentityMismatch: the identity is another user's, or not the one
        the scope request began with.
    """
    owner = identity_owner(
        state, provider, identity, "The permission could not be recorded."
    )
    if owner is not None:
        if not is_current_user(state, owner):
            raise IdentityMismatch(provider)
        return
    if expected is None or expected[1] != identity.subject:
        raise IdentityMismatch(provider)
    if expected[0] is not None and expected[0] != identity.issuer:
        raise IdentityMismatch(provider)


def with_scope(token: Token, scopes: list[str]) -> Token:
    """``token`` with its ``scope`` recorded: the provider's, or without one
    (RFC 6749 §5.1) the scopes asked for (a list, as oauthlib keeps it)."""
    if not token.get("scope"):
        token["scope"] = list(scopes)
    return token
