"""The ``apple`` preset against a provider shaped like Apple's (its discovery
document and JWKS as Apple publishes them, served by a ``requests`` adapter): the
client secret is an ES256 JWT the app signs with its ``.p8`` key, which the fake
verifies with the public key at the token and revocation endpoints; the callback
comes by form post, and the ``user`` field of the first login gives ``on_login``
the user's name, never over a verified claim."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import typing as t
from html.parser import HTMLParser
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from flask_login import current_user
from flask_login import LoginManager
from flask_login import UserMixin
from helpers.fakes import at_hash
from helpers.fakes import response
from jwt.algorithms import RSAAlgorithm
from requests.adapters import BaseAdapter
from werkzeug.datastructures import MultiDict

from flask_oauthclient import ConfigurationError
from flask_oauthclient import OAuth
from flask_oauthclient.client_auth import SignedSecret
from flask_oauthclient.client_auth import SigningKey
from flask_oauthclient.providers import get_preset
from flask_oauthclient.providers.apple import SECRET_LIFETIME
from flask_oauthclient.providers.apple import user_claims
from flask_oauthclient.storage import MemoryStorage

APPLE = "https://appleid.apple.com"
SERVICES_ID = "com.example.web"
TEAM_ID = "ABCDE12345"
KEY_ID = "XYZ987ABCD"
BASE_URL = "https://app.example"
#: Apple's documented maximum lifetime of a client secret (six months).
MAX_SECRET_LIFETIME = 15777000

P8_KEY = ec.generate_private_key(ec.SECP256R1())
P8 = P8_KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
#: Apple's ID-token signing keys (RS256), one of them current.
APPLE_KEYS = {
    "W6WcOKB": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "fh6Bs8C": rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
SIGNING_KID = "fh6Bs8C"


def discovery() -> dict[str, t.Any]:
    """https://appleid.apple.com/.well-known/openid-configuration, as recorded."""
    return {
        "issuer": APPLE,
        "authorization_endpoint": f"{APPLE}/auth/authorize",
        "token_endpoint": f"{APPLE}/auth/token",
        "revocation_endpoint": f"{APPLE}/auth/revoke",
        "jwks_uri": f"{APPLE}/auth/keys",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "name"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "claims_supported": [
            "aud",
            "email",
            "email_verified",
            "exp",
            "iat",
            "is_private_email",
            "iss",
            "nonce",
            "nonce_supported",
            "real_user_status",
            "sub",
            "transfer_sub",
        ],
    }


