"""How the app authenticates itself at the provider's token endpoint, for the code
exchange, refreshes, the client credentials grant and revocation
(``token_endpoint_auth_method``):

``client_secret_basic`` / ``client_secret_post``
    The client secret, in HTTP Basic authentication or in the form (RFC 6749
    §2.3.1). A preset may make that secret a JWT the app signs with its own key
    (Apple's: :class:`SignedSecret`).
``private_key_jwt`` / ``client_secret_jwt``
    A short-lived JWT assertion (RFC 7523 §2.2, OpenID Connect Core §9), signed
    with the app's private key or (HS256) with the client secret, made anew for
    each request.

No Flask here: :class:`~.app_provider.AppProvider` holds a :class:`ClientAuth`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import typing as t
from urllib.parse import quote

from requests.auth import HTTPBasicAuth

from .errors import ConfigurationError

if t.TYPE_CHECKING:
    # PyJWT and cryptography are imported where keys are used: an app whose
    # providers authenticate with a plain secret never loads them.
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.asymmetric import rsa

    _PrivateKey = t.Union[
        rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey
    ]

#: A private key as ``register`` takes it: PEM text or bytes (PKCS#8, or the
#: traditional RSA/EC forms), or a private JWK as a dict.
ClientKey = t.Union[str, bytes, t.Mapping[str, t.Any]]

#: ``client_assertion_type`` of a JWT assertion (RFC 7523 §2.2).
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds an assertion is valid: it is made for one request.
ASSERTION_LIFETIME = 60
#: The ``token_endpoint_auth_method`` values.
METHODS = (
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
)
JWT_METHODS = ("client_secret_jwt", "private_key_jwt")
#: RFC 7518 §3.2: an HS256 key has at least as many bytes as the hash.
_MIN_HS256_SECRET = 32

_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def check_supported(
    document: t.Mapping[str, t.Any], field: str, value: str, *, setting: str, name: str
) -> None:
    """Refuse a ``register`` ``setting`` whose ``value`` the discovery
    ``document``'s ``field`` (when it has one) does not list.

    :raises ConfigurationError: naming the setting and what the provider supports.
    """
    supported = document.get(field)
    if isinstance(supported, list) and value not in supported:
        raise ConfigurationError(
            f"Provider {name!r} is registered with {setting}, but its discovery "
            f"document lists only {', '.join(supported) or 'nothing'} in {field}. "
            "Register it with one of those, or check that the provider supports it "
            "for this client."
        )


class SigningKey:
    """One of the app's private keys: the key, the JWS algorithm it signs with
    and its key id (``kid``), if it has one.

    .. versionadded:: 0.1
    """

    def __init__(self, key: _PrivateKey | bytes, alg: str, kid: str | None) -> None:
        self.key = key
        self.alg = alg
        self.kid = kid

    def __repr__(self) -> str:
        # Never the key itself.
        return f"<SigningKey {self.alg} kid={self.kid!r}>"

    @classmethod
    def load(cls, value: ClientKey, kid: str | None = None) -> SigningKey:
        """Load a PEM private key, or a private JWK (whose ``alg`` and ``kid``
        are used unless ``kid`` is given).

        :raises ConfigurationError: not a private RSA, EC (P-256, P-384, P-521)
            or Ed25519 key, or an encrypted PEM.
        """
        import jwt
        from cryptography.hazmat.primitives import serialization

        alg: str | None = None
        if isinstance(value, t.Mapping):
            if "d" not in value:
                raise ConfigurationError(
                    "client_private_key is a public JWK: the private one is needed "
                    "(give the provider the public one)."
                )
            try:
                key: t.Any = jwt.PyJWK(dict(value)).key
            except (jwt.PyJWKError, ValueError, TypeError, KeyError) as e:
                raise ConfigurationError(
                    f"client_private_key is not a usable JWK: {e}"
                ) from None
            alg = value.get("alg")
            kid = kid or value.get("kid")
        else:
            data = value.encode() if isinstance(value, str) else bytes(value)
            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError):
                raise ConfigurationError(
                    f"client_private_key could not be loaded: {_pem_problem(data)}. "
                    "Give an unencrypted PEM private key (PKCS#8) or a private JWK."
                ) from None
        return cls(key, alg or _algorithm(key), kid)

    def sign(self, claims: t.Mapping[str, t.Any]) -> str:
        """The compact JWS of ``claims``, with this key's ``kid`` in the header."""
        import jwt

        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(dict(claims), self.key, algorithm=self.alg, headers=headers)

    def public_jwk(self) -> dict[str, t.Any]:
        """The public half as a JWK, with ``kid`` (or, without one, its RFC 7638
        thumbprint), ``alg`` and ``"use": "sig"``: what the provider is given."""
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import ECAlgorithm
        from jwt.algorithms import OKPAlgorithm
        from jwt.algorithms import RSAAlgorithm

        if isinstance(self.key, bytes):
            raise TypeError("A shared secret has no public key.")
        public = self.key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        jwk = {k: v for k, v in dict(jwk).items() if k not in ("key_ops", "ext")}
        jwk.update(kid=self.kid or thumbprint(jwk), alg=self.alg, use="sig")
        return jwk


