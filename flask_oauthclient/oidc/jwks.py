"""The provider's key set (JWKS): fetched, cached, refetched when a token names an
unknown key, and the choice of the one key that may verify a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Callable
from typing import TYPE_CHECKING

import requests

from ..errors import InvalidIDToken
from ..errors import ProviderError
from .documents import fetch_json
from .documents import SingleFlightCache

if TYPE_CHECKING:
    import jwt

# PyJWT is imported where keys are parsed (see the id_token module).

__all__ = ["JWKSCache"]

# The package's logger, the one name for all of flask_oauthclient.oidc's records.
logger = logging.getLogger("flask_oauthclient.oidc")

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
            import jwt

            try:
                key = jwt.PyJWK(self.data, algorithm=alg)
            except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
                raise InvalidIDToken(
                    "invalid_key", f"The provider's key {self.kid!r} is unusable: {exc}"
                ) from exc
            self.bound[alg] = key
        return key


def _parse_jwks(doc: Mapping[str, Any], url: str) -> tuple[_JWK, ...]:
    import jwt

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
        self._cache: SingleFlightCache[tuple[_JWK, ...]] = SingleFlightCache(
            self._load,
            ttl=ttl,
            retry_interval=retry_interval,
            clock=clock,
            logger=logger,
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
