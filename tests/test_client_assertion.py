"""Client authentication by a signed JWT (RFC 7523 §2.2, OpenID Connect Core §9):
``token_endpoint_auth_method="private_key_jwt"`` (the app's private key) and
``"client_secret_jwt"`` (HS256 with the client secret), for the code exchange,
refreshes, the client credentials grant and revocation. The fake provider verifies
each assertion with the public key, as a real one does; a mismatch with the
provider's discovery document is a clear configuration error."""

from __future__ import annotations

import datetime
import logging
import time
import typing as t
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from helpers.fakes import CLIENT_ID
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.fakes import response
from helpers.hardening import assert_nothing_happened
from helpers.hardening import BASE_URL
from helpers.hardening import csrf
from helpers.hardening import log_in
from helpers.hardening import make_site
from helpers.hardening import Site
from helpers.hardening import user_of
from jwt.algorithms import ECAlgorithm

from flask_oauthclient import ConfigurationError
from flask_oauthclient import OAuth
from flask_oauthclient.client_auth import ASSERTION_TYPE
from flask_oauthclient.client_auth import ClientAuth
from flask_oauthclient.client_auth import SigningKey
from flask_oauthclient.client_auth import thumbprint

TOKEN_URL = f"{ISSUER}/token"
HS_SECRET = "a-client-secret-of-at-least-32-bytes!"


def pem(key: t.Any) -> str:
    return t.cast(
        str,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NEXT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
WRONG_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


class AssertionCheckingIdP(FakeIdP):
    """The FakeIdP, authenticating the client at its token and revocation endpoints
    by a JWT assertion, as oidc-provider does: the signature with the registered
    key, ``iss``/``sub``, ``aud``, ``exp``, and a ``jti`` never seen before."""

    def __init__(self, key: t.Any, algorithms: list[str]) -> None:
        super().__init__()
        self.key = key
        self.algorithms = algorithms
        self.forms: list[dict[str, list[str]]] = []
        self.headers: list[t.Mapping[str, str]] = []
        self.claims: list[dict[str, t.Any]] = []
        self.jtis: set[str] = set()
        self.discovery: dict[str, t.Any] = {}
        self.token_handler = self._authenticated(self._grant)

    def metadata(self) -> dict[str, t.Any]:
        return {**super().metadata(), **self.discovery}

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: t.Any
    ) -> requests.Response:
        if request.url == f"{ISSUER}/revoke":
            self.calls.append("/revoke")
            r = self._authenticated(lambda _: response(200, {}))(request)
            r.request, r.url = request, request.url
            return r
        return super().send(request, **kwargs)

    def _authenticated(
        self, handler: t.Callable[[requests.PreparedRequest], requests.Response]
    ) -> t.Callable[[requests.PreparedRequest], requests.Response]:
        def check(request: requests.PreparedRequest) -> requests.Response:
            form = parse_qs(t.cast(str, request.body or ""))
            self.forms.append(form)
            self.headers.append(request.headers)
            refused = response(401, {"error": "invalid_client"})
            if "Authorization" in request.headers or "client_secret" in form:
                return refused
            if form.get("client_assertion_type") != [ASSERTION_TYPE]:
                return refused
            try:
                claims = jwt.decode(
                    form["client_assertion"][0],
                    self.key,
                    algorithms=self.algorithms,
                    audience=TOKEN_URL,
                    issuer=CLIENT_ID,
                    options={"require": ["exp", "iat", "jti", "sub"]},
                )
            except jwt.InvalidTokenError:
                return refused
            if claims["sub"] != CLIENT_ID or claims["jti"] in self.jtis:
                return refused
            if form.get("client_id", [CLIENT_ID]) != [CLIENT_ID]:
                return refused
            self.jtis.add(claims["jti"])
            self.claims.append(claims)
            return handler(request)

        return check

    def _grant(self, request: requests.PreparedRequest) -> requests.Response:
        form = parse_qs(t.cast(str, request.body or ""))
        if form.get("grant_type") == ["client_credentials"]:
            return response(
                200,
                {"access_token": "app-token", "token_type": "Bearer", "expires_in": 60},
            )
        return self._token(request)