def _pem_problem(data: bytes) -> str:
    """Why ``data`` is not a PEM private key, read from its PEM header only (the
    message never quotes the value)."""
    if b"ENCRYPTED" in data:
        # "BEGIN ENCRYPTED PRIVATE KEY" (PKCS#8) or "Proc-Type: 4,ENCRYPTED".
        return "it is encrypted"
    # "BEGIN CERTIFICATE", "BEGIN TRUSTED CERTIFICATE", "BEGIN X509 CERTIFICATE";
    # not "BEGIN CERTIFICATE REQUEST".
    if b"CERTIFICATE-----" in data:
        return (
            "it is a certificate: the private key is needed "
            "(the key the certificate was made for)"
        )
    if b"-----BEGIN" in data and b"PUBLIC KEY-----" in data:
        return (
            "it is a public key: the private key is needed "
            "(the provider gets the public one)"
        )
    return "not a PEM key"


def _algorithm(key: t.Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.asymmetric import rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name in _EC_ALGORITHMS:
            return _EC_ALGORITHMS[key.curve.name]
        raise ConfigurationError(
            f"client_private_key is on the curve {key.curve.name}; use P-256."
        )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ConfigurationError(
        "client_private_key must be a private RSA, EC or Ed25519 key."
    )


def thumbprint(jwk: t.Mapping[str, t.Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url.

    .. versionadded:: 0.1
    """
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}.get(
        str(jwk["kty"]), ("crv", "kty", "x")
    )
    canonical = json.dumps(
        {m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def load_keys(value: t.Any, key_id: str | None) -> list[SigningKey]:
    """``client_private_key`` as keys: one key, or a list whose first key signs
    and whose others are published next to it (:meth:`ClientAuth.public_jwks`)
    for a rotation. ``key_id`` is the first key's ``kid``."""
    if value is None:
        return []
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        return []
    return [SigningKey.load(values[0], key_id)] + [
        SigningKey.load(v) for v in values[1:]
    ]


def public_jwks(private_key: t.Any, key_id: str | None = None) -> dict[str, t.Any]:
    """The JWK set of the public halves of ``client_private_key`` (one key or a
    list, as ``register`` takes it; ``key_id`` is the first key's ``kid``): what
    the provider is given, or what the app serves at the ``jwks_uri`` it
    registered there. Keys without a ``kid`` are listed under their RFC 7638
    thumbprint.

    .. code-block:: python

        from flask_oauthclient.client_auth import public_jwks

        @app.get("/.well-known/jwks.json")
        def jwks():
            return public_jwks(app.config["OAUTHCLIENT_CORP_CLIENT_PRIVATE_KEY"])

    .. versionadded:: 0.1
    """
    return {"keys": [key.public_jwk() for key in load_keys(private_key, key_id)]}


def client_assertion(
    client_id: str,
    audience: str,
    key: SigningKey,
    *,
    now: float | None = None,
    lifetime: int = ASSERTION_LIFETIME,
) -> str:
    """A JWT assertion that authenticates ``client_id`` at ``audience`` (RFC 7523
    §3): ``iss`` and ``sub`` the client id, ``aud`` the token endpoint, ``iat``,
    ``exp`` ``lifetime`` seconds later and a unique ``jti``.

    .. versionadded:: 0.1
    """
    issued = int(time.time() if now is None else now)
    return key.sign(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": issued,
            "exp": issued + lifetime,
            "jti": secrets.token_urlsafe(24),
        }
    )


class SecretSigner(t.Protocol):
    """A preset's maker of a client secret that is a JWT signed with the app's key
    (:attr:`~flask_oauthclient.provider_config.ProviderConfig.client_secret_signer`):
    returns the secret and when it expires (Unix time).

    .. versionadded:: 0.1
    """

    def __call__(
        self, *, client_id: str, team_id: str | None, key: SigningKey, now: int
    ) -> tuple[str, int]: ...


class SignedSecret:
    """A client secret the app signs (Apple's), made on first use and made again
    when less than ``renew_before`` seconds of it are left; shared by the threads
    of the process.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        signer: SecretSigner,
        *,
        client_id: str,
        team_id: str | None,
        key: SigningKey,
        renew_before: int = 600,
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        self._sign = signer
        self._client_id = client_id
        self._team_id = team_id
        self._key = key
        self._renew_before = renew_before
        self._clock = clock
        self._lock = threading.Lock()
        self._current: tuple[str, int] | None = None

    def __call__(self) -> str:
        with self._lock:
            now = int(self._clock())
            if self._current is None or self._current[1] - now < self._renew_before:
                self._current = self._sign(
                    client_id=self._client_id,
                    team_id=self._team_id,
                    key=self._key,
                    now=now,
                )
            return self._current[0]


class ClientAuth:
    """One provider's client authentication: what goes with each request to its
    token and revocation endpoints.

    :raises ConfigurationError: an unknown method, or what it needs is missing.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        name: str,
        method: str,
        *,
        client_id: str,
        client_secret: str | None,
        private_key: t.Any = None,
        key_id: str | None = None,
        team_id: str | None = None,
        secret_signer: SecretSigner | None = None,
    ) -> None:
        if method not in METHODS:
            raise ConfigurationError(
                f"Provider {name!r}: token_endpoint_auth_method must be one of "
                f"{', '.join(METHODS)}."
            )
        self.method = method
        self.client_id = client_id
        self.static_secret = client_secret
        self.keys = load_keys(private_key, key_id)
        self.signed_secret: SignedSecret | None = None
        if method == "private_key_jwt" and not self.keys:
            raise ConfigurationError(
                f"Provider {name!r} authenticates with private_key_jwt: pass "
                "client_private_key= (a PEM private key or a private JWK) to "
                "oauth.register() or set "
                f"OAUTHCLIENT_{name.upper()}_CLIENT_PRIVATE_KEY."
            )
        if self.keys and method != "private_key_jwt":
            if secret_signer is None or method == "client_secret_jwt":
                raise ConfigurationError(
                    f"Provider {name!r} has a client_private_key, which only "
                    "token_endpoint_auth_method='private_key_jwt' uses (or a preset "
                    "that signs its client secret, such as apple)."
                )
            self.signed_secret = SignedSecret(
                secret_signer, client_id=client_id, team_id=team_id, key=self.keys[0]
            )
            # Made now: what the signer misses is a ConfigurationError at init_app.
            self.signed_secret()
        if secret_signer is not None and not self.keys and not client_secret:
            raise ConfigurationError(
                f"Provider {name!r} signs its client secret with the app's key: "
                "pass client_private_key=, client_key_id= and team_id= to "
                "oauth.register() (or a client_secret made beforehand)."
            )
        if method == "client_secret_jwt":
            secret = (client_secret or "").encode()
            if len(secret) < _MIN_HS256_SECRET:
                raise ConfigurationError(
                    f"Provider {name!r} authenticates with client_secret_jwt, which "
                    "signs with the client secret (HS256): it needs a client_secret "
                    f"of at least {_MIN_HS256_SECRET} bytes (RFC 7518 §3.2)."
                )
            self.keys = [SigningKey(secret, "HS256", None)]

    @property
    def alg(self) -> str | None:
        """The algorithm of the assertions (``None`` without assertions)."""
        return self.keys[0].alg if self.method in JWT_METHODS else None

    def secret(self) -> str | None:
        """The client secret: the configured one, or the one the app signs."""
        if self.signed_secret is not None:
            return self.signed_secret()
        return self.static_secret

    def assertion(self, audience: str) -> str:
        """A new assertion for one request to ``audience`` (the token endpoint)."""
        return client_assertion(self.client_id, audience, self.keys[0])

    def token_request(self, token_url: str) -> dict[str, t.Any]:
        """The keyword arguments of requests-oauthlib's ``fetch_token``."""
        if self.method in JWT_METHODS:
            return {
                "include_client_id": True,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(token_url),
            }
        if self.method == "client_secret_post":
            return {"include_client_id": True, "client_secret": self.secret()}
        return {"auth": self.basic_auth()}

    def refresh_request(self, token_url: str) -> dict[str, t.Any]:
        """The keyword arguments of requests-oauthlib's ``refresh_token``, which
        puts extra keywords in the body."""
        if self.method in JWT_METHODS:
            return {
                "client_id": self.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(token_url),
            }
        if self.method == "client_secret_post":
            return {"client_id": self.client_id, "client_secret": self.secret()}
        return {"auth": self.basic_auth()}

    def form_and_auth(
        self, token_url: str
    ) -> tuple[dict[str, str], HTTPBasicAuth | None]:
        """The form fields and the HTTP authentication of a plain request (RFC 7009
        revocation). An assertion's audience is the token endpoint there too."""
        if self.method in JWT_METHODS:
            return {
                "client_id": self.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(token_url),
            }, None
        if self.method == "client_secret_post":
            return {
                "client_id": self.client_id,
                "client_secret": self.secret() or "",
            }, None
        return {}, self.basic_auth()

    def basic_auth(self) -> HTTPBasicAuth:
        """RFC 6749 §2.3.1: both parts form-encoded, then Basic."""
        return HTTPBasicAuth(
            quote(self.client_id, safe=""), quote(self.secret() or "", safe="")
        )

    def public_jwks(self) -> dict[str, t.Any]:
        """The public keys of ``client_private_key`` as a JWK set: the signing key
        first, then the next ones. Give it to the provider, or serve it at the
        ``jwks_uri`` registered there. Empty without private keys."""
        keys = [key for key in self.keys if not isinstance(key.key, bytes)]
        return {"keys": [key.public_jwk() for key in keys]}