def jwks() -> dict[str, t.Any]:
    """https://appleid.apple.com/auth/keys: RS256 keys with kid, use, alg, n, e."""
    keys = []
    for kid, key in APPLE_KEYS.items():
        jwk = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
        keys.append({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", **jwk})
    return {"keys": keys}


class FakeApple(BaseAdapter):
    """appleid.apple.com, in-process: it verifies the client secret (ES256, signed
    with the .p8 key the developer registered) like Apple does, and PKCE."""

    def __init__(self) -> None:
        super().__init__()
        self.sub = "001234.9f8e7d6c5b4a.1234"
        self.email = "x7k2p9@privaterelay.appleid.com"
        self.codes: dict[str, dict[str, str]] = {}
        self.secrets: list[str] = []
        self.forms: list[dict[str, list[str]]] = []
        self.id_token_claims: dict[str, t.Any] = {}
        self.refresh_tokens: set[str] = set()
        self.issued = 0

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: t.Any
    ) -> requests.Response:
        path = urlsplit(request.url or "").path
        if path == "/.well-known/openid-configuration":
            r = response(200, discovery())
        elif path == "/auth/keys":
            r = response(200, jwks())
        elif path == "/auth/token":
            r = self._token(request)
        elif path == "/auth/revoke":
            r = self._revoke(request)
        else:
            r = response(404, {"error": "not_found"})
        r.request, r.url = request, request.url or ""
        return r

    def close(self) -> None:
        pass

    def authorize(self, params: dict[str, str], code: str = "c-apple-1") -> str:
        """The user signs in at Apple: a code for this authorization request."""
        self.codes[code] = params
        return code

    def _client_authenticated(self, form: dict[str, list[str]]) -> bool:
        if form.get("client_id") != [SERVICES_ID] or "client_secret" not in form:
            return False
        secret = form["client_secret"][0]
        try:
            header = jwt.get_unverified_header(secret)
            claims = jwt.decode(
                secret,
                P8_KEY.public_key(),
                algorithms=["ES256"],
                audience=APPLE,
                issuer=TEAM_ID,
                options={"require": ["iat", "exp", "sub"]},
            )
        except jwt.InvalidTokenError:
            return False
        if header.get("kid") != KEY_ID or claims["sub"] != SERVICES_ID:
            return False
        if claims["exp"] - claims["iat"] > MAX_SECRET_LIFETIME:
            return False
        self.secrets.append(secret)
        return True

    def _token(self, request: requests.PreparedRequest) -> requests.Response:
        form = parse_qs(t.cast(str, request.body or ""))
        self.forms.append(form)
        if "Authorization" in request.headers or not self._client_authenticated(form):
            return response(400, {"error": "invalid_client"})
        if form.get("grant_type") == ["refresh_token"]:
            if form.get("refresh_token", [""])[0] not in self.refresh_tokens:
                return response(400, {"error": "invalid_grant"})
            return response(200, self._tokens(nonce=None, refresh=False))
        params = self.codes.pop(form.get("code", [""])[0], None)
        verifier = form.get("code_verifier", [""])[0]
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if params is None or challenge != params.get("code_challenge"):
            return response(400, {"error": "invalid_grant"})
        if form.get("redirect_uri") != [params["redirect_uri"]]:
            return response(400, {"error": "invalid_grant"})
        return response(200, self._tokens(nonce=params.get("nonce"), refresh=True))

    def _tokens(self, nonce: str | None, refresh: bool) -> dict[str, t.Any]:
        self.issued += 1
        access = f"a{self.issued}.apple-access"
        now = int(time.time())
        claims: dict[str, t.Any] = {
            "iss": APPLE,
            "aud": SERVICES_ID,
            "exp": now + 86400,
            "iat": now,
            "sub": self.sub,
            "at_hash": at_hash(access),
            "email": self.email,
            # Apple sends these as strings (or booleans).
            "email_verified": "true",
            "is_private_email": "true",
            "auth_time": now,
            "nonce_supported": True,
        }
        if nonce:
            claims["nonce"] = nonce
        claims.update(self.id_token_claims)
        body: dict[str, t.Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": jwt.encode(
                claims,
                APPLE_KEYS[SIGNING_KID],
                algorithm="RS256",
                headers={"kid": SIGNING_KID},
            ),
        }
        if refresh:
            body["refresh_token"] = f"r{self.issued}.apple-refresh"
            self.refresh_tokens.add(body["refresh_token"])
        return body

    def _revoke(self, request: requests.PreparedRequest) -> requests.Response:
        form = parse_qs(t.cast(str, request.body or ""))
        self.forms.append(form)
        if not self._client_authenticated(form):
            return response(400, {"error": "invalid_client"})
        return response(200, {})


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


class Site:
    def __init__(self, **register: t.Any) -> None:
        self.apple = FakeApple()
        self.logins: list[dict[str, t.Any]] = []
        self.users: dict[str, User] = {}
        self.oauth = OAuth()
        self.oauth.register("apple", client_id=SERVICES_ID, **register)
        self.app = Flask("apple_site")
        self.app.config.update(
            TESTING=True, SECRET_KEY="apple site", PREFERRED_URL_SCHEME="https"
        )
        self.storage = MemoryStorage(user=lambda: current_user.get_id())

        @self.oauth.on_login
        def on_login(
            provider: t.Any, token: t.Any, userinfo: dict[str, t.Any]
        ) -> t.Any:
            self.logins.append(userinfo)
            return self.users.setdefault(userinfo["sub"], User(userinfo["sub"]))

        LoginManager(self.app).user_loader(self.users.get)

    def init(self, **config: t.Any) -> Site:
        self.app.config.update(config)
        self.oauth.init_app(self.app, storage=self.storage)
        ap = self.app.extensions["oauthclient"].providers["apple"]
        ap.adapter = self.apple
        ap.http.mount("https://", self.apple)

        @self.app.get("/token")
        def token() -> t.Any:
            return dict(self.oauth.apple.token or {})

        return self


def signing_site(**register: t.Any) -> Site:
    return Site(
        team_id=TEAM_ID, client_key_id=KEY_ID, client_private_key=P8, **register
    ).init()


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input":
            self.fields.append((a["name"] or "", a.get("value") or ""))


def sign_in(site: Site, browser: FlaskClient, user: str | None = None) -> t.Any:
    """Log in with Apple: the authorization request, Apple's form post (cross-site:
    no cookie), our page's form post (with it)."""
    r = browser.get("/login/apple", base_url=BASE_URL)
    assert r.status_code == 302
    params = {
        k: v[0] for k, v in parse_qs(urlsplit(r.headers["Location"]).query).items()
    }
    code = site.apple.authorize(params)
    fields = {"state": params["state"], "code": code}
    if user is not None:
        fields["user"] = user
    page = site.app.test_client().post(
        "/login/apple/authorized", data=fields, base_url=BASE_URL
    )
    assert page.status_code == 200
    form = _Form()
    form.feed(page.get_data(as_text=True))
    return browser.post(
        "/login/apple/authorized",
        data=MultiDict(form.fields),
        base_url=BASE_URL,
        headers={"Sec-Fetch-Site": "same-origin"},
    )