def pkjwt_site(
    idp_key: t.Any = None, algorithms: list[str] | None = None, **register: t.Any
) -> Site:
    idp = AssertionCheckingIdP(
        idp_key if idp_key is not None else RSA_KEY.public_key(),
        algorithms or ["RS256"],
    )
    register.setdefault("token_endpoint_auth_method", "private_key_jwt")
    register.setdefault("client_private_key", pem(RSA_KEY))
    register.setdefault("client_key_id", "key-1")
    return make_site(idp, register=register)


def idp_of(site: Site) -> AssertionCheckingIdP:
    return t.cast(AssertionCheckingIdP, site.idp)


def expire(site: Site, user: str) -> None:
    with site.app.test_request_context():
        token = site.storage.get("corp", user=user)
        assert token is not None
        token["expires_at"] = time.time() - 5
        site.storage.set("corp", token, user=user)


# ------------------------------------------------------------ private_key_jwt


def test_the_code_exchange_sends_a_signed_assertion_and_no_secret() -> None:
    site = pkjwt_site()
    client = site.client()
    r = log_in(site, client)
    assert r.status_code == 302, r.data
    assert user_of(client) == "user-1"
    idp = idp_of(site)
    form, headers = idp.forms[0], idp.headers[0]
    assert "Authorization" not in headers and "client_secret" not in form
    assert form["grant_type"] == ["authorization_code"]
    assertion = form["client_assertion"][0]
    assert jwt.get_unverified_header(assertion) == {
        "alg": "RS256",
        "kid": "key-1",
        "typ": "JWT",
    }
    claims = jwt.decode(
        assertion, RSA_KEY.public_key(), algorithms=["RS256"], audience=TOKEN_URL
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert claims["exp"] - claims["iat"] == 60
    assert abs(claims["iat"] - time.time()) < 5
    assert len(claims["jti"]) >= 32


def test_refresh_client_credentials_and_revocation_use_new_assertions() -> None:
    site = pkjwt_site()
    client = site.client()
    log_in(site, client)
    expire(site, "user-1")
    r = client.get("/api", base_url=BASE_URL)
    assert r.status_code == 200, r.data
    idp = idp_of(site)
    assert idp.refresh_count == 1
    assert idp.forms[-1]["grant_type"] == ["refresh_token"]

    with site.app.app_context():
        assert site.oauth.corp.for_app().get("me").status_code == 200
    assert idp.forms[-1]["grant_type"] == ["client_credentials"]

    r = client.post("/logout", data={"csrf_token": csrf(client)}, base_url=BASE_URL)
    assert r.status_code == 302
    hints = [f["token_type_hint"][0] for f in idp.forms if "token_type_hint" in f]
    assert hints == ["refresh_token", "access_token"]
    # Five requests, five assertions, five jtis: a provider refuses a replay.
    assert len(idp.claims) == len(idp.jtis) == 5


def test_the_provider_refusing_the_key_is_a_502_and_nothing_is_stored() -> None:
    site = pkjwt_site(client_private_key=pem(WRONG_KEY))
    client = site.client()
    r = log_in(site, client)
    assert r.status_code == 502
    assert b"Provider error" in r.data
    assert idp_of(site).claims == []
    assert_nothing_happened(site, client)


def test_the_assertion_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    site = pkjwt_site()
    with caplog.at_level(logging.DEBUG):
        log_in(site, site.client())
    assertion = idp_of(site).forms[0]["client_assertion"][0]
    assert assertion.split(".")[2] not in caplog.text


@pytest.mark.parametrize(
    ("key", "public", "alg"),
    [
        (pem(EC_KEY), EC_KEY.public_key(), "ES256"),
        (pem(ED_KEY), ED_KEY.public_key(), "EdDSA"),
        (
            {**ECAlgorithm.to_jwk(EC_KEY, as_dict=True), "kid": "ec-1"},
            EC_KEY.public_key(),
            "ES256",
        ),
        (pem(RSA_KEY).encode(), RSA_KEY.public_key(), "RS256"),
    ],
    ids=["ec-pem", "ed25519-pem", "ec-jwk", "rsa-pem-bytes"],
)
def test_each_kind_of_key_signs_with_its_algorithm(
    key: t.Any, public: t.Any, alg: str
) -> None:
    site = pkjwt_site(public, [alg], client_private_key=key, client_key_id=None)
    assert log_in(site, site.client()).status_code == 302
    header = jwt.get_unverified_header(idp_of(site).forms[0]["client_assertion"][0])
    assert header["alg"] == alg
    assert header.get("kid") == (key.get("kid") if isinstance(key, dict) else None)


def test_the_key_comes_from_the_app_config() -> None:
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id=CLIENT_ID,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        scope=["openid"],
        token_endpoint_auth_method="private_key_jwt",
    )
    app = Flask("t")
    app.config.update(
        SECRET_KEY="k",
        OAUTHCLIENT_CORP_CLIENT_PRIVATE_KEY=pem(RSA_KEY),
        OAUTHCLIENT_CORP_CLIENT_KEY_ID="from-config",
    )
    oauth.init_app(app)
    auth = app.extensions["oauthclient"].providers["corp"].auth
    assert auth.keys[0].kid == "from-config"
    assert jwt.get_unverified_header(auth.assertion(TOKEN_URL))["kid"] == "from-config"


