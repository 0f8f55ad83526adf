"""OpenID Connect discovery, the JWKS cache and ID-token validation.

This module knows nothing of Flask: everything here takes a :class:`requests.Session`
and plain values, so it can be used and tested without an application.

The checks follow OpenID Connect Core 1.0 §3.1.3.7 (ID token), §5.3.2 (userinfo),
§12.2 (refreshed ID token), OpenID Connect Discovery 1.0 §4.3 / RFC 8414 §3.3
(metadata bound to its issuer) and RFC 9207 (``iss`` in the authorization response).
All cryptography is PyJWT's; this module only chooses which key and which algorithm
PyJWT may use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Callable
from typing import Generic
from typing import TypeVar
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import jwt
import requests
from jwt.types import Options
from jwt.utils import base64url_encode

from .errors import ConfigurationError
from .errors import InvalidIDToken
from .errors import ProviderError
from .errors import ProviderTimeout
from .errors import ProviderUnavailable
from .oauth_session import read_capped

__all__ = [
    "PROTECTED_CLAIMS",
    "IssuerMatcher",
    "JWKSCache",
    "ServerMetadata",
    "check_authorization_response_iss",
    "check_userinfo",
    "fetch_json",
    "issuer_from_metadata_url",
    "merge_claims",
    "tenant_issuer_matcher",
    "validate_id_token",
    "validate_refreshed_id_token",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``issuer_matcher(iss, claims) -> bool``: decides whether a multi-tenant issuer is
#: acceptable, in place of exact equality with the configured issuer.
IssuerMatcher = Callable[[str, dict[str, Any]], bool]

_OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
_OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"

# Which JWK key type (and curve) can verify which JWS algorithm. Only asymmetric
# algorithms are listed: a symmetric ("oct") key published in a JWKS is never used,
# which closes the door on HMAC/RSA algorithm confusion from the key side.
_KTY_FOR_ALG: dict[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "ES256K": "EC",
    "EdDSA": "OKP",
}
_CRV_FOR_ALG: dict[str, frozenset[str]] = {
    "ES256": frozenset({"P-256"}),
    "ES384": frozenset({"P-384"}),
    "ES512": frozenset({"P-521"}),
    "ES256K": frozenset({"secp256k1"}),
    "EdDSA": frozenset({"Ed25519", "Ed448"}),
}
_HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})

# OIDC Core §3.1.3.6: at_hash uses the hash of the JWS algorithm. For EdDSA the
# OpenID Foundation's clarification is SHA-512 (Ed25519).
_AT_HASH_FUNCTIONS: dict[str, Callable[[bytes], Any]] = {
    "HS256": hashlib.sha256,
    "RS256": hashlib.sha256,
    "PS256": hashlib.sha256,
    "ES256": hashlib.sha256,
    "ES256K": hashlib.sha256,
    "HS384": hashlib.sha384,
    "RS384": hashlib.sha384,
    "PS384": hashlib.sha384,
    "ES384": hashlib.sha384,
    "HS512": hashlib.sha512,
    "RS512": hashlib.sha512,
    "PS512": hashlib.sha512,
    "ES512": hashlib.sha512,
    "EdDSA": hashlib.sha512,
}

# JWTs that are explicitly typed as something else must not pass as an ID token: an
# access token (RFC 9068) or a logout token from the same issuer carries a valid
# signature too.
_FOREIGN_JWT_TYPES = frozenset(
    {"at+jwt", "application/at+jwt", "logout+jwt", "application/logout+jwt"}
)

#: ID-token claims that a userinfo response may not replace (see :func:`merge_claims`).
PROTECTED_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "nonce",
        "at_hash",
        "c_hash",
        "azp",
        "auth_time",
        "acr",
        "amr",
        "sid",
        "jti",
    }
)

# Signature and payload decoding only: every claim is checked below, against an
# injectable clock, because PyJWT always uses the wall clock. Weak keys (RSA under
# 2048 bits, an HMAC secret shorter than the hash) are refused instead of warned about,
# so that no request ever ends in a warning turned into an exception.
_SIGNATURE_ONLY: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
    "enforce_minimum_key_length": True,
}
_JWT = jwt.PyJWT(options=_SIGNATURE_ONLY)


# --------------------------------------------------------------------------- HTTP


def fetch_json(
    http: requests.Session,
    url: str,
    *,
    timeout: float,
    max_bytes: int = 1_000_000,
) -> dict[str, Any]:
    """GET a JSON object from a provider.

    :param http: the session to send the request with (its connection pool is reused).
    :param url: the document's URL.
    :param timeout: seconds for connecting and for each read; the body must also be
        complete within that many seconds of the first byte, so a provider that
        trickles its answer cannot hold a worker.
    :param max_bytes: the largest body accepted, after decompression.
    :raises ProviderTimeout: the provider did not answer in time.
    :raises ProviderUnavailable: the provider could not be reached.
    :raises ProviderError: a non-2xx status, a body too large, not JSON, or JSON that is
        not an object.
    """
    try:
        response = http.get(
            url,
            timeout=timeout,
            headers={"Accept": "application/json"},
            stream=True,
        )
    except requests.Timeout as exc:
        raise ProviderTimeout(f"No answer from {url} within {timeout}s.") from exc
    except requests.ConnectionError as exc:
        raise ProviderUnavailable(f"Could not connect to {url}: {exc}") from exc
    except requests.RequestException as exc:
        raise ProviderError(f"Request to {url} failed: {exc}") from exc

    with response:
        if not 200 <= response.status_code < 300:
            raise ProviderError(
                f"{url} answered with HTTP {response.status_code}, expected 2xx."
            )
        body = read_capped(response, timeout=timeout, max_bytes=max_bytes)

    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and undecodable bytes; RecursionError a
        # deeply nested document.
        raise ProviderError(f"{url} did not answer with JSON.") from exc
    if not isinstance(data, dict):
        raise ProviderError(
            f"{url} answered with a JSON {type(data).__name__}, expected an object."
        )
    return data


# ---------------------------------------------------------------- shared TTL cache


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    expires_at: float


@dataclass(frozen=True)
class _Failure:
    error_class: type[Exception]
    message: str


class _SingleFlightCache(Generic[T]):
    """A value loaded from the network, kept for ``ttl`` seconds.

    At most one load runs at a time; callers that queued behind a load share its
    outcome, success or failure, instead of repeating it (a provider that is down is
    asked once, not once per waiting request). When a reload fails with a
    :class:`ProviderError` the stale value keeps serving for ``retry_interval``.
    """

    def __init__(
        self,
        load: Callable[[requests.Session, float], T],
        *,
        ttl: float,
        retry_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._retry_interval = retry_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._entry: _Entry[T] | None = None
        self._attempts = 0
        self._failure: _Failure | None = None
        # Only forced loads are rate limited: the first load and those after the
        # TTL do not delay a refetch for a rotated key.
        self._last_forced = -math.inf

    def get(self, http: requests.Session, timeout: float) -> _Entry[T]:
        entry = self._entry
        if entry is not None and self._clock() < entry.expires_at:
            return entry
        attempts = self._attempts
        with self._lock:
            entry = self._entry
            if entry is not None and self._clock() < entry.expires_at:
                return entry
            failure = self._failure
            if failure is not None and self._attempts != attempts:
                # The load we waited for failed a moment ago: share its verdict.
                raise failure.error_class(failure.message)
            return self._load_locked(http, timeout, serve_stale=True)

    def reload(
        self,
        http: requests.Session,
        timeout: float,
        *,
        seen: _Entry[T],
        min_interval: float,
    ) -> _Entry[T] | None:
        """Load again although the value has not expired, unless another caller did
        so since ``seen`` was read or the last forced load is under ``min_interval``
        seconds old. Returns None when no newer value is available."""
        with self._lock:
            entry = self._entry
            if entry is not None and entry is not seen:
                if self._clock() < entry.expires_at:
                    return entry
            now = self._clock()
            if now - self._last_forced < min_interval:
                return None
            self._last_forced = now
            return self._load_locked(http, timeout, serve_stale=False)

    def _load_locked(
        self, http: requests.Session, timeout: float, *, serve_stale: bool
    ) -> _Entry[T]:
        stale = self._entry
        try:
            value = self._load(http, timeout)
        except (ProviderError, ConfigurationError) as exc:
            self._attempts += 1
            self._failure = _Failure(type(exc), str(exc))
            if serve_stale and stale is not None and isinstance(exc, ProviderError):
                logger.warning(
                    "%s; using the copy fetched earlier for %s more seconds.",
                    exc,
                    self._retry_interval,
                )
                self._entry = _Entry(stale.value, self._clock() + self._retry_interval)
                return self._entry
            raise
        except BaseException:
            self._attempts += 1
            self._failure = None
            raise
        self._attempts += 1
        self._failure = None
        self._entry = _Entry(value, self._clock() + self._ttl)
        return self._entry


# ---------------------------------------------------------------------- discovery


def issuer_from_metadata_url(url: str) -> str | None:
    """The issuer a discovery URL belongs to, or None if the URL has no well-known
    part.

    ``https://idp.example/tenant/.well-known/openid-configuration`` (OpenID Connect
    Discovery §4) and ``https://idp.example/.well-known/oauth-authorization-server/tenant``
    (RFC 8414 §3.1) both give ``https://idp.example/tenant``; the suffix form of
    RFC 8414 and the infix form of OIDC, which some servers use, are accepted too.
    """
    parts = urlsplit(url)
    path = parts.path
    for well_known in (_OIDC_WELL_KNOWN, _OAUTH_WELL_KNOWN):
        if path.endswith(well_known):
            path = path[: -len(well_known)]
            break
        if path.startswith(well_known + "/"):
            path = path[len(well_known) :]
            break
    else:
        return None
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


_METADATA_STRINGS = (
    "jwks_uri",
    "userinfo_endpoint",
    "revocation_endpoint",
    "end_session_endpoint",
    "introspection_endpoint",
    "registration_endpoint",
    "pushed_authorization_request_endpoint",
)
_METADATA_STRING_LISTS = (
    "scopes_supported",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "userinfo_signing_alg_values_supported",
    "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported",
    "claims_supported",
)
_METADATA_BOOLS = (
    "authorization_response_iss_parameter_supported",
    "require_pushed_authorization_requests",
)


class ServerMetadata:
    """A provider's discovery document, fetched on first use and cached for ``ttl``
    seconds, bound to its issuer.

    The document's ``issuer`` must equal ``expected_issuer``, or the issuer the URL
    names (see :func:`issuer_from_metadata_url`; a single trailing ``/`` may differ,
    as OpenID Connect Discovery §4.1 removes it to build the URL). A document that
    names another issuer is refused: otherwise whoever answers at that URL could
    make the client trust tokens from any issuer.

    :param url: the discovery document's URL.
    :param ttl: seconds to keep the document.
    :param expected_issuer: the issuer the document must name. Required when the URL
        has no well-known part; for multi-tenant providers this is the template
        the provider publishes (``https://login.microsoftonline.com/{tenantid}/v2.0``).
    :param required: the fields the document must have.
    :param retry_interval: after a failed refresh, the stale document keeps serving
        for this many seconds before the next attempt.
    :param clock: monotonic seconds, for tests.
    :raises ConfigurationError: if no issuer can be derived from the URL and none is
        given.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 3600.0,
        expected_issuer: str | None = None,
        required: Sequence[str] = (
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
        ),
        retry_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._exact = expected_issuer is not None
        derived = expected_issuer or issuer_from_metadata_url(url)
        if derived is None:
            raise ConfigurationError(
                f"Cannot tell which issuer {url} belongs to: it has no"
                f" '{_OIDC_WELL_KNOWN}' part. Pass the provider's issuer as well."
            )
        #: The issuer the document must name (but see :meth:`get` for the value to
        #: check ID tokens against).
        self.expected_issuer: str = derived
        self._required = tuple(required)
        self._cache: _SingleFlightCache[dict[str, Any]] = _SingleFlightCache(
            self._load, ttl=ttl, retry_interval=retry_interval, clock=clock
        )

    def get(self, http: requests.Session, *, timeout: float) -> dict[str, Any]:
        """The discovery document, fetched if not cached or expired.

        Check ID tokens against the returned ``["issuer"]``, which may differ from
        :attr:`expected_issuer` by a trailing ``/``.

        :param http: the session to fetch with.
        :param timeout: see :func:`fetch_json`.
        :raises ConfigurationError: the document names another issuer.
        :raises ProviderError: the document could not be fetched or is malformed.
        """
        # A copy: callers may change what they get without changing the cache.
        return dict(self._cache.get(http, timeout).value)

    def _issuer_matches(self, issuer: str) -> bool:
        if self._exact:
            return issuer == self.expected_issuer
        return issuer in (self.expected_issuer, self.expected_issuer + "/")

    def _load(self, http: requests.Session, timeout: float) -> dict[str, Any]:
        doc = fetch_json(http, self.url, timeout=timeout)
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise ProviderError(f"The discovery document at {self.url} has no issuer.")
        if not self._issuer_matches(issuer):
            raise ConfigurationError(
                f"The discovery document at {self.url} names the issuer {issuer!r},"
                f" but {self.expected_issuer!r} was expected. Check the metadata URL,"
                " or pass the provider's real issuer if it is published elsewhere."
            )
        for name in self._required:
            value = doc.get(name)
            if value is None or value == "":
                raise ProviderError(
                    f"The discovery document at {self.url} has no {name!r}."
                )
        for name in ("issuer", "authorization_endpoint", "token_endpoint"):
            _check_type(doc, name, str, self.url)
        for name in _METADATA_STRINGS:
            _check_type(doc, name, str, self.url)
        for name in _METADATA_BOOLS:
            _check_type(doc, name, bool, self.url)
        for name in _METADATA_STRING_LISTS:
            _check_type(doc, name, list, self.url)
            if name in doc and not all(isinstance(v, str) for v in doc[name]):
                raise ProviderError(
                    f"The discovery document at {self.url} has a non-string in"
                    f" {name!r}."
                )
        return doc


def _check_type(doc: Mapping[str, Any], name: str, kind: type, url: str) -> None:
    # Checked once here so that callers can use "S256" in doc[...] and the like
    # without being fooled by a string where a list belongs.
    if name in doc and not isinstance(doc[name], kind):
        raise ProviderError(
            f"The discovery document at {url} has {name!r} of type"
            f" {type(doc[name]).__name__}, expected {kind.__name__}."
        )


# --------------------------------------------------------------------------- JWKS


@dataclass
class _JWK:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    data: dict[str, Any]
    # PyJWK objects bound to one algorithm each, built on first use.
    bound: dict[str, jwt.PyJWK] = field(default_factory=dict)

    def can_verify(self, alg: str) -> bool:
        if _KTY_FOR_ALG.get(alg) != self.kty:
            return False
        curves = _CRV_FOR_ALG.get(alg)
        if curves is not None and self.crv not in curves:
            return False
        return self.alg is None or self.alg == alg

    def for_alg(self, alg: str) -> jwt.PyJWK:
        key = self.bound.get(alg)
        if key is None:
            try:
                key = jwt.PyJWK(self.data, algorithm=alg)
            except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
                raise InvalidIDToken(
                    "invalid_key", f"The provider's key {self.kid!r} is unusable: {exc}"
                ) from exc
            self.bound[alg] = key
        return key


def _parse_jwks(doc: Mapping[str, Any], url: str) -> tuple[_JWK, ...]:
    entries = doc.get("keys")
    if not isinstance(entries, list):
        raise ProviderError(f"The JWKS at {url} has no 'keys' list.")
    keys: list[_JWK] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kty = entry.get("kty")
        if kty not in ("RSA", "EC", "OKP"):
            # "oct" and unknown key types are never signature keys for us.
            continue
        if entry.get("use", "sig") != "sig":
            continue
        ops = entry.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        kid = entry.get("kid")
        crv = entry.get("crv")
        alg = entry.get("alg")
        if kid is not None and not isinstance(kid, str):
            continue
        if not isinstance(crv, (str, type(None))) or not isinstance(
            alg, (str, type(None))
        ):
            continue
        try:
            # Parse once now so a broken key is dropped here, not at login time.
            jwt.PyJWK(entry, algorithm=alg)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
            logger.warning("Ignoring key %r of the JWKS at %s: %s", kid, url, exc)
            continue
        keys.append(_JWK(kid=kid, kty=kty, crv=crv, alg=alg, data=entry))
    return tuple(keys)


class JWKSCache:
    """The provider's signing keys, fetched on first use and cached for ``ttl``
    seconds.

    A token naming a key id that is not in the cache makes the cache fetch the JWKS
    again (the provider may have rotated its keys), but at most once every
    ``min_refetch_interval`` seconds, so a flood of tokens with made-up key ids cannot
    turn into a flood of requests to the provider. Keys come only from the JWKS: the
    ``jwk``, ``jku``, ``x5u`` and ``x5c`` headers of a token are never looked at.
    Encryption keys (``"use": "enc"``) and symmetric keys are skipped.

    :param jwks_uri: the provider's JWKS URL.
    :param ttl: seconds to keep the keys.
    :param min_refetch_interval: the least number of seconds between two fetches
        caused by an unknown key id.
    :param retry_interval: after a failed refresh, the old keys keep serving for this
        many seconds before the next attempt.
    :param clock: monotonic seconds, for tests.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        jwks_uri: str,
        *,
        ttl: float = 3600.0,
        min_refetch_interval: float = 60.0,
        retry_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_uri = jwks_uri
        self._min_refetch_interval = min_refetch_interval
        self._cache: _SingleFlightCache[tuple[_JWK, ...]] = _SingleFlightCache(
            self._load, ttl=ttl, retry_interval=retry_interval, clock=clock
        )

    def _load(self, http: requests.Session, timeout: float) -> tuple[_JWK, ...]:
        return _parse_jwks(
            fetch_json(http, self.jwks_uri, timeout=timeout), self.jwks_uri
        )

    def get_signing_key(
        self,
        http: requests.Session,
        kid: str | None,
        alg: str,
        *,
        timeout: float,
    ) -> jwt.PyJWK:
        """The key that verifies a token with this ``kid`` and ``alg`` header.

        Without a ``kid``, the only key that can verify ``alg`` is used; if there are
        several, the token is refused.

        :param http: the session to fetch with.
        :param kid: the token's ``kid`` header, or None.
        :param alg: the token's ``alg`` header, already checked against the allowlist.
        :param timeout: see :func:`fetch_json`.
        :returns: a :class:`jwt.PyJWK` bound to ``alg``, for :func:`jwt.decode`.
        :raises InvalidIDToken: ``unknown_kid``, ``ambiguous_kid``,
            ``key_alg_mismatch`` or ``alg_not_allowed`` (not an asymmetric algorithm).
        :raises ProviderError: the JWKS could not be fetched.
        """
        if alg not in _KTY_FOR_ALG:
            raise InvalidIDToken(
                "alg_not_allowed", f"The algorithm {alg!r} cannot use a JWKS key."
            )
        entry = self._cache.get(http, timeout)
        key = self._select(entry.value, kid, alg)
        if key is None:
            newer = self._cache.reload(
                http,
                timeout,
                seen=entry,
                min_interval=self._min_refetch_interval,
            )
            if newer is not None:
                key = self._select(newer.value, kid, alg)
        if key is None:
            if kid is None:
                raise InvalidIDToken(
                    "unknown_kid", f"The provider's JWKS has no key for {alg}."
                )
            raise InvalidIDToken(
                "unknown_kid", f"The provider's JWKS has no key with kid {kid!r}."
            )
        return key.for_alg(alg)

    @staticmethod
    def _select(keys: tuple[_JWK, ...], kid: str | None, alg: str) -> _JWK | None:
        if kid is not None:
            named = [key for key in keys if key.kid == kid]
            if not named:
                return None
            usable = [key for key in named if key.can_verify(alg)]
            if not usable:
                raise InvalidIDToken(
                    "key_alg_mismatch",
                    f"The provider's key {kid!r} cannot verify a {alg} signature.",
                )
            return usable[0]
        usable = [key for key in keys if key.can_verify(alg)]
        if not usable:
            return None
        if len(usable) > 1:
            raise InvalidIDToken(
                "ambiguous_kid",
                f"The ID token names no key (kid) and the JWKS has {len(usable)}"
                f" keys for {alg}.",
            )
        return usable[0]


# ------------------------------------------------------------------- the ID token


def tenant_issuer_matcher(
    template: str, *, placeholder: str = "{tenantid}"
) -> IssuerMatcher:
    """An ``issuer_matcher`` for multi-tenant issuers such as Microsoft's
    ``https://login.microsoftonline.com/{tenantid}/v2.0``: the token's ``iss`` must
    equal the template with the placeholder replaced by the token's ``tid`` claim.

    Any tenant's users are accepted; restrict ``tid`` in ``on_login`` if the app is
    for some tenants only.

    :param template: the issuer as the provider's discovery document names it.
    :param placeholder: the part of ``template`` that stands for the tenant id.
    """

    def match(iss: str, claims: dict[str, Any]) -> bool:
        tid = claims.get("tid")
        if not isinstance(tid, str) or not tid or "/" in tid:
            return False
        return iss == template.replace(placeholder, tid)

    return match


def validate_id_token(
    id_token: str,
    *,
    http: requests.Session,
    timeout: float,
    issuer: str,
    client_id: str,
    jwks: JWKSCache | None,
    algorithms: Sequence[str] = ("RS256",),
    client_secret: str | None = None,
    nonce: str | None,
    nonce_required: bool = True,
    access_token: str | None = None,
    leeway: float = 60.0,
    max_age: float | None = None,
    trusted_audiences: Collection[str] = (),
    issuer_matcher: IssuerMatcher | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify an ID token as OpenID Connect Core §3.1.3.7 asks and return its claims.

    - The signature is checked with PyJWT, with a key from ``jwks`` for asymmetric
      algorithms or the UTF-8 bytes of ``client_secret`` for ``HS*``. The token's
      ``alg`` must be in ``algorithms``; ``none`` is refused even if listed, ``HS*``
      only when ``client_secret`` is given, and a JWKS key only ever verifies its own
      algorithm family (no HMAC with an RSA public key).
    - ``iss`` equals ``issuer`` exactly (or ``issuer_matcher`` accepts it).
    - ``aud`` contains ``client_id``, and every other audience is in
      ``trusted_audiences``; ``azp``, required when there are several audiences,
      equals ``client_id``.
    - ``exp`` is present and not past, ``iat`` is present and not in the future,
      ``nbf`` (if any) is past, each with ``leeway`` seconds of clock skew.
    - ``sub`` is a non-empty string.
    - ``nonce`` equals the expected ``nonce``; a token with a nonce nobody asked for is
      refused.
    - ``at_hash``, if present and ``access_token`` is given, matches it.
    - with ``max_age``, ``auth_time`` is present and not older.

    :param id_token: the ``id_token`` of the token response.
    :param http: the session to fetch the JWKS with.
    :param timeout: see :func:`fetch_json`.
    :param issuer: the issuer of the provider's discovery document.
    :param client_id: this client's id.
    :param jwks: the provider's keys; may be None when only ``HS*`` is allowed.
    :param algorithms: the allowed ``alg`` values.
    :param client_secret: the key for ``HS*`` tokens.
    :param nonce: the nonce sent in the authorization request, or None if none was.
    :param nonce_required: with False, a token without a nonce is accepted (for a
        refreshed ID token, which OIDC Core §12.2 says should carry none, or the
        original one: pass the original nonce).
    :param access_token: the access token issued with the ID token.
    :param leeway: seconds of clock skew tolerated.
    :param max_age: the ``max_age`` sent in the authorization request.
    :param trusted_audiences: other audiences that may appear besides ``client_id``.
    :param issuer_matcher: decides on ``iss`` instead of equality, for multi-tenant
        providers; see :func:`tenant_issuer_matcher`.
    :param now: the current time in seconds since the epoch, for tests.
    :returns: the verified claims.
    :raises InvalidIDToken: the token failed a check; :attr:`~InvalidIDToken.reason`
        says which.
    :raises ConfigurationError: the token needs a JWKS and ``jwks`` is None.
    :raises ProviderError: the JWKS could not be fetched.

    .. versionadded:: 0.1
    """
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        # Five parts would be an encrypted (JWE) ID token, which is not supported.
        raise InvalidIDToken("malformed", "The ID token is not a signed JWT.")
    allowed = _allowed_algorithms(algorithms)

    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise InvalidIDToken("malformed", f"The ID token is malformed: {exc}") from exc

    alg = header.get("alg")
    if not isinstance(alg, str) or not alg or alg.lower() == "none":
        raise InvalidIDToken("alg_none", "Unsigned ID tokens are never accepted.")
    if alg not in allowed:
        raise InvalidIDToken(
            "alg_not_allowed", f"The ID token is signed with {alg}, not allowed here."
        )
    typ = header.get("typ")
    if isinstance(typ, str) and typ.lower() in _FOREIGN_JWT_TYPES:
        raise InvalidIDToken("invalid_typ", f"A {typ!r} token is not an ID token.")

    key: jwt.PyJWK | bytes
    if alg in _HMAC_ALGS:
        if not client_secret:
            raise InvalidIDToken(
                "alg_not_allowed", f"{alg} needs the client secret, and none is set."
            )
        # OIDC Core §10.1: the key is the octets of the UTF-8 client secret.
        key = client_secret.encode("utf-8")
    else:
        if jwks is None:
            raise ConfigurationError(
                f"The ID token is signed with {alg} but the provider has no jwks_uri."
                " Configure jwks_uri or server_metadata_url."
            )
        key = jwks.get_signing_key(http, header.get("kid"), alg, timeout=timeout)

    try:
        claims = _JWT.decode(id_token, key=key, algorithms=[alg])
    except jwt.InvalidSignatureError as exc:
        raise InvalidIDToken(
            "invalid_signature", "The ID token's signature is not valid."
        ) from exc
    except jwt.InvalidAlgorithmError as exc:
        raise InvalidIDToken("alg_not_allowed", str(exc)) from exc
    except jwt.InvalidKeyError as exc:
        raise InvalidIDToken(
            "invalid_key", f"Cannot verify the ID token: {exc}"
        ) from exc
    except jwt.PyJWTError as exc:
        raise InvalidIDToken("malformed", f"The ID token is malformed: {exc}") from exc

    _check_claims(
        claims,
        alg=alg,
        issuer=issuer,
        client_id=client_id,
        nonce=nonce,
        nonce_required=nonce_required,
        access_token=access_token,
        leeway=leeway,
        max_age=max_age,
        trusted_audiences=trusted_audiences,
        issuer_matcher=issuer_matcher,
        now=time.time() if now is None else now,
    )
    return claims


def _allowed_algorithms(algorithms: Sequence[str]) -> frozenset[str]:
    if isinstance(algorithms, str):
        # A bare string would otherwise allow each of its substrings via "in".
        algorithms = (algorithms,)
    return frozenset(a for a in algorithms if a.lower() != "none")


def _check_claims(
    claims: dict[str, Any],
    *,
    alg: str,
    issuer: str,
    client_id: str,
    nonce: str | None,
    nonce_required: bool,
    access_token: str | None,
    leeway: float,
    max_age: float | None,
    trusted_audiences: Collection[str],
    issuer_matcher: IssuerMatcher | None,
    now: float,
) -> None:
    iss = claims.get("iss")
    if not isinstance(iss, str):
        raise InvalidIDToken("invalid_iss", "The ID token has no issuer.")
    if issuer_matcher is not None:
        if not issuer_matcher(iss, claims):
            raise InvalidIDToken("invalid_iss", f"Unexpected ID token issuer {iss!r}.")
    elif iss != issuer:
        raise InvalidIDToken(
            "invalid_iss", f"The ID token's issuer is {iss!r}, expected {issuer!r}."
        )

    audiences = _audiences(claims.get("aud"))
    if client_id not in audiences:
        raise InvalidIDToken(
            "invalid_aud", "The ID token is not meant for this client."
        )
    if isinstance(trusted_audiences, str):
        trusted_audiences = (trusted_audiences,)
    untrusted = audiences - {client_id} - set(trusted_audiences)
    if untrusted:
        raise InvalidIDToken(
            "untrusted_aud",
            f"The ID token is also meant for {sorted(untrusted)!r}, which is not"
            " trusted.",
        )
    azp = claims.get("azp")
    if azp is None:
        if len(audiences) > 1:
            raise InvalidIDToken(
                "missing_azp", "An ID token with several audiences needs an azp claim."
            )
    elif azp != client_id:
        raise InvalidIDToken("invalid_azp", "The ID token was issued to another party.")

    if now >= _required_time_claim(claims, "exp") + leeway:
        raise InvalidIDToken("expired", "The ID token has expired.")
    if _required_time_claim(claims, "iat") > now + leeway:
        raise InvalidIDToken("iat_in_future", "The ID token is issued in the future.")
    nbf = _time_claim(claims, "nbf")
    if nbf is not None and nbf > now + leeway:
        raise InvalidIDToken("not_yet_valid", "The ID token is not valid yet.")

    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidIDToken("missing_sub", "The ID token names no subject (sub).")

    _check_nonce(claims, nonce, required=nonce_required)

    at_hash = claims.get("at_hash")
    if at_hash is not None and access_token is not None:
        if not isinstance(at_hash, str) or not hmac.compare_digest(
            at_hash.encode("ascii", "replace"), _left_half_hash(alg, access_token)
        ):
            raise InvalidIDToken(
                "invalid_at_hash", "The ID token does not match the access token."
            )

    if max_age is not None:
        auth_time = _time_claim(claims, "auth_time")
        if auth_time is None:
            raise InvalidIDToken(
                "missing_auth_time", "max_age was requested but auth_time is missing."
            )
        if now - auth_time > max_age + leeway:
            raise InvalidIDToken(
                "auth_time_too_old", "The user authenticated too long ago (max_age)."
            )


def _audiences(aud: Any) -> set[str]:
    if isinstance(aud, str):
        return {aud}
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return set(aud)
    raise InvalidIDToken("invalid_aud", "The ID token has no valid audience (aud).")


def _required_time_claim(claims: Mapping[str, Any], name: str) -> float:
    value = _time_claim(claims, name)
    if value is None:
        raise InvalidIDToken(f"missing_{name}", f"The ID token has no {name}.")
    return value


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int in Python, but true is not a time.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidIDToken(
            f"invalid_{name}", f"The ID token's {name} is not a number."
        )
    if not math.isfinite(value):
        raise InvalidIDToken(f"invalid_{name}", f"The ID token's {name} is not finite.")
    return float(value)


def _check_nonce(
    claims: Mapping[str, Any], expected: str | None, *, required: bool
) -> None:
    received = claims.get("nonce")
    if received is None:
        if expected is not None and required:
            raise InvalidIDToken("missing_nonce", "The ID token has no nonce.")
        return
    if expected is None:
        # A nonce nobody asked for means the token belongs to another login flow.
        raise InvalidIDToken("invalid_nonce", "The ID token has an unexpected nonce.")
    if not isinstance(received, str) or not hmac.compare_digest(
        received.encode("utf-8"), expected.encode("utf-8")
    ):
        raise InvalidIDToken("invalid_nonce", "The ID token's nonce does not match.")


def _left_half_hash(alg: str, value: str) -> bytes:
    hash_function = _AT_HASH_FUNCTIONS.get(alg)
    if hash_function is None:
        raise InvalidIDToken("invalid_at_hash", f"No at_hash is defined for {alg}.")
    digest: bytes = hash_function(value.encode("ascii", "replace")).digest()
    return base64url_encode(digest[: len(digest) // 2])


# ------------------------------------------------------- after the ID token


def validate_refreshed_id_token(
    original: Mapping[str, Any], refreshed: Mapping[str, Any]
) -> None:
    """Check an ID token received with a refreshed access token against the one of
    the original login, as OpenID Connect Core §12.2 asks: the same ``iss``, ``sub``,
    ``aud`` (as a set) and ``azp``, the original ``auth_time`` and, if it has one, the
    original ``nonce``.

    Validate the refreshed token itself with :func:`validate_id_token` first
    (``nonce=original.get("nonce")``, ``nonce_required=False``).

    :param original: the verified claims of the ID token of the login.
    :param refreshed: the verified claims of the new ID token.
    :raises InvalidIDToken: ``refreshed_id_token_mismatch``.

    .. versionadded:: 0.1
    """
    for name in ("iss", "sub"):
        if refreshed.get(name) != original.get(name):
            raise _refresh_mismatch(name)
    try:
        same_aud = _audiences(refreshed.get("aud")) == _audiences(original.get("aud"))
    except InvalidIDToken:
        same_aud = False
    if not same_aud:
        raise _refresh_mismatch("aud")
    if refreshed.get("azp") != original.get("azp"):
        raise _refresh_mismatch("azp")
    for name in ("auth_time", "nonce"):
        if name in refreshed and refreshed[name] != original.get(name):
            raise _refresh_mismatch(name)


def _refresh_mismatch(name: str) -> InvalidIDToken:
    return InvalidIDToken(
        "refreshed_id_token_mismatch",
        f"The refreshed ID token's {name} differs from the original one's.",
    )


def check_userinfo(id_claims: Mapping[str, Any], userinfo: Mapping[str, Any]) -> None:
    """Check that a userinfo response is about the user of the ID token (OpenID
    Connect Core §5.3.2): its ``sub`` must equal the ID token's.

    :raises InvalidIDToken: ``userinfo_sub_mismatch``.

    .. versionadded:: 0.1
    """
    sub = userinfo.get("sub")
    if not isinstance(sub, str) or sub != id_claims.get("sub"):
        raise InvalidIDToken(
            "userinfo_sub_mismatch",
            "The userinfo response is about another user than the ID token.",
        )


def merge_claims(
    id_claims: Mapping[str, Any], userinfo: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The claims given to the app: the userinfo values over the ID token's, except
    the ID token's own claims (``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``nonce``,
    ``azp``, ``at_hash``, ``auth_time``, ``acr``, ``amr`` ...: see
    :data:`PROTECTED_CLAIMS`), which only the signed ID token may set.

    Call :func:`check_userinfo` first.

    .. versionadded:: 0.1
    """
    merged = dict(id_claims)
    if userinfo:
        for name, value in userinfo.items():
            if name not in PROTECTED_CLAIMS:
                merged[name] = value
    return merged


def check_authorization_response_iss(
    received: str | None, *, issuer: str, required: bool
) -> None:
    """Check the ``iss`` parameter of the authorization response (RFC 9207), which
    tells a client that talks to several providers which one answered (mix-up
    attacks).

    :param received: the ``iss`` query parameter of the callback, or None.
    :param issuer: the provider's issuer.
    :param required: whether the provider's metadata has
        ``authorization_response_iss_parameter_supported: true``.
    :raises InvalidIDToken: ``iss_mismatch`` or ``missing_iss_param``.

    .. versionadded:: 0.1
    """
    if received is None:
        if required:
            raise InvalidIDToken(
                "missing_iss_param",
                "The provider announces the iss parameter, but the response has none.",
            )
        return
    if received != issuer:
        raise InvalidIDToken(
            "iss_mismatch",
            f"The response comes from the issuer {received!r}, expected {issuer!r}.",
        )