FIRST_LOGIN_USER = json.dumps(
    {
        "name": {"firstName": "Jane", "lastName": "Appleseed"},
        "email": "jane@example.com",
    }
)


# ------------------------------------------------------------------ the login


def test_the_authorization_request_is_apples() -> None:
    site = signing_site()
    r = site.app.test_client().get("/login/apple", base_url=BASE_URL)
    params = parse_qs(urlsplit(r.headers["Location"]).query)
    assert r.headers["Location"].startswith(f"{APPLE}/auth/authorize?")
    assert params["response_mode"] == ["form_post"]
    assert params["scope"] == ["openid name email"]
    assert params["client_id"] == [SERVICES_ID]
    assert params["nonce"] and params["code_challenge_method"] == ["S256"]


def test_a_user_who_signs_in_gets_their_name_from_the_first_form_post() -> None:
    site = signing_site()
    browser = site.app.test_client()
    r = sign_in(site, browser, user=FIRST_LOGIN_USER)
    assert r.status_code == 302, r.data
    [claims] = site.logins
    assert claims["name"] == "Jane Appleseed"
    assert claims["given_name"] == "Jane" and claims["family_name"] == "Appleseed"
    # The verified ID token's email, not the posted one.
    assert claims["email"] == site.apple.email
    assert claims["sub"] == site.apple.sub and claims["iss"] == APPLE
    assert browser.get("/token", base_url=BASE_URL).json["access_token"]
    # Apple verified the client secret the app signed.
    assert len(site.apple.secrets) == 1


def test_later_logins_have_no_name() -> None:
    site = signing_site()
    sign_in(site, site.app.test_client(), user=FIRST_LOGIN_USER)
    r = sign_in(site, site.app.test_client())
    assert r.status_code == 302
    assert "name" not in site.logins[1] and "given_name" not in site.logins[1]
    assert site.logins[1]["sub"] == site.logins[0]["sub"]


def test_the_posted_user_never_overrides_a_verified_claim() -> None:
    site = signing_site()
    site.apple.id_token_claims = {"name": "Signed Name"}
    hostile = json.dumps(
        {
            "name": {"firstName": "Mallory", "lastName": "X"},
            "email": "victim@example.com",
            "sub": "someone-else",
        }
    )
    assert sign_in(site, site.app.test_client(), user=hostile).status_code == 302
    [claims] = site.logins
    assert claims["name"] == "Signed Name"
    assert claims["sub"] == site.apple.sub
    assert claims["email"] == site.apple.email
    # Names the token lacks are still added.
    assert claims["given_name"] == "Mallory"


@pytest.mark.parametrize(
    "user",
    [
        "not json",
        "[]",
        '{"name": "Jane"}',
        '{"name": {"firstName": 7, "lastName": ["x"]}}',
        '{"name": {"firstName": "  "}}',
        "",
    ],
)
def test_a_malformed_user_field_still_logs_in_without_a_name(user: str) -> None:
    site = signing_site()
    assert sign_in(site, site.app.test_client(), user=user).status_code == 302
    [claims] = site.logins
    assert not {"name", "given_name", "family_name"} & set(claims)


def test_user_claims_cuts_long_names() -> None:
    claims = user_claims({"user": json.dumps({"name": {"firstName": "J" * 5000}})})
    assert claims == {"given_name": "J" * 256, "name": "J" * 256}


# --------------------------------------------------------- the client secret


def test_the_client_secret_is_apples_es256_jwt() -> None:
    site = signing_site()
    sign_in(site, site.app.test_client())
    secret = site.apple.secrets[0]
    assert jwt.get_unverified_header(secret) == {
        "alg": "ES256",
        "kid": KEY_ID,
        "typ": "JWT",
    }
    claims = jwt.decode(
        secret, P8_KEY.public_key(), algorithms=["ES256"], audience=APPLE
    )
    assert claims["iss"] == TEAM_ID and claims["sub"] == SERVICES_ID
    assert claims["exp"] - claims["iat"] == SECRET_LIFETIME <= MAX_SECRET_LIFETIME
    assert abs(claims["iat"] - time.time()) < 5