def test_a_key_rotation_lists_the_next_key() -> None:
    """With a list, the first key signs and the public JWKS has both, so that the
    provider knows the next key before the app switches to it."""
    auth = ClientAuth(
        "corp",
        "private_key_jwt",
        client_id=CLIENT_ID,
        client_secret=None,
        private_key=[pem(RSA_KEY), {**_jwk(NEXT_KEY), "kid": "next"}],
        key_id="current",
    )
    assertion = auth.assertion(TOKEN_URL)
    assert jwt.get_unverified_header(assertion)["kid"] == "current"
    jwt.decode(
        assertion, RSA_KEY.public_key(), algorithms=["RS256"], audience=TOKEN_URL
    )
    jwks = auth.public_jwks()
    assert [k["kid"] for k in jwks["keys"]] == ["current", "next"]
    assert all("d" not in k and k["use"] == "sig" for k in jwks["keys"])
    # The provider can verify with the published key.
    published = jwt.PyJWK(jwks["keys"][0]).key
    jwt.decode(assertion, published, algorithms=["RS256"], audience=TOKEN_URL)


def test_a_key_without_kid_is_published_under_its_thumbprint() -> None:
    key = SigningKey.load(pem(RSA_KEY))
    assert key.kid is None and "PRIVATE" not in repr(key)
    jwk = key.public_jwk()
    assert jwk["kid"] == thumbprint(jwk)
    # RFC 7638 §3.1's example.
    example = {
        "kty": "RSA",
        "e": "AQAB",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7"
        "aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93l"
        "qt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6"
        "qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHa"
        "Q-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    }
    assert thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# ----------------------------------------------------------- client_secret_jwt


@pytest.fixture
def long_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """make_site's client secret, long enough for HS256."""
    import helpers.hardening

    monkeypatch.setattr(helpers.hardening, "CLIENT_SECRET", HS_SECRET)
    return HS_SECRET


def test_client_secret_jwt_signs_with_the_client_secret(long_secret: str) -> None:
    site = make_site(
        AssertionCheckingIdP(long_secret.encode(), ["HS256"]),
        register={"token_endpoint_auth_method": "client_secret_jwt"},
    )
    client = site.client()
    assert log_in(site, client).status_code == 302
    assert user_of(client) == "user-1"
    header = jwt.get_unverified_header(idp_of(site).forms[0]["client_assertion"][0])
    assert header == {"alg": "HS256", "typ": "JWT"}
    expire(site, "user-1")
    assert client.get("/api", base_url=BASE_URL).status_code == 200
    assert idp_of(site).refresh_count == 1


def test_client_secret_jwt_needs_a_32_byte_secret() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        make_site(register={"token_endpoint_auth_method": "client_secret_jwt"})


# ------------------------------------------------- the discovery document


def test_a_provider_without_private_key_jwt_is_a_clear_configuration_error() -> None:
    site = pkjwt_site()
    idp_of(site).discovery = {
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ]
    }
    with pytest.raises(ConfigurationError) as e:
        site.client().get("/login/corp", base_url=BASE_URL)
    message = str(e.value)
    assert "token_endpoint_auth_method='private_key_jwt'" in message
    assert "client_secret_basic, client_secret_post" in message
    assert "/token" not in site.idp.calls


