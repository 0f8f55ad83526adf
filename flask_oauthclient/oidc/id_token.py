"""ID-token validation (OpenID Connect Core 1.0 §3.1.3.7), the check of a refreshed
ID token against the original one (§12.2) and of the ``iss`` parameter of the
authorization response (RFC 9207).

All cryptography is PyJWT's; this module only chooses which key and which algorithm
PyJWT may use (the provider's keys come from the ``jwks`` module).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import time
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Callable
from typing import TYPE_CHECKING

import requests

from ..errors import ConfigurationError
from ..errors import InvalidIDToken
from .jwks import JWKSCache

if TYPE_CHECKING:
    import jwt
    from jwt.types import Options

# PyJWT (and with it cryptography) is imported where a token is checked: discovery,
# which a refresh of a provider registered with server_metadata_url goes through,
# imports this package, and needs neither.

__all__ = [
    "IssuerMatcher",
    "check_authorization_response_iss",
    "tenant_issuer_matcher",
    "validate_id_token",
    "validate_refreshed_id_token",
]

#: ``issuer_matcher(iss, claims) -> bool``: decides whether a multi-tenant issuer is
#: acceptable, in place of exact equality with the configured issuer.
IssuerMatcher = Callable[[str, dict[str, Any]], bool]

# The HMAC algorithms: keyed with the client secret, never with a JWKS key (the
# asymmetric ones and the keys that can verify them are in the jwks module).
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


@functools.cache
def _signature_only() -> jwt.PyJWT:
    import jwt

    return jwt.PyJWT(options=_SIGNATURE_ONLY)


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
    import jwt

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
        claims = _signature_only().decode(id_token, key=key, algorithms=[alg])
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
    from jwt.utils import base64url_encode

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
