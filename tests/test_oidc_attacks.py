"""Every ID-token rule (OpenID Connect Core §3.1.3.7, §5.3.2), attacked on its own
through the real callback: each forged or broken token gets a 400 naming the rule it
broke, no token is stored, on_login is never called and nobody is logged in. The
unit-level checks of each rule are in tests/test_oidc.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import typing as t
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from helpers.fakes import _KEY
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.fakes import response
from helpers.hardening import assert_nothing_happened
from helpers.hardening import BASE_URL
from helpers.hardening import make_site
from helpers.hardening import Site
from helpers.hardening import start_login

_OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, t.Any], claims: dict[str, t.Any], secret: bytes) -> str:
    """A JWS signed with HMAC-SHA256 over ``secret``, whatever the header says."""
    signing_input = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(header: dict[str, t.Any], claims: dict[str, t.Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def claims_of(id_token: str) -> dict[str, t.Any]:
    return t.cast(
        dict[str, t.Any], jwt.decode(id_token, options={"verify_signature": False})
    )


_PUBLIC_PEM = _KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)

#: Rewrites of the genuine ID token: (how, the reason the callback must give).
Rewrite = t.Callable[[str], str]
REWRITES: dict[str, tuple[Rewrite, str]] = {
    "alg none": (
        lambda tok: unsigned({"alg": "none", "typ": "JWT"}, claims_of(tok)),
        "alg_none",
    ),
    "alg None, signature kept": (
        lambda tok: unsigned({"alg": "None"}, claims_of(tok)) + tok.split(".")[2],
        "alg_none",
    ),
    "HS256 with the client secret, not allowed": (
        lambda tok: forge(
            {"alg": "HS256", "kid": "k1"}, claims_of(tok), CLIENT_SECRET.encode()
        ),
        "alg_not_allowed",
    ),
    "HS256 keyed with the RSA public key": (
        lambda tok: forge({"alg": "HS256", "kid": "k1"}, claims_of(tok), _PUBLIC_PEM),
        "alg_not_allowed",
    ),
    "RS512, not allowed": (
        lambda tok: jwt.encode(
            claims_of(tok), _KEY, algorithm="RS512", headers={"kid": "k1"}
        ),
        "alg_not_allowed",
    ),
    "signed by another key, same kid": (
        lambda tok: jwt.encode(
            claims_of(tok), _OTHER_KEY, algorithm="RS256", headers={"kid": "k1"}
        ),
        "invalid_signature",
    ),
    "embedded jwk and jku headers": (
        lambda tok: jwt.encode(
            claims_of(tok),
            _OTHER_KEY,
            algorithm="RS256",
            headers={
                "kid": "k1",
                "jku": "https://evil.example/jwks",
                "jwk": json.loads(
                    jwt.algorithms.RSAAlgorithm.to_jwk(_OTHER_KEY.public_key())
                ),
            },
        ),
        "invalid_signature",
    ),
    "unknown kid": (
        lambda tok: jwt.encode(
            claims_of(tok), _OTHER_KEY, algorithm="RS256", headers={"kid": "k2"}
        ),
        "unknown_kid",
    ),
    "payload swapped, signature kept": (
        lambda tok: ".".join(
            [
                tok.split(".")[0],
                b64(json.dumps({**claims_of(tok), "sub": "admin"}).encode()),
                tok.split(".")[2],
            ]
        ),
        "invalid_signature",
    ),
    "typ at+jwt": (
        lambda tok: jwt.encode(
            claims_of(tok),
            _KEY,
            algorithm="RS256",
            headers={"kid": "k1", "typ": "at+jwt"},
        ),
        "invalid_typ",
    ),
    "JWE (five parts)": (lambda tok: tok + ".AAAA.BBBB", "malformed"),
    "not a JWT": (lambda tok: "not-a-jwt", "malformed"),
    "bad base64 header": (lambda tok: "!!!." + tok.split(".", 1)[1], "malformed"),
}

NOW = int(time.time())
#: Claim overrides through FakeIdP.id_token_claims (``None`` removes a claim).
CLAIMS: dict[str, tuple[dict[str, t.Any], str]] = {
    "other issuer": ({"iss": "https://evil.example"}, "invalid_iss"),
    "issuer with a trailing slash": ({"iss": ISSUER + "/"}, "invalid_iss"),
    "no issuer": ({"iss": None}, "invalid_iss"),
    "other audience": ({"aud": "another-client"}, "invalid_aud"),
    "no audience": ({"aud": None}, "invalid_aud"),
    "empty audience list": ({"aud": []}, "invalid_aud"),
    "untrusted extra audience": (
        {"aud": [CLIENT_ID, "another-client"], "azp": CLIENT_ID},
        "untrusted_aud",
    ),
    "azp of another party": ({"azp": "another-client"}, "invalid_azp"),
    "expired": ({"exp": NOW - 3600}, "expired"),
    "no exp": ({"exp": None}, "missing_exp"),
    "exp not a number": ({"exp": "tomorrow"}, "invalid_exp"),
    "exp true": ({"exp": True}, "invalid_exp"),
    "issued in the future": ({"iat": NOW + 3600}, "iat_in_future"),
    "no iat": ({"iat": None}, "missing_iat"),
    "not valid yet": ({"nbf": NOW + 3600}, "not_yet_valid"),
    "no subject": ({"sub": None}, "missing_sub"),
    "empty subject": ({"sub": ""}, "missing_sub"),
    "subject not a string": ({"sub": 42}, "missing_sub"),
    "other nonce": ({"nonce": "forged"}, "invalid_nonce"),
    "no nonce": ({"nonce": None}, "missing_nonce"),
    "at_hash of another access token": (
        {"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"},
        "invalid_at_hash",
    ),
}


@pytest.fixture
def site() -> Site:
    return make_site()


@pytest.fixture
def client(site: Site) -> FlaskClient:
    return site.client()


def rewriting(idp: FakeIdP, rewrite: Rewrite) -> t.Callable[..., requests.Response]:
    """A token endpoint that issues a genuine answer with its ID token rewritten."""

    def handler(request: requests.PreparedRequest) -> requests.Response:
        form = parse_qs(t.cast(str, request.body))
        body = idp.token_response(idp.nonces.pop(form["code"][0]))
        body["id_token"] = rewrite(body["id_token"])
        return response(200, body)

    return handler


def attempt(site: Site, client: FlaskClient) -> t.Any:
    params = start_login(client)
    site.idp.nonces["the-code"] = params["nonce"]
    return client.get(
        "/login/corp/authorized",
        query_string={"state": params["state"], "code": "the-code", "iss": ISSUER},
        headers={"Accept": "application/json"},
        base_url=BASE_URL,
    )


def assert_refused(site: Site, client: FlaskClient, r: t.Any, reason: str) -> None:
    assert r.status_code == 400, r.json
    assert r.json["error"] == reason
    assert "/userinfo" not in site.idp.calls or reason.startswith("userinfo")
    assert_nothing_happened(site, client)


@pytest.mark.parametrize("case", list(CLAIMS))
def test_each_claim_rule_through_the_callback(
    site: Site, client: FlaskClient, case: str
) -> None:
    overrides, reason = CLAIMS[case]
    site.idp.id_token_claims = overrides
    assert_refused(site, client, attempt(site, client), reason)


@pytest.mark.parametrize("case", list(REWRITES))
def test_each_signature_rule_through_the_callback(
    site: Site, client: FlaskClient, case: str
) -> None:
    rewrite, reason = REWRITES[case]
    site.idp.token_handler = rewriting(site.idp, rewrite)
    assert_refused(site, client, attempt(site, client), reason)


def test_id_token_of_another_login_is_refused(site: Site, client: FlaskClient) -> None:
    """An ID token genuinely issued to this client, for another login (replayed
    from another flow): its nonce gives it away."""
    stolen = site.idp.id_token("access-x", nonce="nonce-of-another-login")
    site.idp.token_handler = rewriting(site.idp, lambda tok: stolen)
    assert_refused(site, client, attempt(site, client), "invalid_nonce")


def test_userinfo_about_another_user_is_refused(
    site: Site, client: FlaskClient
) -> None:
    site.idp.userinfo_handler = lambda request: response(
        200, {"sub": "someone-else", "email": "admin@idp.example"}
    )
    assert_refused(site, client, attempt(site, client), "userinfo_sub_mismatch")


def test_userinfo_cannot_override_the_id_tokens_claims(
    site: Site, client: FlaskClient
) -> None:
    """A userinfo answer may add claims, never change iss, sub, aud or nonce."""
    site.idp.userinfo_handler = lambda request: response(
        200, {"sub": "user-1", "iss": "https://evil.example", "aud": "x", "name": "U"}
    )
    r = attempt(site, client)
    assert r.status_code == 302
    (_, userinfo) = site.logins[0]
    assert (userinfo["iss"], userinfo["aud"], userinfo["name"]) == (
        ISSUER,
        CLIENT_ID,
        "U",
    )


def test_missing_id_token_is_a_provider_error(site: Site, client: FlaskClient) -> None:
    """No ID token at all in an OpenID login: the provider is broken (502), and
    still nothing is stored."""

    def handler(request: requests.PreparedRequest) -> requests.Response:
        form = parse_qs(t.cast(str, request.body))
        body = site.idp.token_response(site.idp.nonces.pop(form["code"][0]))
        del body["id_token"]
        return response(200, body)

    site.idp.token_handler = handler
    r = attempt(site, client)
    assert r.status_code == 502
    assert_nothing_happened(site, client)
