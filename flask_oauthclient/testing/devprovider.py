"""A development OpenID Connect provider: a real OAuth 2.0 / OIDC server for local
development, tests and benchmarks, kept entirely in memory.

It is built on oauthlib's :class:`oauthlib.openid.Server` with a request validator
that implements the OIDC validator methods; ID tokens are RS256 JWTs signed with a
key generated per provider and published at ``/jwks``. Any user name signs in, with
no password. Nothing in :mod:`flask_oauthclient` imports this module.

.. code-block:: python

    from flask_oauthclient.testing.devprovider import DevProvider

    dev = DevProvider(auto_login="alice")
    with dev.serve() as issuer:
        ...  # register a provider with server_metadata_url=dev.metadata_url

From a shell: ``python -m flask_oauthclient.testing.devprovider --port 5001``.

Endpoints, relative to the issuer: ``/.well-known/openid-configuration``,
``/authorize``, ``/token``, ``/userinfo``, ``/jwks``, ``/revoke`` (RFC 7009),
``/introspect`` (RFC 7662), ``/logout`` (RP-initiated logout) and ``/api/<path>``,
a protected resource that echoes who called it. Confidential clients may also get
a token of their own with the client credentials grant (RFC 6749 §4.4); ``/api/``
then answers with the client ID as ``sub``.

oauthlib's server side never checks for https (only its client side reads
``OAUTHLIB_INSECURE_TRANSPORT``), so the provider serves plain http on loopback
without touching the environment.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import cast
from typing import Union
from urllib.parse import unquote_plus
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask import g
from flask import has_request_context
from flask import render_template_string
from flask import request
from flask import Response
from flask import session
from oauthlib.common import add_params_to_uri
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth2.rfc6749 import errors as oauth_errors
from oauthlib.openid import RequestValidator
from oauthlib.openid import Server
from werkzeug.serving import ThreadedWSGIServer
from werkzeug.serving import WSGIRequestHandler

__all__ = ["DevClient", "DevProvider", "DevStats", "main", "user_claims"]

_log = logging.getLogger(__name__)

#: Scopes listed in the metadata; other scope values are accepted and granted as
#: asked, so an app can model its own API scopes.
SUPPORTED_SCOPES = ("openid", "profile", "email", "offline_access")
_DEFAULT_MINT_SCOPE = ("openid", "profile", "email", "offline_access")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Lifetime of an authorization code, in seconds.
_CODE_TTL = 120
#: Form fields of the login page that are not authorization request parameters.
_FORM_FIELDS = frozenset({"csrf_token", "action", "username"})
#: Prune expired state after this many issued tokens, so long benchmarks stay flat.
_PRUNE_EVERY = 1000
#: The largest request body the server reads.
_MAX_BODY = 1024 * 1024

_Socket = Union[socket.socket, tuple[bytes, socket.socket]]

#: The providers :meth:`DevProvider.serve` is serving in this process, by the URLs
#: they answer at (their issuer, and the server's base URL when it differs).
_served: dict[str, DevProvider] = {}
_served_lock = threading.Lock()


@dataclass(frozen=True)
class DevClient:
    """A client registered with the :class:`DevProvider`.

    :param client_id: The client identifier.
    :param client_secret: The secret for ``client_secret_basic`` and
        ``client_secret_post``. ``None`` makes a public client, which must use PKCE.
    :param redirect_uris: The allowed redirect URIs, matched exactly. ``None`` accepts
        any ``http`` or ``https`` URI on ``127.0.0.1``, ``localhost`` or ``[::1]``.
    :param post_logout_redirect_uris: Where ``/logout`` may send the user back to.
        ``None`` follows ``redirect_uris``: any loopback URI, or the redirect URIs.
    """

    client_id: str
    client_secret: str | None = None
    redirect_uris: Sequence[str] | None = None
    post_logout_redirect_uris: Sequence[str] | None = None

    def __post_init__(self) -> None:
        # Tuples, so that the frozen client stays hashable.
        for name in ("redirect_uris", "post_logout_redirect_uris"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    def allows_redirect_uri(self, uri: str) -> bool:
        """Whether ``uri`` is a valid redirect URI for this client."""
        if self.redirect_uris is None:
            return _is_loopback_uri(uri)
        return uri in self.redirect_uris

    def allows_post_logout_redirect_uri(self, uri: str) -> bool:
        """Whether ``/logout`` may redirect to ``uri`` for this client."""
        if self.post_logout_redirect_uris is not None:
            return uri in self.post_logout_redirect_uris
        return self.allows_redirect_uri(uri)


class DevStats(Mapping[str, int]):
    """Thread-safe counters of what the provider did, read like a
    :class:`collections.Counter`: a key never counted reads 0.

    Keys: ``authorize`` (authorization codes issued), ``token_authorization_code``,
    ``token_refresh_token`` and ``token_client_credentials`` (token requests by
    grant type, failed ones included), ``invalid_grant`` (token responses with
    that error), ``userinfo``, ``revocation``, ``introspection``, ``logout``,
    ``api`` (requests to those endpoints) and ``connections`` (TCP connections
    accepted by :meth:`DevProvider.serve`'s server; a keep-alive connection counts
    once).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def incr(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``key``."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._counts.clear()

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of all counters."""
        with self._lock:
            return dict(self._counts)

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._counts

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._counts)

    def __repr__(self) -> str:
        return f"DevStats({self.snapshot()!r})"


@dataclass
class _Grant:
    """One authorization of a client by a user; every token descends from one."""

    grant_id: str
    user: str
    client_id: str
    scopes: tuple[str, ...]
    auth_time: int
    revoked: bool = False


@dataclass
class _Code:
    code: str
    grant: _Grant
    redirect_uri: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    claims: Any
    expires_at: float


@dataclass
class _AccessToken:
    token: str
    grant: _Grant
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    revoked: bool = False

    def active(self, now: float) -> bool:
        # Zero clock tolerance: a token is dead at its expiry second.
        return not (self.revoked or self.grant.revoked) and now < self.expires_at


@dataclass
class _RefreshToken:
    token: str
    grant: _Grant
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    consumed: bool = False
    revoked: bool = False

    def active(self, now: float) -> bool:
        return (
            not (self.consumed or self.revoked or self.grant.revoked)
            and now < self.expires_at
        )


@dataclass
class _RequestState:
    """What the validator learns about one oauthlib request between its calls."""

    grant: _Grant | None = None
    code: _Code | None = None
    refresh: _RefreshToken | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _state(oauth_request: OAuthRequest) -> _RequestState:
    # Kept in the instance dict, never behind oauthlib's parameter lookup
    # (Request.__getattr__), where a client could inject it as a query parameter.
    attrs = vars(oauth_request)
    if "_devprovider" not in attrs:
        attrs["_devprovider"] = _RequestState()
    return cast(_RequestState, attrs["_devprovider"])


def _is_loopback_uri(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and parts.hostname in _LOOPBACK_HOSTS
        and not parts.fragment
        and parts.username is None
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _scope_list(scope: str | Iterable[str] | None) -> list[str]:
    if scope is None:
        return []
    if isinstance(scope, str):
        return scope.split()
    return list(scope)


def user_claims(username: str, scopes: Iterable[str]) -> dict[str, Any]:
    """The claims the provider releases for ``username`` under ``scopes``.

    ``openid`` gives ``sub``; ``profile`` adds ``name`` (the user name
    title-cased), ``given_name``, ``family_name`` and ``preferred_username``;
    ``email`` adds ``email`` (``<username>@example.test``) and ``email_verified``.
    """
    granted = set(scopes)
    claims: dict[str, Any] = {"sub": username}
    if "profile" in granted:
        parts = [part for part in re.split(r"[\s._-]+", username) if part]
        claims.update(
            name=username.title(),
            given_name=parts[0].title() if parts else username,
            family_name=" ".join(p.title() for p in parts[1:]) or "Example",
            preferred_username=username,
        )
    if "email" in granted:
        claims.update(email=f"{username}@example.test", email_verified=True)
    return claims


class _Validator(RequestValidator):  # type: ignore[misc]
    """oauthlib's questions, answered from the provider's in-memory state."""

    def __init__(self, provider: DevProvider) -> None:
        super().__init__()
        self._p = provider

    # -- clients ---------------------------------------------------------------

    def _basic_credentials(self, req: OAuthRequest) -> tuple[str, str] | None:
        header = req.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except ValueError:
            return None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            return None
        return client_id, secret

    def client_authentication_required(
        self, req: OAuthRequest, *args: Any, **kwargs: Any
    ) -> bool:
        if self._basic_credentials(req) is not None or req.client_secret:
            return True
        client = self._p._clients.get(req.client_id or "")
        return client is None or client.client_secret is not None

    def authenticate_client(self, req: OAuthRequest, *args: Any, **kwargs: Any) -> bool:
        basic = self._basic_credentials(req)
        if basic is not None:
            # RFC 6749 2.3: a client must not use two authentication methods.
            if req.client_secret:
                return False
            candidates = [basic, (unquote_plus(basic[0]), unquote_plus(basic[1]))]
        elif req.client_id and req.client_secret:
            candidates = [(req.client_id, req.client_secret)]
        else:
            return False
        for client_id, secret in candidates:
            client = self._p._clients.get(client_id)
            if client is None or client.client_secret is None:
                continue
            if not hmac.compare_digest(
                secret.encode("utf-8"), client.client_secret.encode("utf-8")
            ):
                continue
            if req.client_id and req.client_id != client_id:
                return False
            req.client = client
            req.client_id = client_id
            return True
        return False

    def authenticate_client_id(
        self, client_id: str, req: OAuthRequest, *args: Any, **kwargs: Any
    ) -> bool:
        client = self._p._clients.get(client_id or "")
        if client is None or client.client_secret is not None:
            return False
        req.client = client
        return True

    def validate_client_id(
        self, client_id: str, req: OAuthRequest, *args: Any, **kwargs: Any
    ) -> bool:
        client = self._p._clients.get(client_id)
        if client is None:
            return False
        req.client = client
        return True

    def validate_redirect_uri(
        self, client_id: str, redirect_uri: str, req: OAuthRequest, *a: Any, **k: Any
    ) -> bool:
        client = self._p._clients.get(client_id)
        return client is not None and client.allows_redirect_uri(redirect_uri)

    def get_default_redirect_uri(
        self, client_id: str, req: OAuthRequest, *args: Any, **kwargs: Any
    ) -> str | None:
        client = self._p._clients.get(client_id)
        if (
            client is not None
            and client.redirect_uris
            and len(client.redirect_uris) == 1
        ):
            return client.redirect_uris[0]
        return None

    def validate_response_type(
        self,
        client_id: str,
        response_type: str,
        client: Any,
        req: Any,
        *a: Any,
        **k: Any,
    ) -> bool:
        return bool(response_type == "code")

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, req: Any, *a: Any, **k: Any
    ) -> bool:
        if grant_type == "client_credentials":
            # RFC 6749 4.4: confidential clients only (authenticate_client ran).
            return client is not None and client.client_secret is not None
        return grant_type in ("authorization_code", "refresh_token")

    def validate_scopes(
        self,
        client_id: str,
        scopes: list[str],
        client: Any,
        req: Any,
        *a: Any,
        **k: Any,
    ) -> bool:
        if req.grant_type == "client_credentials" and not scopes:
            return True  # the app's token without a scope: the provider's default
        return bool(scopes) and all(isinstance(s, str) and s for s in scopes)

    def get_default_scopes(
        self, client_id: str, req: OAuthRequest, *args: Any, **kwargs: Any
    ) -> list[str]:
        if req.grant_type == "client_credentials":
            return []
        return ["openid"]

    def is_pkce_required(self, client_id: str, req: OAuthRequest) -> bool:
        client = self._p._clients.get(client_id or "")
        public = client is not None and client.client_secret is None
        return self._p.require_pkce or public

    def is_origin_allowed(
        self, client_id: str, origin: str, req: OAuthRequest, *a: Any, **k: Any
    ) -> bool:
        return False

    def validate_user(self, *args: Any, **kwargs: Any) -> bool:
        return False

    # -- authorization codes -----------------------------------------------------

    def save_authorization_code(
        self, client_id: str, code: dict[str, str], req: OAuthRequest, *a: Any, **k: Any
    ) -> None:
        login = self._p._current_login()
        auth_time = login[1] if login is not None else int(time.time())
        grant = _Grant(
            grant_id=secrets.token_urlsafe(12),
            user=req.user,
            client_id=client_id,
            scopes=tuple(req.scopes),
            auth_time=auth_time,
        )
        record = _Code(
            code=code["code"],
            grant=grant,
            redirect_uri=None if req.using_default_redirect_uri else req.redirect_uri,
            nonce=req.nonce,
            code_challenge=req.code_challenge,
            code_challenge_method=req.code_challenge_method,
            claims=req.claims,
            expires_at=time.time() + _CODE_TTL,
        )
        with self._p._lock:
            self._p._grants[grant.grant_id] = grant
            self._p._codes[record.code] = record
        self._p.stats.incr("authorize")

    def validate_code(
        self,
        client_id: str,
        code: str,
        client: Any,
        req: OAuthRequest,
        *a: Any,
        **k: Any,
    ) -> bool:
        with self._p._lock:
            record = self._p._codes.get(code)
            if record is None:
                replayed = self._p._used_codes.get(code)
                if replayed is not None:
                    # RFC 6749 4.1.2: a code used twice revokes what it gave.
                    replayed.grant.revoked = True
                return False
        grant = record.grant
        if (
            grant.client_id != client_id
            or grant.revoked
            or time.time() >= record.expires_at
        ):
            return False
        req.user = grant.user
        req.scopes = list(grant.scopes)
        req.claims = record.claims
        state = _state(req)
        state.code, state.grant = record, grant
        return True

    def _code_of(self, code: str, req: OAuthRequest) -> _Code | None:
        record = _state(req).code
        if record is not None and record.code == code:
            return record
        with self._p._lock:
            return self._p._codes.get(code)

    def get_code_challenge(self, code: str, req: OAuthRequest) -> str | None:
        record = self._code_of(code, req)
        return record.code_challenge if record else None

    def get_code_challenge_method(self, code: str, req: OAuthRequest) -> str | None:
        record = self._code_of(code, req)
        return record.code_challenge_method if record else None

    def confirm_redirect_uri(
        self,
        client_id: str,
        code: str,
        redirect_uri: str,
        client: Any,
        req: OAuthRequest,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        record = self._code_of(code, req)
        if record is None:
            return False
        if record.redirect_uri is None:
            return True
        return bool(redirect_uri == record.redirect_uri)

    def consume_code(self, req: OAuthRequest) -> None:
        """A ``post_token`` check: take the code out of the store atomically, after
        every other check passed, so two concurrent exchanges cannot both win."""
        record = _state(req).code
        with self._p._lock:
            if record is None or self._p._codes.get(record.code) is not record:
                raise oauth_errors.InvalidGrantError(request=req)
            del self._p._codes[record.code]
            self._p._used_codes[record.code] = record

    def invalidate_authorization_code(
        self, client_id: str, code: str, req: OAuthRequest, *args: Any, **kwargs: Any
    ) -> None:
        # Already gone: consume_code removed it before the token was made.
        with self._p._lock:
            self._p._codes.pop(code, None)

    def get_authorization_code_scopes(
        self, client_id: str, code: str, redirect_uri: str, req: OAuthRequest
    ) -> list[str]:
        with self._p._lock:
            record = self._p._codes.get(code)
        return list(record.grant.scopes) if record else []

    def get_authorization_code_nonce(
        self, client_id: str, code: str, redirect_uri: str, req: OAuthRequest
    ) -> str | None:
        record = self._code_of(code, req)
        return record.nonce if record else None

    # -- refresh tokens ----------------------------------------------------------

    def validate_refresh_token(
        self, refresh_token: str, client: Any, req: OAuthRequest, *a: Any, **k: Any
    ) -> bool:
        with self._p._lock:
            record = self._p._refresh_tokens.get(refresh_token)
            if record is None or record.grant.client_id != client.client_id:
                return False
            if record.consumed:
                self._p._refresh_token_reused(record)
                return False
            if not record.active(time.time()):
                return False
        req.user = record.grant.user
        state = _state(req)
        state.refresh, state.grant = record, record.grant
        return True

    def consume_refresh_token(self, req: OAuthRequest) -> None:
        """A ``post_token`` check: with rotation, mark the refresh token used,
        atomically, so that of two concurrent refreshes exactly one wins."""
        record = _state(req).refresh
        if record is None:
            raise oauth_errors.InvalidGrantError(request=req)
        with self._p._lock:
            if record.consumed:
                self._p._refresh_token_reused(record)
                raise oauth_errors.InvalidGrantError(request=req)
            if not record.active(time.time()):
                raise oauth_errors.InvalidGrantError(request=req)
            if self._p.rotate_refresh_tokens:
                record.consumed = True

    def get_original_scopes(
        self, refresh_token: str, req: OAuthRequest, *args: Any, **kwargs: Any
    ) -> list[str]:
        record = _state(req).refresh
        return list(record.scopes) if record else []

    def is_within_original_scope(
        self, request_scopes: list[str], refresh_token: str, req: Any, *a: Any, **k: Any
    ) -> bool:
        return False

    def rotate_refresh_token(self, req: OAuthRequest) -> bool:
        return self._p.rotate_refresh_tokens

    # -- tokens ------------------------------------------------------------------

    def save_bearer_token(
        self, token: dict[str, Any], req: OAuthRequest, *args: Any, **kwargs: Any
    ) -> None:
        grant = _state(req).grant
        if grant is None and req.grant_type == "client_credentials":
            grant = self._p._app_grant(req.client_id, tuple(req.scopes or ()))
        if grant is None:  # pragma: no cover - every grant type sets it
            raise oauth_errors.ServerError(request=req)
        if not self._p.issue_refresh_token and req.refresh_token is None:
            token.pop("refresh_token", None)
        self._p._store_tokens(token, grant, tuple(req.scopes))

    def validate_bearer_token(
        self, token: str | None, scopes: list[str] | None, req: OAuthRequest
    ) -> bool:
        if not token:
            return False
        with self._p._lock:
            record = self._p._access_tokens.get(token)
        if record is None or not record.active(time.time()):
            return False
        req.user = record.grant.user
        req.client_id = record.grant.client_id
        req.client = self._p._clients.get(record.grant.client_id)
        req.scopes = list(record.scopes)
        _state(req).grant = record.grant
        return True

    def revoke_token(
        self,
        token: str,
        token_type_hint: str | None,
        req: OAuthRequest,
        *a: Any,
        **k: Any,
    ) -> None:
        client_id = req.client.client_id
        with self._p._lock:
            refresh = self._p._refresh_tokens.get(token)
            access = self._p._access_tokens.get(token)
            # RFC 7009 2.1: revoking a refresh token ends its grant and the access
            # tokens issued from it. A token of another client is left alone.
            if refresh is not None and refresh.grant.client_id == client_id:
                refresh.revoked = True
                refresh.grant.revoked = True
            if access is not None and access.grant.client_id == client_id:
                access.revoked = True

    def introspect_token(
        self,
        token: str,
        token_type_hint: str | None,
        req: OAuthRequest,
        *a: Any,
        **k: Any,
    ) -> dict[str, Any] | None:
        now = time.time()
        with self._p._lock:
            access = self._p._access_tokens.get(token)
            refresh = self._p._refresh_tokens.get(token)
        record: _AccessToken | _RefreshToken | None
        if access is not None and access.active(now):
            record = access
        elif refresh is not None and refresh.active(now):
            record = refresh
        else:
            return None
        claims: dict[str, Any] = {
            "scope": " ".join(record.scopes),
            "client_id": record.grant.client_id,
            "username": record.grant.user,
            "sub": record.grant.user,
            "aud": record.grant.client_id,
            "iss": self._p._issuer(),
            "iat": int(record.issued_at),
            "exp": int(record.expires_at),
        }
        if record is access:
            claims["token_type"] = "Bearer"
        return claims

    # -- OpenID Connect ------------------------------------------------------------

    def get_id_token(self, token: Any, token_handler: Any, req: OAuthRequest) -> None:
        # None lets oauthlib fill in aud, iat, nonce and at_hash, then call
        # finalize_id_token below.
        return None

    def finalize_id_token(
        self,
        id_token: dict[str, Any],
        token: Any,
        token_handler: Any,
        req: OAuthRequest,
    ) -> str:
        grant = _state(req).grant
        if grant is None:  # pragma: no cover - set by validate_code / refresh
            raise oauth_errors.ServerError(request=req)
        return self._p._sign_id_token(grant, list(req.scopes), id_token)

    def get_jwt_bearer_token(self, token: Any, token_handler: Any, req: Any) -> None:
        return None

    def validate_jwt_bearer_token(self, token: Any, scopes: Any, req: Any) -> bool:
        # Only opaque Bearer tokens grant access; an ID token is no access token.
        return False

    def validate_id_token(self, token: Any, scopes: Any, req: Any) -> bool:
        return False

    def validate_silent_authorization(self, req: OAuthRequest) -> bool:
        # Consent is implied for every client of a development provider.
        return True

    def validate_silent_login(self, req: OAuthRequest) -> bool:
        return self._p._current_login() is not None

    def validate_user_match(
        self, id_token_hint: str | None, scopes: Any, claims: Any, req: OAuthRequest
    ) -> bool:
        prompt = req.prompt or ""
        if not id_token_hint or "none" not in prompt.split():
            return True
        login = self._p._current_login()
        hint = self._p._decode_id_token_hint(id_token_hint)
        return hint is not None and login is not None and hint.get("sub") == login[0]

    def get_userinfo_claims(self, req: OAuthRequest) -> dict[str, Any]:
        return user_claims(req.user, req.scopes)

    def refresh_id_token(self, req: OAuthRequest) -> bool:
        return "openid" in (req.scopes or [])

    # -- authorization request checks (registered as pre_auth validators) ----------

    def refuse_plain_pkce(self, req: OAuthRequest) -> dict[str, Any]:
        """Only S256; a missing method means ``plain`` (RFC 7636 4.3), refused too."""
        if req.code_challenge is not None and req.code_challenge_method != "S256":
            raise oauth_errors.UnsupportedCodeChallengeMethodError(request=req)
        return {}


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's request handler with HTTP/1.1 keep-alive.

    werkzeug closes every connection, because :mod:`http.server` cannot skip a
    request body the app left unread before parsing the next request line. This
    handler reads each body before it runs the app (the provider's requests are
    small), so a connection can serve request after request, as a real provider's
    does; the benchmarks count on that.
    """

    # Set here so werkzeug does not set it on its own shared handler class.
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle's algorithm and
        # the client's delayed ACK, each response on a reused connection would
        # wait ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        try:
            body = self._read_body(environ)
        except ValueError:
            self.close_connection = True
            self.send_error(400, "Bad request body")
            return
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            # Nothing is sent before the app returns, so an error page may
            # always replace what was started.
            started[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            _log.exception("Error in the development provider")
            self.close_connection = True
            self.send_error(500)
            return
        self._send(started[0], started[1], b"".join(chunks))

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        if environ.get("wsgi.input_terminated"):
            # Chunked: werkzeug's DechunkedInput stops at the last chunk.
            parts: list[bytes] = []
            size = 0
            while True:
                part = environ["wsgi.input"].read(65536)
                if not part:
                    return b"".join(parts)
                size += len(part)
                if size > _MAX_BODY:
                    raise ValueError("body too large")
                parts.append(part)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if not 0 <= length <= _MAX_BODY:
            raise ValueError("bad Content-Length")
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("the client went away")
        return body

    def _send(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        length: str | None = None
        for key, value in headers:
            lower = key.lower()
            if lower == "content-length":
                length = value
            elif lower not in ("connection", "transfer-encoding"):
                self.send_header(key, value)
        if self.command == "HEAD":
            if length is not None:
                self.send_header("Content-Length", length)
        elif not (int(code) < 200 or int(code) in (204, 304)):
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # One line per request would drown test and benchmark output.
        _log.debug('"%s" %s %s', self.requestline, code, size)

    def log(self, type: str, message: str, *args: Any) -> None:
        level = logging.ERROR if type == "error" else logging.DEBUG
        _log.log(level, message, *args)


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server, counting accepted connections and able to cut
    idle keep-alive connections when it stops."""

    def __init__(self, host: str, port: int, app: Flask, stats: DevStats) -> None:
        self._stats = stats
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(host, port, app, handler=_RequestHandler)

    def process_request(self, request: _Socket, client_address: Any) -> None:
        self._stats.incr("connections")
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Socket) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads waiting on idle keep-alive connections."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _is_under(url: str, base: str) -> bool:
    """Whether ``url`` is ``base`` or a URL below it (same scheme and authority,
    compared without case; a path under ``base``'s)."""
    try:
        got, want = urlsplit(url), urlsplit(base)
    except ValueError:
        return False
    if (got.scheme.lower(), got.netloc.lower()) != (
        want.scheme.lower(),
        want.netloc.lower(),
    ):
        return False
    prefix = want.path.rstrip("/")
    return got.path == prefix or got.path.startswith(prefix + "/") or not prefix


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host:
        return f"[{host}]"
    return host


class DevProvider:
    """An OpenID Connect provider for development and tests, all in memory.

    :param clients: The registered clients. Default: one confidential client
        ``DevClient("dev-client", "dev-secret")`` accepting any loopback redirect URI.
    :param issuer: The issuer URL, without a trailing slash. :meth:`serve` sets it;
        give it when :attr:`app` is mounted elsewhere. Without it, HTTP requests use
        the URL they came in on.
    :param access_token_ttl: Access token lifetime (``expires_in``), in seconds.
    :param refresh_token_ttl: Refresh token lifetime, in seconds.
    :param rotate_refresh_tokens: Each refresh returns a new refresh token and the
        old one is spent (``invalid_grant`` afterwards). Without it, the refresh
        token stays the same and stays valid.
    :param revoke_grant_on_reuse: Presenting a spent refresh token revokes the whole
        grant (every token descending from the same login), like oidc-provider.
    :param require_pkce: Every client must send an S256 code challenge. Public
        clients always must; ``plain`` is always refused.
    :param auto_login: A user name: ``/authorize`` signs in as it at once, without
        showing the login page.
    :param token_delay: Seconds slept in the token endpoint, to model a real
        provider's latency.
    :param issue_refresh_token: Issue refresh tokens from the code exchange.
    :param id_token_ttl: ID token lifetime, in seconds; apart from
        ``access_token_ttl`` so that short-lived access tokens keep ID tokens valid.
    :param signing_key: The RSA key that signs ID tokens; default: a new 2048-bit
        key.

    The settings are plain attributes, read on every request; tests may change
    them while the provider runs.
    """

    def __init__(
        self,
        clients: Sequence[DevClient] | None = None,
        *,
        issuer: str | None = None,
        access_token_ttl: int = 3600,
        refresh_token_ttl: int = 86400,
        rotate_refresh_tokens: bool = True,
        revoke_grant_on_reuse: bool = False,
        require_pkce: bool = True,
        auto_login: str | None = None,
        token_delay: float = 0.0,
        issue_refresh_token: bool = True,
        id_token_ttl: int = 3600,
        signing_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        if clients is None:
            clients = [DevClient("dev-client", "dev-secret")]
        self._clients: dict[str, DevClient] = {c.client_id: c for c in clients}
        self._issuer_given = issuer is not None
        self.issuer: str | None = issuer.rstrip("/") if issuer else None
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.revoke_grant_on_reuse = revoke_grant_on_reuse
        self.require_pkce = require_pkce
        self.auto_login = auto_login
        self.token_delay = token_delay
        self.issue_refresh_token = issue_refresh_token
        self.id_token_ttl = id_token_ttl
        #: Counters of what the provider did; see :class:`DevStats`.
        self.stats = DevStats()

        self._key = signing_key or rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        numbers = self._key.public_key().public_numbers()
        thumbprint_input = {
            "e": _int_b64url(numbers.e),
            "kty": "RSA",
            "n": _int_b64url(numbers.n),
        }
        # RFC 7638 thumbprint: stable for a key, so clients can cache by kid.
        self.kid = _b64url(
            hashlib.sha256(
                json.dumps(thumbprint_input, separators=(",", ":")).encode()
            ).digest()
        )
        self._jwk = {**thumbprint_input, "kid": self.kid, "use": "sig", "alg": "RS256"}

        self._lock = threading.Lock()
        self._grants: dict[str, _Grant] = {}
        self._codes: dict[str, _Code] = {}
        self._used_codes: dict[str, _Code] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._issued_since_prune = 0

        self._validator = _Validator(self)
        self._server = self._make_server()
        #: The provider's Flask app (a WSGI app).
        self.app = self._make_app()

    def __repr__(self) -> str:
        return f"<DevProvider {self.issuer or '(no issuer yet)'}>"

    # -- public helpers ------------------------------------------------------------

    @property
    def metadata_url(self) -> str:
        """The discovery document's URL."""
        return f"{self._issuer()}/.well-known/openid-configuration"

    @property
    def clients(self) -> Mapping[str, DevClient]:
        """The registered clients, by client ID."""
        return dict(self._clients)

    @property
    def jwks(self) -> dict[str, Any]:
        """The public key set served at ``/jwks``."""
        return {"keys": [dict(self._jwk)]}

    @staticmethod
    def user_claims(
        username: str, scope: str | Iterable[str] = _DEFAULT_MINT_SCOPE
    ) -> dict[str, Any]:
        """The claims released for ``username`` under ``scope``; see
        :func:`user_claims`."""
        return user_claims(username, _scope_list(scope))

    def reset_stats(self) -> None:
        """Set every counter of :attr:`stats` back to zero."""
        self.stats.reset()

    def mint_token(
        self,
        username: str,
        client_id: str = "dev-client",
        scope: str | Iterable[str] = _DEFAULT_MINT_SCOPE,
        nonce: str | None = None,
    ) -> dict[str, Any]:
        """Issue a token without HTTP, registered as if issued by a login.

        :param username: The user the token is for.
        :param client_id: A registered client.
        :param scope: Granted scopes, a list or a space-separated string.
        :param nonce: Put into the ID token.
        :return: The token response: ``access_token``, ``token_type``,
            ``expires_in``, ``scope``, ``refresh_token`` (unless
            ``issue_refresh_token`` is off), ``id_token`` (with ``openid``), and
            ``expires_at`` as requests-oauthlib adds it, so it can go straight into
            a token storage.
        """
        if client_id not in self._clients:
            raise ValueError(f"Unknown client {client_id!r}; register a DevClient.")
        scopes = tuple(_scope_list(scope))
        now = time.time()
        grant = _Grant(
            grant_id=secrets.token_urlsafe(12),
            user=username,
            client_id=client_id,
            scopes=scopes,
            auth_time=int(now),
        )
        with self._lock:
            self._grants[grant.grant_id] = grant
        token: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "scope": " ".join(scopes),
        }
        if self.issue_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(32)
        if "openid" in scopes:
            base: dict[str, Any] = {
                "aud": client_id,
                "iat": int(now),
                "at_hash": _b64url(
                    hashlib.sha256(token["access_token"].encode()).digest()[:16]
                ),
            }
            if nonce is not None:
                base["nonce"] = nonce
            token["id_token"] = self._sign_id_token(grant, list(scopes), base)
        self._store_tokens(token, grant, scopes)
        token["expires_at"] = now + self.access_token_ttl
        return token

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired, now."""
        now = time.time()
        with self._lock:
            for record in self._access_tokens.values():
                record.expires_at = min(record.expires_at, now - 1)

    def revoke_user(self, username: str) -> None:
        """Revoke every grant of ``username``: codes, access and refresh tokens."""
        with self._lock:
            for grant in self._grants.values():
                if grant.user == username:
                    grant.revoked = True

    @staticmethod
    def served_at(url: str) -> DevProvider | None:
        """The provider that :meth:`serve` is serving in this process at ``url``:
        ``url`` is its issuer (or the server's base URL) or a URL under it, such as
        its authorization endpoint. ``None`` when no served provider answers there.

        The pytest plugin's ``oauth_dev_login`` uses it to find the provider a login
        goes to.
        """
        with _served_lock:
            served = list(_served.items())
        matches = [
            (len(base), provider) for base, provider in served if _is_under(url, base)
        ]
        return max(matches, key=lambda match: match[0])[1] if matches else None

    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve :attr:`app` from a threaded werkzeug server (HTTP/1.1, keep-alive)
        in a background thread, until the ``with`` block ends. While it serves,
        :meth:`served_at` finds it by its URL.

        :param host: The address to listen on.
        :param port: The port; 0 picks a free one.
        :return: A context manager giving the base URL, e.g.
            ``http://127.0.0.1:54321``. Unless an issuer was given to the
            constructor, :attr:`issuer` becomes that URL.
        """
        try:
            server = _Server(host, port, self.app, self.stats)
        except SystemExit as e:
            # werkzeug prints the reason and exits on a busy port; a library
            # must not end the process.
            raise OSError(f"Cannot listen on {host}:{port}.") from e
        base_url = f"http://{_url_host(host)}:{server.port}"
        if not self._issuer_given:
            self.issuer = base_url
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"devprovider {base_url}",
            daemon=True,
        )
        thread.start()
        urls = {base_url, self._issuer()}
        with _served_lock:
            for url in urls:
                _served[url] = self
        try:
            yield base_url
        finally:
            with _served_lock:
                for url in urls:
                    if _served.get(url) is self:
                        del _served[url]
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join(timeout=5)

    # -- internals -------------------------------------------------------------------

    def _issuer(self) -> str:
        if self.issuer:
            return self.issuer
        if has_request_context():
            return request.url_root.rstrip("/")
        raise RuntimeError(
            "The DevProvider has no issuer yet: use it inside 'with dev.serve():' or"
            " pass issuer= to DevProvider()."
        )

    def _current_login(self) -> tuple[str, int] | None:
        """The user signed in for the current HTTP request, with the auth time."""
        if not has_request_context():
            return None
        user = g.get("_devprovider_user")
        if not user:
            return None
        return str(user), int(g.get("_devprovider_auth_time") or time.time())

    def _refresh_token_reused(self, record: _RefreshToken) -> None:
        # Called with the lock held.
        if self.revoke_grant_on_reuse:
            record.grant.revoked = True

    def _app_grant(self, client_id: str, scopes: tuple[str, ...]) -> _Grant:
        """The grant of a client credentials token (RFC 6749 4.4): no user; the
        client is its own subject (``sub`` is the client ID, as RFC 9068 2.2 has
        it), so ``/api/`` answers with the client ID as ``sub``."""
        grant = _Grant(
            grant_id=secrets.token_urlsafe(12),
            user=client_id,
            client_id=client_id,
            scopes=scopes,
            auth_time=int(time.time()),
        )
        with self._lock:
            self._grants[grant.grant_id] = grant
        return grant

    def _store_tokens(
        self, token: Mapping[str, Any], grant: _Grant, scopes: tuple[str, ...]
    ) -> None:
        now = time.time()
        access = _AccessToken(
            token=token["access_token"],
            grant=grant,
            scopes=scopes,
            issued_at=now,
            expires_at=now + int(token["expires_in"]),
        )
        with self._lock:
            self._access_tokens[access.token] = access
            refresh_token = token.get("refresh_token")
            if refresh_token and refresh_token not in self._refresh_tokens:
                self._refresh_tokens[refresh_token] = _RefreshToken(
                    token=refresh_token,
                    grant=grant,
                    scopes=scopes,
                    issued_at=now,
                    expires_at=now + self.refresh_token_ttl,
                )
            self._issued_since_prune += 1
            if self._issued_since_prune >= _PRUNE_EVERY:
                self._prune_locked(now)

    def _prune_locked(self, now: float) -> None:
        self._issued_since_prune = 0
        self._codes = {k: v for k, v in self._codes.items() if v.expires_at > now}
        # A replayed code is recognised for an hour after it expired.
        self._used_codes = {
            k: v for k, v in self._used_codes.items() if v.expires_at + 3600 > now
        }
        self._access_tokens = {
            k: v for k, v in self._access_tokens.items() if v.active(now)
        }
        # Spent refresh tokens stay until they expire, to detect reuse.
        self._refresh_tokens = {
            k: v
            for k, v in self._refresh_tokens.items()
            if v.expires_at > now and not v.grant.revoked
        }
        live = {r.grant.grant_id for r in self._codes.values()}
        live.update(r.grant.grant_id for r in self._used_codes.values())
        live.update(r.grant.grant_id for r in self._access_tokens.values())
        live.update(r.grant.grant_id for r in self._refresh_tokens.values())
        self._grants = {k: v for k, v in self._grants.items() if k in live}

    def _sign_id_token(
        self, grant: _Grant, scopes: list[str], base: dict[str, Any]
    ) -> str:
        claims = user_claims(grant.user, scopes)
        claims.update(base)
        iat = int(claims.get("iat") or time.time())
        claims.update(
            iss=self._issuer(),
            sub=grant.user,
            aud=grant.client_id,
            azp=grant.client_id,
            iat=iat,
            exp=iat + self.id_token_ttl,
            auth_time=grant.auth_time,
        )
        return jwt.encode(
            claims, self._key, algorithm="RS256", headers={"kid": self.kid}
        )

    def _decode_id_token_hint(self, hint: str) -> dict[str, Any] | None:
        """The claims of an ID token this provider signed; expiry is not checked
        (OIDC RP-Initiated Logout 1.0, section 2)."""
        try:
            return jwt.decode(
                hint,
                self._key.public_key(),
                algorithms=["RS256"],
                issuer=self._issuer(),
                options={"verify_exp": False, "verify_aud": False},
            )
        except jwt.InvalidTokenError:
            return None

    def _make_server(self) -> Any:
        server = Server(
            self._validator,
            # A callable, read per token: 0 stays 0 (oauthlib turns a falsy int
            # into 3600) and changes to access_token_ttl apply at once.
            token_expires_in=lambda _request: self.access_token_ttl,
            token_generator=lambda _request: secrets.token_urlsafe(32),
        )
        validator = self._validator
        # The OIDC grants proxy to their own OAuth 2 grant objects (proxy_target),
        # distinct from server.auth_grant, so both get the checks.
        for grant in (server.auth_grant, server.openid_connect_auth.proxy_target):
            grant.custom_validators.pre_auth.append(validator.refuse_plain_pkce)
            grant.custom_validators.post_token.append(validator.consume_code)
        server.refresh_grant.proxy_target.custom_validators.post_token.append(
            validator.consume_refresh_token
        )
        return server

    # -- the Flask app -------------------------------------------------------------

    def _make_app(self) -> Flask:
        app = Flask(__name__)
        app.config.update(
            SECRET_KEY=secrets.token_hex(32),
            # The client app usually runs on the same host (cookies ignore ports),
            # so the provider's session cookie gets a name of its own.
            SESSION_COOKIE_NAME="devprovider_session",
            SESSION_COOKIE_SAMESITE="Lax",
        )
        rules: list[tuple[str, str, Any, list[str]]] = [
            ("/", "index", self._view_index, ["GET"]),
            (
                "/.well-known/openid-configuration",
                "metadata",
                self._view_metadata,
                ["GET"],
            ),
            (
                "/.well-known/oauth-authorization-server",
                "oauth_metadata",
                self._view_metadata,
                ["GET"],
            ),
            ("/jwks", "jwks", self._view_jwks, ["GET"]),
            ("/authorize", "authorize", self._view_authorize, ["GET", "POST"]),
            ("/token", "token", self._view_token, ["POST"]),
            ("/userinfo", "userinfo", self._view_userinfo, ["GET", "POST"]),
            ("/revoke", "revoke", self._view_revoke, ["POST"]),
            ("/introspect", "introspect", self._view_introspect, ["POST"]),
            ("/logout", "logout", self._view_logout, ["GET", "POST"]),
            (
                "/api/<path:path>",
                "api",
                self._view_api,
                ["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]
        for rule, endpoint, view, methods in rules:
            app.add_url_rule(rule, endpoint, view, methods=methods)
        return app

    def _metadata(self) -> dict[str, Any]:
        issuer = self._issuer()
        auth_methods = ["client_secret_basic", "client_secret_post"]
        if any(c.client_secret is None for c in self._clients.values()):
            auth_methods.append("none")
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "revocation_endpoint": f"{issuer}/revoke",
            "introspection_endpoint": f"{issuer}/introspect",
            "end_session_endpoint": f"{issuer}/logout",
            "scopes_supported": list(SUPPORTED_SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
            ],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "subject_types_supported": ["public"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "azp",
                "name",
                "given_name",
                "family_name",
                "preferred_username",
                "email",
                "email_verified",
            ],
            "prompt_values_supported": ["none", "login"],
            "authorization_response_iss_parameter_supported": True,
        }

    def _json(self, data: Any, status: int = 200, **headers: str) -> Response:
        response = Response(
            json.dumps(data), status=status, content_type="application/json"
        )
        response.headers.update(headers)
        return response

    def _oauth_response(
        self, headers: Mapping[str, str], body: str | None, status: int
    ) -> Response:
        response = Response(body or "", status=status)
        response.headers.update(headers)
        if body and "Content-Type" not in headers:
            response.content_type = "application/json"
        if status == 401:
            # oauthlib answers a failed client authentication with a Bearer
            # challenge; RFC 6749 5.2 wants the scheme the client used.
            response.headers["WWW-Authenticate"] = 'Basic realm="devprovider"'
        return response

    def _page(self, page: str, status: int = 200, **context: Any) -> Response:
        html = render_template_string(_TEMPLATE, page=page, **context)
        response = Response(html, status=status, content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    def _error_page(self, status: int, message: str) -> Response:
        return self._page("error", status, title="Request refused", message=message)

    def _redirect_to_client(
        self,
        location: str,
        params: Sequence[tuple[str, str]] = (),
        response_mode: str | None = None,
        status: int = 302,
    ) -> Response:
        # RFC 9207: every authorization response names its issuer.
        params = [*params, ("iss", self._issuer())]
        location = add_params_to_uri(
            location, params, fragment=response_mode == "fragment"
        )
        response = Response("", status=status)
        response.headers["Location"] = location
        response.headers["Cache-Control"] = "no-store"
        return response

    def _error_redirect(self, error: Any, status: int = 302) -> Response:
        if not error.redirect_uri:
            return self._error_page(400, error.description or error.error)
        return self._redirect_to_client(
            error.redirect_uri, error.twotuples, error.response_mode, status
        )

    def _complete_authorization(self, uri: str, user: str, status: int) -> Response:
        g._devprovider_user = user
        try:
            headers, _, _ = self._server.create_authorization_response(
                uri,
                "GET",
                None,
                dict(request.headers),
                scopes=None,
                credentials={"user": user},
            )
        except oauth_errors.FatalClientError as e:
            return self._error_page(400, e.description or e.error)
        except oauth_errors.OAuth2Error as e:
            return self._error_redirect(e, status)
        # oauthlib already put code and state (or an error) into the URI.
        response_mode = "fragment" if "#" in headers["Location"] else "query"
        return self._redirect_to_client(headers["Location"], (), response_mode, status)

    def _oauth_uri(self) -> str:
        # request.url decodes some escapes (%22 becomes a quote), which oauthlib
        # then refuses as not urlencoded: give it the query string as sent.
        query = request.query_string.decode("ascii", "replace")
        return f"{request.base_url}?{query}" if query else request.base_url

    def _view_index(self) -> Response:
        return self._page(
            "index",
            title="Development provider",
            issuer=self._issuer(),
            metadata_url=self.metadata_url,
            clients=list(self._clients.values()),
        )

    def _view_metadata(self) -> Response:
        return self._json(self._metadata())

    def _view_jwks(self) -> Response:
        return self._json(self.jwks)

    def _view_authorize(self) -> Response:
        if request.method == "POST":
            return self._authorize_form()
        user = self.auto_login or session.get("user")
        g._devprovider_user = user
        g._devprovider_auth_time = (
            int(time.time()) if self.auto_login else session.get("auth_time")
        )
        try:
            scopes, _ = self._server.validate_authorization_request(
                self._oauth_uri(), "GET", None, dict(request.headers)
            )
        except oauth_errors.FatalClientError as e:
            return self._error_page(400, e.description or e.error)
        except oauth_errors.OAuth2Error as e:
            return self._error_redirect(e)
        except ValueError:
            return self._error_page(400, "The authorization request is malformed.")
        prompt = request.args.get("prompt", "").split()
        if user and (self.auto_login or "none" in prompt):
            return self._complete_authorization(self._oauth_uri(), str(user), 302)
        return self._login_page(scopes)

    def _login_page(
        self, scopes: Sequence[str], message: str | None = None, status: int = 200
    ) -> Response:
        source = request.form if request.method == "POST" else request.args
        params = [(k, v) for k, v in source.items(multi=True) if k not in _FORM_FIELDS]
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(24)
        username = (
            request.form.get("username")
            or request.args.get("login_hint")
            or session.get("user")
            or ""
        )
        return self._page(
            "login",
            status,
            title="Sign in",
            client_id=source.get("client_id", ""),
            scopes=list(scopes),
            params=params,
            csrf_token=session["csrf"],
            username=username,
            message=message,
        )

    def _authorize_form(self) -> Response:
        form = request.form
        expected = session.get("csrf")
        sent = form.get("csrf_token", "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            return self._error_page(
                400,
                "The sign-in form expired or did not come from this provider."
                " Go back to the application and sign in again.",
            )
        params = [(k, v) for k, v in form.items(multi=True) if k not in _FORM_FIELDS]
        uri = f"{request.base_url}?{urlencode(params)}"
        try:
            scopes, info = self._server.validate_authorization_request(
                uri, "GET", None, dict(request.headers)
            )
        except oauth_errors.FatalClientError as e:
            return self._error_page(400, e.description or e.error)
        except oauth_errors.OAuth2Error as e:
            return self._error_redirect(e, 303)
        except ValueError:
            return self._error_page(400, "The authorization request is malformed.")
        if form.get("action") == "cancel":
            params_out = [
                ("error", "access_denied"),
                ("error_description", "The user cancelled the sign-in."),
            ]
            if info.get("state"):
                params_out.append(("state", info["state"]))
            return self._redirect_to_client(
                info["redirect_uri"], params_out, info["request"].response_mode, 303
            )
        username = form.get("username", "").strip()
        if not username:
            return self._login_page(scopes, "Enter a user name.", 400)
        session["user"] = username
        session["auth_time"] = int(time.time())
        g._devprovider_auth_time = session["auth_time"]
        return self._complete_authorization(uri, username, 303)

    def _view_token(self) -> Response:
        body = request.get_data(as_text=True)
        grant_type = request.form.get("grant_type")
        if grant_type in ("authorization_code", "refresh_token", "client_credentials"):
            self.stats.incr(f"token_{grant_type}")
        if self.token_delay > 0:
            time.sleep(self.token_delay)
        try:
            headers, response_body, status = self._server.create_token_response(
                self._oauth_uri(), request.method, body, dict(request.headers)
            )
        except oauth_errors.OAuth2Error as e:
            headers, response_body, status = e.headers, e.json, e.status_code
        except ValueError:
            error = oauth_errors.InvalidRequestError(description="Malformed request.")
            headers, response_body, status = {}, error.json, error.status_code
        if status >= 400 and response_body:
            with contextlib.suppress(ValueError):
                if json.loads(response_body).get("error") == "invalid_grant":
                    self.stats.incr("invalid_grant")
        return self._oauth_response(headers, response_body, status)

    def _bearer_challenge(self, error: str | None, description: str = "") -> str:
        challenge = 'Bearer realm="devprovider"'
        if error:
            challenge += f', error="{error}"'
        if description:
            challenge += f', error_description="{description}"'
        return challenge

    def _token_presented(self) -> bool:
        return "Authorization" in request.headers or "access_token" in request.values

    def _view_userinfo(self) -> Response:
        self.stats.incr("userinfo")
        try:
            headers, body, status = self._server.create_userinfo_response(
                self._oauth_uri(),
                request.method,
                request.get_data(as_text=True),
                dict(request.headers),
            )
        except oauth_errors.InsufficientScopeError:
            return self._json(
                {"error": "insufficient_scope"},
                403,
                **{"WWW-Authenticate": self._bearer_challenge("insufficient_scope")},
            )
        except (oauth_errors.OAuth2Error, ValueError):
            return self._unauthorized()
        return self._oauth_response(headers, body, status)

    def _unauthorized(self) -> Response:
        if not self._token_presented():
            # RFC 6750 3.1: no token, no error code.
            challenge = self._bearer_challenge(None)
            body = {"error": "invalid_request"}
        else:
            description = "The access token is invalid, expired or revoked."
            challenge = self._bearer_challenge("invalid_token", description)
            body = {"error": "invalid_token", "error_description": description}
        return self._json(body, 401, **{"WWW-Authenticate": challenge})

    def _view_api(self, path: str) -> Response:
        self.stats.incr("api")
        try:
            valid, oauth_request = self._server.verify_request(
                self._oauth_uri(),
                request.method,
                request.get_data(as_text=True),
                dict(request.headers),
                scopes=[],
            )
        except (oauth_errors.OAuth2Error, ValueError):
            valid = False
        if not valid:
            return self._unauthorized()
        return self._json(
            {
                "sub": oauth_request.user,
                "client_id": oauth_request.client_id,
                "scope": " ".join(oauth_request.scopes),
                "method": request.method,
                "path": path,
                "args": request.args.to_dict(),
                "json": request.get_json(silent=True),
            }
        )

    def _view_revoke(self) -> Response:
        self.stats.incr("revocation")
        return self._endpoint_response(self._server.create_revocation_response)

    def _view_introspect(self) -> Response:
        self.stats.incr("introspection")
        return self._endpoint_response(self._server.create_introspect_response)

    def _endpoint_response(self, create: Callable[..., Any]) -> Response:
        """Answer the current request with one of oauthlib's endpoint methods."""
        try:
            headers, body, status = create(
                self._oauth_uri(),
                request.method,
                request.get_data(as_text=True),
                dict(request.headers),
            )
        except oauth_errors.OAuth2Error as e:
            headers, body, status = e.headers, e.json, e.status_code
        return self._oauth_response(headers, body, status)

    def _view_logout(self) -> Response:
        """OpenID Connect RP-Initiated Logout 1.0."""
        self.stats.incr("logout")
        values = request.values
        client_id = values.get("client_id")
        hint = values.get("id_token_hint")
        if hint:
            claims = self._decode_id_token_hint(hint)
            if claims is None:
                return self._error_page(
                    400, "The id_token_hint is not a valid ID token."
                )
            aud = claims.get("aud")
            hinted_client = str(aud[0] if isinstance(aud, list) and aud else aud)
            if client_id and client_id != hinted_client:
                return self._error_page(
                    400, "client_id does not match the id_token_hint."
                )
            client_id = hinted_client
        redirect_uri = values.get("post_logout_redirect_uri")
        if redirect_uri:
            client = self._clients.get(client_id or "")
            if client is None:
                return self._error_page(
                    400,
                    "A post_logout_redirect_uri needs an id_token_hint or a client_id.",
                )
            if not client.allows_post_logout_redirect_uri(redirect_uri):
                return self._error_page(
                    400, "The post_logout_redirect_uri is not registered."
                )
        session.clear()
        if not redirect_uri:
            return self._page("logged_out", title="Signed out")
        params = [("state", values["state"])] if values.get("state") else []
        response = Response("", status=302)
        response.headers["Location"] = add_params_to_uri(redirect_uri, params)
        return response


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Development provider</title>
<style>
  :root { color-scheme: light dark; --accent: #3b5bdb; }
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; min-height: 100vh;
         display: grid; place-items: center; background: Canvas; color: CanvasText; }
  main { width: min(24rem, 92vw); padding: 2rem; border-radius: 12px;
         border: 1px solid color-mix(in srgb, CanvasText 15%, transparent);
         box-shadow: 0 8px 24px rgb(0 0 0 / 8%); }
  h1 { font-size: 1.25rem; margin: 0 0 .25rem; }
  .badge { display: inline-block; font-size: .75rem; padding: .1rem .5rem;
           border-radius: 999px; background: #ffe066; color: #5c4400; }
  p.muted, ul.muted { opacity: .75; font-size: .9rem; }
  label { display: block; margin: 1rem 0 .25rem; font-weight: 600; }
  input[type=text] { width: 100%; box-sizing: border-box; padding: .5rem .6rem;
                     font: inherit; border-radius: 6px; border: 1px solid #888; }
  .actions { display: flex; gap: .5rem; margin-top: 1.25rem; }
  button { flex: 1; font: inherit; padding: .5rem; border-radius: 6px;
           cursor: pointer; border: 1px solid #888; background: transparent;
           color: inherit; }
  button.primary { background: var(--accent); border-color: var(--accent);
                   color: white; }
  .error { color: #c92a2a; }
  code { font-size: .85rem; word-break: break-all; }
</style>
</head>
<body>
<main>
  <span class="badge">Development provider</span>
  {% if page == "login" %}
  <h1>Sign in to {{ client_id }}</h1>
  <p class="muted">Any user name is accepted; there is no password.
    Requested scopes: {{ scopes | join(" ") }}.</p>
  {% if message %}<p class="error">{{ message }}</p>{% endif %}
  <form method="post">
    {% for name, value in params %}
    <input type="hidden" name="{{ name }}" value="{{ value }}">
    {% endfor %}
    <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
    <label for="username">User name</label>
    <input type="text" id="username" name="username" value="{{ username }}"
           autocomplete="username" autofocus>
    <div class="actions">
      <button type="submit" name="action" value="login" class="primary">Sign in</button>
      <button type="submit" name="action" value="cancel">Cancel</button>
    </div>
  </form>
  {% elif page == "logged_out" %}
  <h1>Signed out</h1>
  <p class="muted">You are signed out of the development provider.</p>
  {% elif page == "index" %}
  <h1>Development provider</h1>
  <p class="muted">An OpenID Connect provider for development and tests.</p>
  <p>Issuer: <code>{{ issuer }}</code><br>
     Discovery: <a href="{{ metadata_url }}"><code>{{ metadata_url }}</code></a></p>
  <ul class="muted">
  {% for client in clients %}
    <li>client <code>{{ client.client_id }}</code>
    {%- if client.client_secret %}, secret <code>{{ client.client_secret }}</code>
    {%- else %} (public){% endif %}</li>
  {% endfor %}
  </ul>
  {% else %}
  <h1>{{ title }}</h1>
  <p class="error">{{ message }}</p>
  {% endif %}
</main>
</body>
</html>
"""


def main(argv: Sequence[str] | None = None) -> None:
    """Run a development provider until interrupted; print its issuer."""
    parser = argparse.ArgumentParser(
        prog="python -m flask_oauthclient.testing.devprovider",
        description="A development OpenID Connect provider. Any user name signs in.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--client-id", default="dev-client")
    parser.add_argument("--client-secret", default="dev-secret")
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        help="An allowed redirect URI (repeatable). Default: any loopback URI.",
    )
    parser.add_argument("--auto-login", metavar="USERNAME")
    parser.add_argument("--access-token-ttl", type=int, default=3600)
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    client = DevClient(args.client_id, args.client_secret, args.redirect_uris)
    dev = DevProvider(
        [client],
        auto_login=args.auto_login,
        access_token_ttl=args.access_token_ttl,
        token_delay=args.token_delay,
    )
    with dev.serve(args.host, args.port) as issuer:
        # The issuer alone on stdout, for scripts; the rest is for people.
        print(issuer, flush=True)
        print(
            f"Discovery: {dev.metadata_url}\n"
            f"Client ID: {client.client_id}  Client secret: {client.client_secret}\n"
            "Press Ctrl+C to stop.",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