def test_a_provider_without_the_keys_algorithm_is_a_configuration_error() -> None:
    site = pkjwt_site(EC_KEY.public_key(), ["ES256"], client_private_key=pem(EC_KEY))
    idp_of(site).discovery = {
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256"],
    }
    with pytest.raises(ConfigurationError, match="signed with ES256"):
        site.client().get("/login/corp", base_url=BASE_URL)


def test_a_provider_listing_the_method_is_fine() -> None:
    site = pkjwt_site()
    idp_of(site).discovery = {
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
    }
    assert log_in(site, site.client()).status_code == 302


# ---------------------------------------------------------- bad configuration


def _certificate(key: t.Any) -> bytes:
    """A self-signed certificate of ``key``'s public key, as PEM."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "client")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _jwk(key: t.Any) -> dict[str, t.Any]:
    from jwt.algorithms import RSAAlgorithm

    return t.cast(dict[str, t.Any], RSAAlgorithm.to_jwk(key, as_dict=True))


@pytest.mark.parametrize(
    ("register", "message"),
    [
        ({"token_endpoint_auth_method": "private_key_jwt"}, "client_private_key="),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "client_private_key": _jwk(RSA_KEY.public_key()),
            },
            "public JWK",
        ),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "client_private_key": RSA_KEY.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(b"pw"),
                ),
            },
            "encrypted",
        ),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "client_private_key": "not a key",
            },
            "not a PEM key",
        ),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "client_private_key": RSA_KEY.public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo,
                ),
            },
            "a public key: the private key is needed",
        ),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "client_private_key": _certificate(RSA_KEY),
            },
            "a certificate: the private key is needed",
        ),
        ({"client_private_key": pem(RSA_KEY)}, "only"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "must be one of"),
    ],
    ids=[
        "no-key",
        "public-jwk",
        "encrypted",
        "garbage",
        "public-pem",
        "certificate",
        "key-unused",
        "unknown",
    ],
)
def test_bad_client_authentication_is_refused_at_init_app(
    register: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as e:
        make_site(register=register)
    assert "PRIVATE KEY" not in str(e.value)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (b"CERTIFICATE", "a certificate"),
        (b"TRUSTED CERTIFICATE", "a certificate"),
        (b"X509 CERTIFICATE", "a certificate"),
        (b"PUBLIC KEY", "a public key"),
        (b"RSA PUBLIC KEY", "a public key"),
        (b"CERTIFICATE REQUEST", "not a PEM key"),
    ],
)
def test_a_pem_that_is_not_a_private_key_is_named(header: bytes, problem: str) -> None:
    from flask_oauthclient.client_auth import _pem_problem

    data = b"-----BEGIN %s-----\nAAAA\n-----END %s-----\n" % (header, header)
    assert problem in _pem_problem(data)