def test_refresh_and_revocation_send_the_same_cached_secret() -> None:
    site = signing_site()
    browser = site.app.test_client()
    sign_in(site, browser)
    with site.app.app_context():
        client = site.oauth.apple.for_user(site.apple.sub)
        first = client.token
        assert first is not None
        refreshed = client.refresh_token()
        assert refreshed["access_token"] != first["access_token"]
        assert refreshed["refresh_token"] == first["refresh_token"]
        assert site.apple.forms[-1]["grant_type"] == ["refresh_token"]
        ap = site.app.extensions["oauthclient"].providers["apple"]
        assert ap.revoke(refreshed) is True
    assert site.apple.forms[-1]["token_type_hint"] == ["access_token"]
    assert site.apple.forms[-2]["token_type_hint"] == ["refresh_token"]
    # Login, refresh, two revocations: one secret, made once.
    assert len(site.apple.secrets) == 4 and len(set(site.apple.secrets)) == 1


def test_the_secret_is_made_again_shortly_before_it_expires() -> None:
    now = [1_700_000_000.0]
    made: list[int] = []

    def signer(
        *, client_id: str, team_id: str | None, key: SigningKey, now: int
    ) -> tuple[str, int]:
        made.append(now)
        return f"secret-{len(made)}", now + 3600

    secret = SignedSecret(
        signer,
        client_id=SERVICES_ID,
        team_id=TEAM_ID,
        key=SigningKey.load(P8, KEY_ID),
        renew_before=600,
        clock=lambda: now[0],
    )
    assert secret() == secret() == "secret-1"
    now[0] += 3000  # ten minutes less one second left
    assert secret() == "secret-1"
    now[0] += 1
    assert secret() == "secret-2"
    assert len(made) == 2


def test_the_key_and_ids_come_from_the_app_config() -> None:
    site = Site().init(
        OAUTHCLIENT_APPLE_TEAM_ID=TEAM_ID,
        OAUTHCLIENT_APPLE_CLIENT_KEY_ID=KEY_ID,
        OAUTHCLIENT_APPLE_CLIENT_PRIVATE_KEY=P8,
    )
    assert sign_in(site, site.app.test_client()).status_code == 302
    assert site.apple.secrets


def test_a_client_secret_made_beforehand_is_used_as_it_is() -> None:
    made = SigningKey.load(P8, KEY_ID).sign(
        {
            "iss": TEAM_ID,
            "sub": SERVICES_ID,
            "aud": APPLE,
            "iat": int(time.time()),
            "exp": int(time.time()) + 3600,
        }
    )
    site = Site(client_secret=made).init()
    assert sign_in(site, site.app.test_client()).status_code == 302
    assert site.apple.secrets == [made]


@pytest.mark.parametrize(
    ("register", "message"),
    [
        ({"client_key_id": KEY_ID, "client_private_key": P8}, "team_id="),
        ({"team_id": TEAM_ID, "client_private_key": P8}, "client_key_id="),
        (
            {
                "team_id": TEAM_ID,
                "client_key_id": KEY_ID,
                "client_private_key": rsa.generate_private_key(
                    public_exponent=65537, key_size=2048
                )
                .private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                .decode(),
            },
            "P-256",
        ),
        ({}, "client_private_key=, client_key_id= and team_id="),
    ],
    ids=["no-team", "no-key-id", "rsa-key", "nothing"],
)
def test_what_is_missing_is_said_at_init_app(
    register: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Site(**register).init()


def test_the_preset() -> None:
    preset = get_preset("apple")
    assert preset is not None
    assert preset.server_metadata_url == f"{APPLE}/.well-known/openid-configuration"
    assert preset.response_mode == "form_post"
    assert preset.token_endpoint_auth_method == "client_secret_post"
    assert "openid" in preset.scope and preset.notes and preset.console_url


def test_a_code_of_another_authorization_request_fails_pkce() -> None:
    """Apple checks PKCE: a code issued for another challenge is refused."""
    site = signing_site()
    browser = site.app.test_client()
    r = browser.get("/login/apple", base_url=BASE_URL)
    params = {
        k: v[0] for k, v in parse_qs(urlsplit(r.headers["Location"]).query).items()
    }
    site.apple.authorize({**params, "code_challenge": "another-challenge"})
    page = site.app.test_client().post(
        "/login/apple/authorized",
        data={"state": params["state"], "code": "c-apple-1"},
        base_url=BASE_URL,
    )
    form = _Form()
    form.feed(page.get_data(as_text=True))
    r = browser.post(
        "/login/apple/authorized", data=MultiDict(form.fields), base_url=BASE_URL
    )
    assert r.status_code == 400
    assert site.logins == []
