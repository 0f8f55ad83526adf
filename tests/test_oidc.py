"""OpenID Connect discovery, JWKS cache and ID-token validation (no Flask app).

Each ID-token test breaks one rule of OpenID Connect Core §3.1.3.7 on an otherwise
valid token, in the manner of the OpenID Foundation's RP conformance modules
(``oidcc-client-test-*``). The provider is a fake ``requests`` adapter: no network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import threading
import time
from collections import Counter
from functools import cache
from typing import Any
from typing import Callable

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm
from jwt.algorithms import OKPAlgorithm
from jwt.algorithms import RSAAlgorithm
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ReadTimeoutError

from flask_oauthclient.errors import ConfigurationError
from flask_oauthclient.errors import InvalidIDToken
from flask_oauthclient.errors import ProviderError
from flask_oauthclient.errors import ProviderTimeout
from flask_oauthclient.errors import ProviderUnavailable
from flask_oauthclient.oidc import check_authorization_response_iss
from flask_oauthclient.oidc import check_userinfo
from flask_oauthclient.oidc import fetch_json
from flask_oauthclient.oidc import issuer_from_metadata_url
from flask_oauthclient.oidc import JWKSCache
from flask_oauthclient.oidc import merge_claims
from flask_oauthclient.oidc import ServerMetadata
from flask_oauthclient.oidc import tenant_issuer_matcher
from flask_oauthclient.oidc import validate_id_token
from flask_oauthclient.oidc import validate_refreshed_id_token

ISSUER = "https://idp.example"
DISCOVERY_URL = ISSUER + "/.well-known/openid-configuration"
JWKS_URL = ISSUER + "/jwks"
CLIENT_ID = "client-123"
CLIENT_SECRET = "a client secret that is long enough for HS512, really: 64 bytes."
NONCE = "n-0S6_WzA2Mj"
NOW = 1_700_000_000.0
TIMEOUT = 5.0


# ------------------------------------------------------------------- the fakes


class FakeProvider(BaseAdapter):
    """Answers requests from a table of routes and counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, Callable[[], Any]] = {}
        self.calls: Counter[str] = Counter()
        self.delay = 0.0

    def json(self, url: str, value: Callable[[], Any] | Any) -> None:
        def answer() -> Any:
            body = value() if callable(value) else value
            return 200, json.dumps(body).encode(), {"Content-Type": "application/json"}

        self.routes[url] = answer

    def reply(
        self, url: str, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.routes[url] = lambda: (status, body, headers or {})

    def fail(self, url: str, error: Exception) -> None:
        def answer() -> Any:
            raise error

        self.routes[url] = answer

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        assert request.url is not None
        self.calls[request.url] += 1
        if self.delay:
            time.sleep(self.delay)
        if request.url not in self.routes:
            raise AssertionError(f"unexpected request to {request.url}")
        status, body, headers = self.routes[request.url]()
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response.raw = body if not isinstance(body, bytes) else io.BytesIO(body)
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def http(provider: FakeProvider) -> requests.Session:
    session = requests.Session()
    session.mount("https://", provider)
    return session


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -------------------------------------------------------------------- the keys


@cache
def rsa_key(name: str, size: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


@cache
def ec_key(name: str, curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
    return ec.generate_private_key(curves[curve])


@cache
def ed_key(name: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(private: Any, kid: str | None, **extra: Any) -> dict[str, Any]:
    public = private.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    jwk.update(extra)
    return jwk


SIGNERS: dict[str, Callable[[], Any]] = {
    "RS256": lambda: rsa_key("main"),
    "RS384": lambda: rsa_key("main"),
    "PS256": lambda: rsa_key("main"),
    "ES256": lambda: ec_key("main"),
    "ES384": lambda: ec_key("p384", "P-384"),
    "EdDSA": lambda: ed_key("main"),
}


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims, with ``changes`` applied; a value of ``...`` removes a claim."""
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "user-1",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 300,
        "nonce": NONCE,
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not ...}


def sign(
    payload: dict[str, Any],
    *,
    alg: str = "RS256",
    key: Any = None,
    kid: str | None = "k1",
    headers: dict[str, Any] | None = None,
) -> str:
    if key is None:
        key = CLIENT_SECRET if alg.startswith("HS") else SIGNERS[alg]()
    all_headers = dict(headers or {})
    if kid is not None:
        all_headers["kid"] = kid
    # PyJWS rather than jwt.encode, which refuses to sign some of the bad claims.
    body = json.dumps(payload).encode()
    return jwt.PyJWS().encode(body, key, algorithm=alg, headers=all_headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], signature: bytes) -> str:
    return ".".join(
        [
            b64(json.dumps(header).encode()),
            b64(json.dumps(payload).encode()),
            b64(signature),
        ]
    )


def serve_keys(provider: FakeProvider, *keys: dict[str, Any]) -> list[dict[str, Any]]:
    """Serve a JWKS; the returned list can be changed to rotate keys."""
    current = list(keys)
    provider.json(JWKS_URL, lambda: {"keys": current})
    return current


@pytest.fixture
def jwks(provider: FakeProvider, clock: FakeClock) -> JWKSCache:
    serve_keys(
        provider,
        public_jwk(rsa_key("main"), "k1"),
        public_jwk(ec_key("main"), "k1-ec"),
    )
    return JWKSCache(JWKS_URL, clock=clock)


def validate(
    token: str, http: requests.Session, jwks: JWKSCache | None, **kw: Any
) -> Any:
    options: dict[str, Any] = {
        "http": http,
        "timeout": TIMEOUT,
        "issuer": ISSUER,
        "client_id": CLIENT_ID,
        "jwks": jwks,
        "nonce": NONCE,
        "now": NOW,
    }
    options.update(kw)
    return validate_id_token(token, **options)


def reason_of(
    token: str, http: requests.Session, jwks: JWKSCache | None, **kw: Any
) -> str:
    with pytest.raises(InvalidIDToken) as info:
        validate(token, http, jwks, **kw)
    return info.value.reason


# --------------------------------------------------------- accepted ID tokens


def test_valid_token_is_accepted_and_keys_are_cached(
    http: requests.Session, provider: FakeProvider, jwks: JWKSCache
) -> None:
    token = sign(claims(email="a@example.com"))
    result = validate(token, http, jwks)
    assert result["sub"] == "user-1"
    assert result["email"] == "a@example.com"
    validate(token, http, jwks)
    assert provider.calls[JWKS_URL] == 1


@pytest.mark.parametrize("alg", ["RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA"])
def test_each_asymmetric_algorithm(
    http: requests.Session, provider: FakeProvider, clock: FakeClock, alg: str
) -> None:
    serve_keys(provider, public_jwk(SIGNERS[alg](), "k"))
    token = sign(claims(), alg=alg, kid="k")
    jwks = JWKSCache(JWKS_URL, clock=clock)
    assert validate(token, http, jwks, algorithms=[alg])["sub"] == "user-1"


def test_hs256_with_client_secret(
    http: requests.Session, provider: FakeProvider
) -> None:
    token = sign(claims(), alg="HS256", kid=None)
    result = validate(
        token, http, None, algorithms=["HS256"], client_secret=CLIENT_SECRET
    )
    assert result["sub"] == "user-1"
    assert not provider.calls


def test_leeway_tolerates_small_clock_skew(
    http: requests.Session, jwks: JWKSCache
) -> None:
    token = sign(claims(exp=int(NOW) - 30, iat=int(NOW) + 30))
    assert validate(token, http, jwks, leeway=60)["sub"] == "user-1"


def test_trusted_extra_audience_with_azp(
    http: requests.Session, jwks: JWKSCache
) -> None:
    token = sign(claims(aud=[CLIENT_ID, "api"], azp=CLIENT_ID))
    assert validate(token, http, jwks, trusted_audiences={"api"})["sub"] == "user-1"
    assert validate(token, http, jwks, trusted_audiences="api")["sub"] == "user-1"
    assert reason_of(token, http, jwks, trusted_audiences="apis") == "untrusted_aud"


def test_at_hash_matches_access_token(http: requests.Session, jwks: JWKSCache) -> None:
    digest = hashlib.sha256(b"access-token-value").digest()
    token = sign(claims(at_hash=b64(digest[:16])))
    validate(token, http, jwks, access_token="access-token-value")


def test_at_hash_uses_the_hash_of_the_algorithm(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    serve_keys(provider, public_jwk(ec_key("p384", "P-384"), "k"))
    jwks = JWKSCache(JWKS_URL, clock=clock)
    at_hash = b64(hashlib.sha384(b"access-token-value").digest()[:24])
    token = sign(claims(at_hash=at_hash), alg="ES384", kid="k")
    validate(token, http, jwks, algorithms=["ES384"], access_token="access-token-value")
    wrong = b64(hashlib.sha256(b"access-token-value").digest()[:16])
    token = sign(claims(at_hash=wrong), alg="ES384", kid="k")
    assert (
        reason_of(
            token, http, jwks, algorithms=["ES384"], access_token="access-token-value"
        )
        == "invalid_at_hash"
    )


def test_kid_absent_single_key(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    # oidcc-client-test-kid-absent-single-jwks
    serve_keys(
        provider, public_jwk(rsa_key("main"), "k1"), public_jwk(ec_key("main"), "e")
    )
    jwks = JWKSCache(JWKS_URL, clock=clock)
    assert validate(sign(claims(), kid=None), http, jwks)["sub"] == "user-1"


def test_signing_key_rotation_refetches_once(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    # oidcc-client-test-signing-key-rotation
    keys = serve_keys(provider, public_jwk(rsa_key("main"), "k1"))
    jwks = JWKSCache(JWKS_URL, clock=clock)
    validate(sign(claims()), http, jwks)
    keys[:] = [public_jwk(rsa_key("next"), "k2")]
    token = sign(claims(), key=rsa_key("next"), kid="k2")
    assert validate(token, http, jwks)["sub"] == "user-1"
    assert provider.calls[JWKS_URL] == 2
    validate(token, http, jwks)
    assert provider.calls[JWKS_URL] == 2


def test_nonce_not_required_for_refreshed_tokens(
    http: requests.Session, jwks: JWKSCache
) -> None:
    token = sign(claims(nonce=...))
    validate(token, http, jwks, nonce=NONCE, nonce_required=False)
    validate(sign(claims()), http, jwks, nonce=NONCE, nonce_required=False)


def good_iss(tid: str) -> str:
    return f"https://login.microsoftonline.com/{tid}/v2.0"


def test_multi_tenant_issuer(http: requests.Session, jwks: JWKSCache) -> None:
    template = "https://login.microsoftonline.com/{tenantid}/v2.0"
    matcher = tenant_issuer_matcher(template)
    tid = "9188040d-6c67-4c5b-b112-36a304b66dad"
    good = sign(claims(iss=good_iss(tid), tid=tid))
    validate(good, http, jwks, issuer=template, issuer_matcher=matcher)
    other = sign(claims(iss="https://login.microsoftonline.com/other/v2.0", tid=tid))
    assert (
        reason_of(other, http, jwks, issuer=template, issuer_matcher=matcher)
        == "invalid_iss"
    )
    for bad_tid in (None, "", 5, f"{tid}/v2.0/x"):
        token = sign(claims(iss=good_iss(tid), tid=bad_tid))
        assert (
            reason_of(token, http, jwks, issuer=template, issuer_matcher=matcher)
            == "invalid_iss"
        )
    # Without the matcher the template is compared literally.
    assert reason_of(good, http, jwks, issuer=template) == "invalid_iss"


# ------------------------------------------------- rejected claims, one rule each


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        # oidcc-client-test-invalid-iss
        ({"iss": "https://evil.example"}, "invalid_iss"),
        ({"iss": ISSUER + "/"}, "invalid_iss"),
        ({"iss": ...}, "invalid_iss"),
        ({"iss": [ISSUER]}, "invalid_iss"),
        # oidcc-client-test-invalid-aud
        ({"aud": "someone-else"}, "invalid_aud"),
        ({"aud": ["someone-else"]}, "invalid_aud"),
        ({"aud": ...}, "invalid_aud"),
        ({"aud": []}, "invalid_aud"),
        ({"aud": [CLIENT_ID, 7]}, "invalid_aud"),
        ({"aud": "client"}, "invalid_aud"),
        # the Authlib gap: azp present does not excuse aud without the client id
        ({"aud": "other", "azp": CLIENT_ID}, "invalid_aud"),
        ({"aud": [CLIENT_ID, "other"], "azp": CLIENT_ID}, "untrusted_aud"),
        ({"aud": [CLIENT_ID, "api"]}, "missing_azp"),
        ({"azp": "other"}, "invalid_azp"),
        ({"exp": int(NOW) - 61}, "expired"),
        ({"exp": ...}, "missing_exp"),
        ({"exp": "tomorrow"}, "invalid_exp"),
        ({"exp": True}, "invalid_exp"),
        ({"exp": float("nan")}, "invalid_exp"),
        ({"exp": float("inf")}, "invalid_exp"),
        ({"iat": int(NOW) + 61}, "iat_in_future"),
        # oidcc-client-test-missing-iat
        ({"iat": ...}, "missing_iat"),
        ({"iat": "now"}, "invalid_iat"),
        ({"nbf": int(NOW) + 61}, "not_yet_valid"),
        # oidcc-client-test-missing-sub
        ({"sub": ...}, "missing_sub"),
        ({"sub": ""}, "missing_sub"),
        ({"sub": 42}, "missing_sub"),
        # oidcc-client-test-nonce-invalid
        ({"nonce": "another-nonce"}, "invalid_nonce"),
        ({"nonce": ...}, "missing_nonce"),
        ({"nonce": 1}, "invalid_nonce"),
        ({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "invalid_at_hash"),
    ],
)
def test_claim_rule_is_enforced(
    http: requests.Session, jwks: JWKSCache, changes: dict[str, Any], reason: str
) -> None:
    token = sign(claims(**changes))
    assert (
        reason_of(token, http, jwks, trusted_audiences=["api"], access_token="at")
        == reason
    )


def test_unexpected_nonce_is_refused(http: requests.Session, jwks: JWKSCache) -> None:
    assert reason_of(sign(claims()), http, jwks, nonce=None) == "invalid_nonce"
    validate(sign(claims(nonce=...)), http, jwks, nonce=None)


def test_max_age_checks_auth_time(http: requests.Session, jwks: JWKSCache) -> None:
    fresh = sign(claims(auth_time=int(NOW) - 100))
    validate(fresh, http, jwks, max_age=300)
    old = sign(claims(auth_time=int(NOW) - 1000))
    assert reason_of(old, http, jwks, max_age=300) == "auth_time_too_old"
    assert reason_of(sign(claims()), http, jwks, max_age=300) == "missing_auth_time"


def test_access_token_typed_jwt_is_not_an_id_token(
    http: requests.Session, jwks: JWKSCache
) -> None:
    token = sign(claims(), headers={"typ": "at+jwt"})
    assert reason_of(token, http, jwks) == "invalid_typ"


# ------------------------------------------------------ rejected signatures


def test_invalid_signature_rs256(http: requests.Session, jwks: JWKSCache) -> None:
    # oidcc-client-test-invalid-sig-rs256: same kid, another key
    token = sign(claims(), key=rsa_key("attacker"), kid="k1")
    assert reason_of(token, http, jwks) == "invalid_signature"


def test_invalid_signature_es256(http: requests.Session, jwks: JWKSCache) -> None:
    # oidcc-client-test-invalid-sig-es256
    token = sign(claims(), alg="ES256", key=ec_key("attacker"), kid="k1-ec")
    assert reason_of(token, http, jwks, algorithms=["ES256"]) == "invalid_signature"


def test_invalid_signature_hs256(http: requests.Session) -> None:
    # oidcc-client-test-invalid-sig-hs256
    token = sign(claims(), alg="HS256", key="x" * 32 + "another secret", kid=None)
    assert (
        reason_of(token, http, None, algorithms=["HS256"], client_secret=CLIENT_SECRET)
        == "invalid_signature"
    )


def test_tampered_payload(http: requests.Session, jwks: JWKSCache) -> None:
    header, _, signature = sign(claims()).split(".")
    forged = b64(json.dumps(claims(sub="admin")).encode())
    assert (
        reason_of(f"{header}.{forged}.{signature}", http, jwks) == "invalid_signature"
    )


def test_algorithm_not_in_allowlist(http: requests.Session, jwks: JWKSCache) -> None:
    token = sign(claims(), alg="ES256", key=ec_key("main"), kid="k1-ec")
    assert reason_of(token, http, jwks, algorithms=["RS256"]) == "alg_not_allowed"
    # A bare string is one algorithm, not a set of substrings.
    assert reason_of(token, http, jwks, algorithms="RS256,ES256") == "alg_not_allowed"


def test_hs256_needs_allowlist_and_secret(
    http: requests.Session, jwks: JWKSCache
) -> None:
    token = sign(claims(), alg="HS256", kid=None)
    assert (
        reason_of(token, http, jwks, client_secret=CLIENT_SECRET) == "alg_not_allowed"
    )
    assert (
        reason_of(token, http, jwks, algorithms=["RS256", "HS256"]) == "alg_not_allowed"
    )


def _hs256_with_public_pem() -> str:
    pem = (
        rsa_key("main")
        .public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    signing_input = ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims()).encode())]
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize(
    ("algorithms", "secret", "reason"),
    [
        (["RS256"], None, "alg_not_allowed"),
        (["RS256", "HS256"], None, "alg_not_allowed"),
        (["RS256", "HS256"], CLIENT_SECRET, "invalid_signature"),
    ],
)
def test_hmac_with_rsa_public_key_is_refused(
    http: requests.Session,
    jwks: JWKSCache,
    algorithms: list[str],
    secret: str | None,
    reason: str,
) -> None:
    # CVE-2024-37568: an HS256 token whose "secret" is the provider's public key
    token = _hs256_with_public_pem()
    assert (
        reason_of(token, http, jwks, algorithms=algorithms, client_secret=secret)
        == reason
    )


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
@pytest.mark.parametrize("signature", [b"", b"junk"])
def test_alg_none_is_refused_even_when_allowed(
    http: requests.Session, jwks: JWKSCache, alg: str, signature: bytes
) -> None:
    # oidcc-client-test-idtoken-sig-none and CVE-2026-28802
    token = hand_made({"alg": alg, "typ": "JWT"}, claims(), signature)
    assert (
        reason_of(token, http, jwks, algorithms=["none", "None", "RS256"]) == "alg_none"
    )


def test_missing_alg_is_refused(http: requests.Session, jwks: JWKSCache) -> None:
    token = hand_made({"typ": "JWT"}, claims(), b"")
    assert reason_of(token, http, jwks) == "alg_none"


def test_key_headers_of_the_token_are_ignored(
    http: requests.Session, provider: FakeProvider, jwks: JWKSCache
) -> None:
    attacker = rsa_key("attacker")
    headers = {
        "jwk": public_jwk(attacker, "k1"),
        "jku": "https://evil.example/jwks",
        "x5u": "https://evil.example/cert.pem",
    }
    for kid in ("k1", None):
        token = sign(claims(), key=attacker, kid=kid, headers=headers)
        assert reason_of(token, http, jwks) == "invalid_signature"
    assert set(provider.calls) == {JWKS_URL}


def test_weak_keys_are_refused(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    serve_keys(provider, public_jwk(rsa_key("weak", 1024), "weak"))
    jwks = JWKSCache(JWKS_URL, clock=clock)
    # Signing with them warns; verifying refuses them instead of warning.
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        token = sign(claims(), key=rsa_key("weak", 1024), kid="weak")
    assert reason_of(token, http, jwks) == "invalid_key"
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        token = sign(claims(), alg="HS256", key="short", kid=None)
    assert (
        reason_of(token, http, None, algorithms=["HS256"], client_secret="short")
        == "invalid_key"
    )


def test_no_jwks_for_an_asymmetric_token(http: requests.Session) -> None:
    with pytest.raises(ConfigurationError):
        validate(sign(claims()), http, None)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d.e",  # JWE
        "eyJhbGciOiJSUzI1NiJ9.e30.",
        "!!!.!!!.!!!",
    ],
)
def test_malformed_tokens(http: requests.Session, jwks: JWKSCache, token: str) -> None:
    with pytest.raises(InvalidIDToken):
        validate(token, http, jwks)


def test_detached_payload_header(http: requests.Session, jwks: JWKSCache) -> None:
    header = {"alg": "RS256", "kid": "k1", "b64": False, "crit": ["b64"]}
    token = hand_made(header, claims(), b"x")
    assert reason_of(token, http, jwks) == "malformed"


def test_non_string_token(http: requests.Session, jwks: JWKSCache) -> None:
    assert reason_of(b"a.b.c", http, jwks) == "malformed"  # type: ignore[arg-type]


# --------------------------------------------------------------------- the JWKS


def test_kid_absent_several_keys_is_refused(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    # oidcc-client-test-kid-absent-multiple-jwks
    serve_keys(
        provider, public_jwk(rsa_key("main"), "k1"), public_jwk(rsa_key("next"), "k2")
    )
    jwks = JWKSCache(JWKS_URL, clock=clock)
    assert reason_of(sign(claims(), kid=None), http, jwks) == "ambiguous_kid"


def test_unknown_kid_is_refused_after_one_refetch(
    http: requests.Session, provider: FakeProvider, jwks: JWKSCache
) -> None:
    token = sign(claims(), kid="nope")
    assert reason_of(token, http, jwks) == "unknown_kid"
    assert provider.calls[JWKS_URL] == 2


def test_kid_flood_refetches_at_most_once_per_interval(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    serve_keys(provider, public_jwk(rsa_key("main"), "k1"))
    jwks = JWKSCache(JWKS_URL, clock=clock, min_refetch_interval=60)
    for i in range(50):
        token = sign(claims(), kid=f"bogus-{i}")
        assert reason_of(token, http, jwks) == "unknown_kid"
        clock.now += 1
    assert provider.calls[JWKS_URL] == 2  # the first fetch and one refetch
    clock.now += 10  # 60 s since the refetch
    reason_of(sign(claims(), kid="bogus"), http, jwks)
    assert provider.calls[JWKS_URL] == 3
    # A valid token is unaffected by the flood.
    validate(sign(claims()), http, jwks)
    assert provider.calls[JWKS_URL] == 3


def test_jwks_ttl(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    serve_keys(provider, public_jwk(rsa_key("main"), "k1"))
    jwks = JWKSCache(JWKS_URL, clock=clock, ttl=100)
    validate(sign(claims()), http, jwks)
    clock.now += 99
    validate(sign(claims()), http, jwks)
    assert provider.calls[JWKS_URL] == 1
    clock.now += 1
    validate(sign(claims()), http, jwks)
    assert provider.calls[JWKS_URL] == 2


def test_encryption_and_symmetric_keys_are_skipped(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    serve_keys(
        provider,
        public_jwk(rsa_key("main"), "enc", use="enc"),
        public_jwk(rsa_key("next"), "ops", key_ops=["encrypt"]),
        {"kty": "oct", "kid": "hmac", "k": b64(CLIENT_SECRET.encode())},
        {"kty": "RSA", "kid": "broken", "n": "???", "e": "AQAB"},
        public_jwk(rsa_key("next"), 7),
        public_jwk(rsa_key("next"), "bad-alg", alg=["RS256"]),
        "not a key",
    )
    jwks = JWKSCache(JWKS_URL, clock=clock, min_refetch_interval=0)
    assert reason_of(sign(claims(), kid="enc"), http, jwks) == "unknown_kid"
    token = sign(claims(), key=rsa_key("next"), kid="ops")
    assert reason_of(token, http, jwks) == "unknown_kid"
    assert reason_of(sign(claims(), kid="broken"), http, jwks) == "unknown_kid"
    with pytest.raises(InvalidIDToken) as info:
        jwks.get_signing_key(http, "hmac", "HS256", timeout=TIMEOUT)
    assert info.value.reason == "alg_not_allowed"


def test_no_key_of_the_type_of_the_alg(http: requests.Session, jwks: JWKSCache) -> None:
    token = sign(claims(), alg="EdDSA", key=ed_key("main"), kid=None)
    assert reason_of(token, http, jwks, algorithms=["EdDSA"]) == "unknown_kid"


def test_key_of_another_type_than_the_alg(
    http: requests.Session, jwks: JWKSCache
) -> None:
    token = sign(claims(), alg="ES256", key=ec_key("main"), kid="k1")
    assert reason_of(token, http, jwks, algorithms=["ES256"]) == "key_alg_mismatch"
    # The right key type, the wrong curve.
    token = sign(claims(), alg="ES384", key=ec_key("p384", "P-384"), kid="k1-ec")
    assert reason_of(token, http, jwks, algorithms=["ES384"]) == "key_alg_mismatch"


def test_key_alg_restricts_its_use(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    serve_keys(provider, public_jwk(rsa_key("main"), "k1", alg="PS256"))
    jwks = JWKSCache(JWKS_URL, clock=clock)
    token = sign(claims(), alg="RS256", kid="k1")
    assert reason_of(token, http, jwks, algorithms=["RS256", "PS256"]) == (
        "key_alg_mismatch"
    )
    token = sign(claims(), alg="PS256", kid="k1")
    validate(token, http, jwks, algorithms=["RS256", "PS256"])


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"oops", 500, ProviderError),
        (b"<html>hello</html>", 200, ProviderError),
        (b"[1, 2]", 200, ProviderError),
        (b'{"keys": "none"}', 200, ProviderError),
    ],
)
def test_jwks_provider_failures(
    http: requests.Session,
    provider: FakeProvider,
    clock: FakeClock,
    body: bytes,
    status: int,
    error: type[Exception],
) -> None:
    provider.reply(JWKS_URL, status, body)
    jwks = JWKSCache(JWKS_URL, clock=clock)
    with pytest.raises(error):
        validate(sign(claims()), http, jwks)


def test_jwks_timeout(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    provider.fail(JWKS_URL, requests.ReadTimeout("slow"))
    jwks = JWKSCache(JWKS_URL, clock=clock)
    with pytest.raises(ProviderTimeout):
        validate(sign(claims()), http, jwks)


def test_jwks_failed_refresh_keeps_old_keys(
    http: requests.Session,
    provider: FakeProvider,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    serve_keys(provider, public_jwk(rsa_key("main"), "k1"))
    jwks = JWKSCache(JWKS_URL, clock=clock, ttl=100, retry_interval=10)
    validate(sign(claims()), http, jwks)
    provider.reply(JWKS_URL, 503, b"down")
    clock.now += 200
    with caplog.at_level(logging.WARNING, logger="flask_oauthclient.oidc"):
        validate(sign(claims()), http, jwks)
    assert "503" in caplog.text
    validate(sign(claims()), http, jwks)
    assert provider.calls[JWKS_URL] == 2
    clock.now += 10
    validate(sign(claims()), http, jwks)
    assert provider.calls[JWKS_URL] == 3


# -------------------------------------------------------------------- discovery


def discovery(**changes: Any) -> dict[str, Any]:
    doc = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorize",
        "token_endpoint": ISSUER + "/token",
        "jwks_uri": JWKS_URL,
        "userinfo_endpoint": ISSUER + "/userinfo",
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


@pytest.mark.parametrize(
    ("url", "issuer"),
    [
        ("https://idp.example/.well-known/openid-configuration", "https://idp.example"),
        (
            "https://idp.example/realms/x/.well-known/openid-configuration",
            "https://idp.example/realms/x",
        ),
        (
            "https://idp.example/.well-known/oauth-authorization-server/tenant",
            "https://idp.example/tenant",
        ),
        (
            "https://idp.example/.well-known/oauth-authorization-server",
            "https://idp.example",
        ),
        (
            "https://idp.example/t/.well-known/oauth-authorization-server",
            "https://idp.example/t",
        ),
        (
            "https://b2c.example/t/v2.0/.well-known/openid-configuration?p=B2C_1",
            "https://b2c.example/t/v2.0",
        ),
        ("https://idp.example/metadata.json", None),
    ],
)
def test_issuer_from_metadata_url(url: str, issuer: str | None) -> None:
    assert issuer_from_metadata_url(url) == issuer


def test_discovery_is_fetched_once_and_cached_for_ttl(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    provider.json(DISCOVERY_URL, discovery())
    metadata = ServerMetadata(DISCOVERY_URL, ttl=100, clock=clock)
    assert not provider.calls
    assert metadata.get(http, timeout=TIMEOUT)["jwks_uri"] == JWKS_URL
    clock.now += 99
    metadata.get(http, timeout=TIMEOUT)
    assert provider.calls[DISCOVERY_URL] == 1
    clock.now += 1
    metadata.get(http, timeout=TIMEOUT)
    assert provider.calls[DISCOVERY_URL] == 2


def test_discovery_returns_a_copy(
    http: requests.Session, provider: FakeProvider
) -> None:
    provider.json(DISCOVERY_URL, discovery())
    metadata = ServerMetadata(DISCOVERY_URL)
    metadata.get(http, timeout=TIMEOUT)["issuer"] = "changed"
    assert metadata.get(http, timeout=TIMEOUT)["issuer"] == ISSUER


def test_discovery_issuer_mismatch(
    http: requests.Session, provider: FakeProvider
) -> None:
    # oidcc-client-test-discovery-issuer-mismatch; CVE-2026-104056
    provider.json(DISCOVERY_URL, discovery(issuer="https://evil.example"))
    metadata = ServerMetadata(DISCOVERY_URL)
    with pytest.raises(ConfigurationError) as info:
        metadata.get(http, timeout=TIMEOUT)
    assert "https://evil.example" in str(info.value)
    assert ISSUER in str(info.value)


def test_discovery_issuer_may_end_with_a_slash(
    http: requests.Session, provider: FakeProvider
) -> None:
    provider.json(DISCOVERY_URL, discovery(issuer=ISSUER + "/"))
    assert ServerMetadata(DISCOVERY_URL).get(http, timeout=TIMEOUT)["issuer"] == (
        ISSUER + "/"
    )


def test_discovery_expected_issuer_is_exact(
    http: requests.Session, provider: FakeProvider
) -> None:
    template = "https://login.microsoftonline.com/{tenantid}/v2.0"
    url = (
        "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
    )
    provider.json(url, discovery(issuer=template))
    assert ServerMetadata(url, expected_issuer=template).get(http, timeout=TIMEOUT)
    with pytest.raises(ConfigurationError):
        ServerMetadata(url).get(http, timeout=TIMEOUT)
    provider.json(url, discovery(issuer=template + "/"))
    with pytest.raises(ConfigurationError):
        ServerMetadata(url, expected_issuer=template).get(http, timeout=TIMEOUT)


def test_discovery_url_without_issuer_needs_one() -> None:
    with pytest.raises(ConfigurationError):
        ServerMetadata("https://idp.example/metadata.json")
    ServerMetadata("https://idp.example/metadata.json", expected_issuer=ISSUER)


@pytest.mark.parametrize(
    "changes",
    [
        {"issuer": ...},
        {"issuer": 5},
        {"authorization_endpoint": ...},
        {"token_endpoint": ...},
        {"token_endpoint": ["x"]},
        {"jwks_uri": {"url": "x"}},
        {"code_challenge_methods_supported": "S256"},
        {"id_token_signing_alg_values_supported": ["RS256", None]},
        {"authorization_response_iss_parameter_supported": "true"},
    ],
)
def test_discovery_malformed_document(
    http: requests.Session, provider: FakeProvider, changes: dict[str, Any]
) -> None:
    provider.json(DISCOVERY_URL, discovery(**changes))
    with pytest.raises(ProviderError):
        ServerMetadata(DISCOVERY_URL).get(http, timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((500, b"boom"), ProviderError),
        ((200, b"<!doctype html><html></html>"), ProviderError),
        ((200, b'["issuer"]'), ProviderError),
        ((200, b"null"), ProviderError),
        ((404, b"{}"), ProviderError),
        (requests.ConnectTimeout("slow"), ProviderTimeout),
        (requests.ReadTimeout("slow"), ProviderTimeout),
        (requests.ConnectionError("refused"), ProviderUnavailable),
        (requests.exceptions.SSLError("bad cert"), ProviderUnavailable),
        (requests.TooManyRedirects("loop"), ProviderError),
    ],
)
def test_discovery_provider_failures(
    http: requests.Session,
    provider: FakeProvider,
    answer: Any,
    error: type[Exception],
) -> None:
    if isinstance(answer, Exception):
        provider.fail(DISCOVERY_URL, answer)
    else:
        provider.reply(DISCOVERY_URL, *answer)
    with pytest.raises(error) as info:
        ServerMetadata(DISCOVERY_URL).get(http, timeout=TIMEOUT)
    assert type(info.value) is error


def test_discovery_failed_refresh_serves_stale_copy(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    provider.json(DISCOVERY_URL, discovery())
    metadata = ServerMetadata(DISCOVERY_URL, ttl=100, retry_interval=10, clock=clock)
    metadata.get(http, timeout=TIMEOUT)
    provider.fail(DISCOVERY_URL, requests.ConnectionError("down"))
    clock.now += 100
    assert metadata.get(http, timeout=TIMEOUT)["issuer"] == ISSUER
    assert metadata.get(http, timeout=TIMEOUT)["issuer"] == ISSUER
    assert provider.calls[DISCOVERY_URL] == 2
    # Once fixed, the next attempt after retry_interval picks up the new document.
    provider.json(DISCOVERY_URL, discovery(userinfo_endpoint=ISSUER + "/me"))
    clock.now += 10
    assert metadata.get(http, timeout=TIMEOUT)["userinfo_endpoint"] == ISSUER + "/me"


def test_discovery_changed_issuer_on_refresh_is_not_served(
    http: requests.Session, provider: FakeProvider, clock: FakeClock
) -> None:
    provider.json(DISCOVERY_URL, discovery())
    metadata = ServerMetadata(DISCOVERY_URL, ttl=100, clock=clock)
    metadata.get(http, timeout=TIMEOUT)
    provider.json(DISCOVERY_URL, discovery(issuer="https://evil.example"))
    clock.now += 100
    with pytest.raises(ConfigurationError):
        metadata.get(http, timeout=TIMEOUT)


def _in_threads(count: int, target: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_discovery_one_fetch_for_concurrent_callers(
    http: requests.Session, provider: FakeProvider
) -> None:
    provider.json(DISCOVERY_URL, discovery())
    provider.delay = 0.2
    metadata = ServerMetadata(DISCOVERY_URL)
    results = _in_threads(8, lambda: metadata.get(http, timeout=TIMEOUT))
    assert all(r["issuer"] == ISSUER for r in results)
    assert provider.calls[DISCOVERY_URL] == 1


def test_discovery_concurrent_callers_share_a_failure(
    http: requests.Session, provider: FakeProvider
) -> None:
    provider.fail(DISCOVERY_URL, requests.ConnectionError("down"))
    provider.delay = 0.2
    metadata = ServerMetadata(DISCOVERY_URL)
    results = _in_threads(8, lambda: metadata.get(http, timeout=TIMEOUT))
    assert all(isinstance(r, ProviderUnavailable) for r in results)
    assert provider.calls[DISCOVERY_URL] == 1
    # A later caller tries again.
    provider.delay = 0
    with pytest.raises(ProviderUnavailable):
        metadata.get(http, timeout=TIMEOUT)
    assert provider.calls[DISCOVERY_URL] == 2


# ------------------------------------------------------------------- fetch_json


class _TimingOutBody(io.BytesIO):
    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise requests.ConnectionError(ReadTimeoutError(None, "x", "Read timed out."))  # type: ignore[arg-type]


class _BrokenBody(io.BytesIO):
    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise requests.ConnectionError("connection reset")


class _GarbledBody(io.BytesIO):
    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise requests.exceptions.ChunkedEncodingError("bad chunk")


class _TricklingBody(io.BytesIO):
    def read(self, *args: Any, **kwargs: Any) -> bytes:
        time.sleep(0.02)
        return b" "


def test_fetch_json_limits_the_size(
    http: requests.Session, provider: FakeProvider
) -> None:
    url = ISSUER + "/big"
    body = json.dumps({"x": "y" * 2000}).encode()
    provider.reply(url, 200, body)
    with pytest.raises(ProviderError):
        fetch_json(http, url, timeout=TIMEOUT, max_bytes=1000)
    provider.reply(url, 200, b"{}", {"Content-Length": "5000"})
    with pytest.raises(ProviderError):
        fetch_json(http, url, timeout=TIMEOUT, max_bytes=1000)
    provider.reply(url, 200, body)
    assert fetch_json(http, url, timeout=TIMEOUT)["x"] == "y" * 2000


def test_fetch_json_deep_nesting(
    http: requests.Session, provider: FakeProvider
) -> None:
    url = ISSUER + "/deep"
    provider.reply(url, 200, b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ProviderError):
        fetch_json(http, url, timeout=TIMEOUT, max_bytes=300_000)


def test_fetch_json_errors_while_reading(
    http: requests.Session, provider: FakeProvider
) -> None:
    url = ISSUER + "/slow"
    provider.routes[url] = lambda: (200, _TimingOutBody(), {})
    with pytest.raises(ProviderTimeout):
        fetch_json(http, url, timeout=TIMEOUT)
    provider.routes[url] = lambda: (200, _BrokenBody(), {})
    with pytest.raises(ProviderUnavailable) as info:
        fetch_json(http, url, timeout=TIMEOUT)
    assert type(info.value) is ProviderUnavailable
    provider.routes[url] = lambda: (200, _GarbledBody(), {})
    with pytest.raises(ProviderError) as info:
        fetch_json(http, url, timeout=TIMEOUT)
    assert type(info.value) is ProviderError


def test_fetch_json_body_must_arrive_within_the_timeout(
    http: requests.Session, provider: FakeProvider
) -> None:
    url = ISSUER + "/trickle"
    provider.routes[url] = lambda: (200, _TricklingBody(), {})
    with pytest.raises(ProviderTimeout):
        fetch_json(http, url, timeout=0.1)


def test_fetch_json_bad_url(http: requests.Session) -> None:
    with pytest.raises(ProviderError):
        fetch_json(http, "not a url", timeout=TIMEOUT)


# ---------------------------------------------- after the ID token: §5.3.2, §12.2


def test_userinfo_sub_must_match() -> None:
    # oidcc-client-test-userinfo-invalid-sub
    id_claims = claims()
    check_userinfo(id_claims, {"sub": "user-1", "email": "a@example.com"})
    for userinfo in ({"sub": "user-2"}, {}, {"sub": None}, {"sub": ["user-1"]}):
        with pytest.raises(InvalidIDToken) as info:
            check_userinfo(id_claims, userinfo)
        assert info.value.reason == "userinfo_sub_mismatch"


def test_merge_claims_keeps_the_id_token_claims() -> None:
    id_claims = claims(email="old@example.com")
    userinfo = {
        "sub": "user-1",
        "iss": "https://evil.example",
        "aud": "other",
        "email": "new@example.com",
        "name": "Ada",
        "acr": "urn:high",
    }
    merged = merge_claims(id_claims, userinfo)
    assert merged["iss"] == ISSUER
    assert merged["aud"] == CLIENT_ID
    assert merged["email"] == "new@example.com"
    assert merged["name"] == "Ada"
    assert "acr" not in merged
    assert merge_claims(id_claims, None) == id_claims


def test_refreshed_id_token_equal() -> None:
    original = claims(azp=CLIENT_ID, aud=[CLIENT_ID, "api"], auth_time=5)
    refreshed = claims(
        azp=CLIENT_ID, aud=["api", CLIENT_ID], auth_time=5, nonce=..., iat=int(NOW)
    )
    validate_refreshed_id_token(original, refreshed)


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "https://other.example"},
        {"sub": "user-2"},
        {"sub": ...},
        {"aud": [CLIENT_ID, "api"]},
        {"aud": "other"},
        {"aud": []},
        {"azp": CLIENT_ID},
        {"auth_time": 99},
        {"nonce": "other"},
    ],
)
def test_refreshed_id_token_mismatch(changes: dict[str, Any]) -> None:
    # oidcc-client-test-refresh-token-*
    with pytest.raises(InvalidIDToken) as info:
        validate_refreshed_id_token(claims(auth_time=5), claims(**changes))
    assert info.value.reason == "refreshed_id_token_mismatch"


def test_authorization_response_iss() -> None:
    # RFC 9207
    check_authorization_response_iss(ISSUER, issuer=ISSUER, required=True)
    check_authorization_response_iss(None, issuer=ISSUER, required=False)
    for received, required, reason in [
        ("https://evil.example", False, "iss_mismatch"),
        (ISSUER + "/", True, "iss_mismatch"),
        ("", True, "iss_mismatch"),
        (None, True, "missing_iss_param"),
    ]:
        with pytest.raises(InvalidIDToken) as info:
            check_authorization_response_iss(received, issuer=ISSUER, required=required)
        assert info.value.reason == reason


# -------------------------------------------------------- anything is refused


@cache
def _fuzz_setup() -> tuple[requests.Session, JWKSCache]:
    provider = FakeProvider()
    provider.json(JWKS_URL, {"keys": [public_jwk(rsa_key("main"), "k1")]})
    session = requests.Session()
    session.mount("https://", provider)
    return session, JWKSCache(JWKS_URL, min_refetch_interval=3600)


def _fuzz_reject(token: Any) -> None:
    http, jwks = _fuzz_setup()
    with pytest.raises(InvalidIDToken):
        validate_id_token(
            token,
            http=http,
            timeout=TIMEOUT,
            issuer=ISSUER,
            client_id=CLIENT_ID,
            jwks=jwks,
            algorithms=["RS256", "ES256", "HS256", "none"],
            client_secret=CLIENT_SECRET,
            nonce=NONCE,
            access_token="at",
            now=NOW,
        )


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.text(alphabet='ab.=-_!{}"eyJ')))
def test_random_input_is_an_invalid_id_token(token: Any) -> None:
    _fuzz_reject(token)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.fixed_dictionaries(
        {},
        optional={
            "alg": st.sampled_from(["RS256", "ES256", "HS256", "none", "NONE", "PS256"])
            | json_values,
            "kid": st.sampled_from(["k1", "k2"]) | json_values,
            "typ": st.just("JWT") | json_values,
            "crit": json_values,
            "b64": json_values,
            "jku": json_values,
        },
    ),
    payload=st.dictionaries(
        st.sampled_from(["iss", "aud", "sub", "exp", "iat", "nonce", "azp", "at_hash"]),
        json_values,
    )
    | json_values,
    signature=st.binary(max_size=300),
)
def test_random_jwt_shaped_input_is_an_invalid_id_token(
    header: dict[str, Any], payload: Any, signature: bytes
) -> None:
    token = ".".join(
        [
            b64(json.dumps(header).encode()),
            b64(json.dumps(payload).encode()),
            b64(signature),
        ]
    )
    _fuzz_reject(token)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(
            ["iss", "aud", "sub", "exp", "iat", "nbf", "nonce", "azp", "at_hash"]
        ),
        json_values,
    )
)
def test_validly_signed_random_claims_never_crash(payload: dict[str, Any]) -> None:
    # Signed with the real key: only the claim checks stand between these and the app.
    token = sign(payload)
    try:
        _fuzz_reject(token)
    except pytest.fail.Exception:
        # Hypothesis may build a valid set of claims; then it must really be valid.
        assert payload.get("iss") == ISSUER and payload.get("nonce") == NONCE
