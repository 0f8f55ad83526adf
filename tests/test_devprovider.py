"""The development OpenID provider, driven over real loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from oauthlib.oauth2 import InvalidClientError
from requests_oauthlib import OAuth2Session

from flask_oauthclient.testing import DevClient
from flask_oauthclient.testing import DevProvider
from flask_oauthclient.testing import devprovider

REDIRECT_URI = "http://127.0.0.1:9/callback"
SCOPE = ["openid", "profile", "email", "offline_access"]
CLIENT_AUTH = ("dev-client", "dev-secret")
#: One key for the providers of this module: generating one per test is slow.
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_provider(
    clients: list[DevClient] | None = None, **options: Any
) -> DevProvider:
    return DevProvider(clients, signing_key=KEY, **options)


class _FormParser(HTMLParser):
    """Collects the inputs and buttons of the login page's form."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.inputs: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []
        self._button: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.inputs[a["name"] or ""] = a.get("type") or "text"
            if a.get("type") == "hidden":
                self.fields[a["name"] or ""] = a.get("value") or ""
        elif tag == "button":
            self._button = a

    def handle_data(self, data: str) -> None:
        if self._button is not None and data.strip():
            self.buttons.append((data.strip(), self._button.get("value") or ""))
            self._button = None


@pytest.fixture
def insecure(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the client side (requests-oauthlib) needs this; the provider doesn't.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def dev(insecure: None) -> Iterator[DevProvider]:
    provider = make_provider()
    with provider.serve():
        yield provider


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def oauth_session(**kwargs: Any) -> OAuth2Session:
    kwargs.setdefault("pkce", "S256")
    return OAuth2Session("dev-client", redirect_uri=REDIRECT_URI, scope=SCOPE, **kwargs)


def parse_form(html: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html)
    return parser


def sign_in(
    browser: requests.Session, url: str, username: str = "alice", action: str = "login"
) -> str:
    """Fill in the login page at ``url``; return where the provider redirects."""
    page = browser.get(url)
    assert page.status_code == 200, page.text
    form = parse_form(page.text)
    data = {**form.fields, "username": username, "action": action}
    response = browser.post(page.url, data=data, allow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["Location"]


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def log_in(
    dev: DevProvider, browser: requests.Session, username: str = "alice"
) -> tuple[dict[str, Any], str]:
    """The whole authorization code flow; returns the token and the nonce."""
    nonce = secrets.token_urlsafe(16)
    with oauth_session() as oauth:
        url, _ = oauth.authorization_url(f"{dev.issuer}/authorize", nonce=nonce)
        location = sign_in(browser, url, username)
        token = oauth.fetch_token(
            f"{dev.issuer}/token",
            authorization_response=location,
            client_secret="dev-secret",
        )
    return dict(token), nonce


def verify_id_token(
    dev: DevProvider, id_token: str, client_id: str = "dev-client"
) -> dict[str, Any]:
    jwks = requests.get(f"{dev.issuer}/jwks").json()
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    return jwt.decode(
        id_token, key, algorithms=["RS256"], audience=client_id, issuer=dev.issuer
    )


def refresh(dev: DevProvider, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{dev.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=CLIENT_AUTH,
    )


def userinfo(dev: DevProvider, access_token: str) -> requests.Response:
    return requests.get(
        f"{dev.issuer}/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    )


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_discovery(dev: DevProvider) -> None:
    assert dev.issuer is not None and not dev.issuer.endswith("/")
    assert dev.metadata_url == f"{dev.issuer}/.well-known/openid-configuration"
    meta = requests.get(dev.metadata_url).json()
    assert meta["issuer"] == dev.issuer
    for key, path in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
        ("end_session_endpoint", "/logout"),
    ]:
        assert meta[key] == dev.issuer + path
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert {"authorization_code", "refresh_token"} <= set(meta["grant_types_supported"])
    assert set(SCOPE) <= set(meta["scopes_supported"])
    assert meta["subject_types_supported"] == ["public"]
    assert "email" in meta["claims_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    jwks = requests.get(meta["jwks_uri"]).json()
    assert [k["kid"] for k in jwks["keys"]] == [dev.kid]


def test_login_page(dev: DevProvider, browser: requests.Session) -> None:
    with oauth_session() as oauth:
        url, state = oauth.authorization_url(f"{dev.issuer}/authorize")
    page = browser.get(url)
    assert page.status_code == 200
    assert "Development provider" in page.text
    form = parse_form(page.text)
    assert form.inputs["username"] == "text"
    labels = [label for label, _ in form.buttons]
    assert "Sign in" in labels and "Cancel" in labels
    # The original request rides along in hidden fields, with a CSRF value bound
    # to the provider's own session cookie.
    assert form.fields["state"] == state
    assert form.fields["redirect_uri"] == REDIRECT_URI
    assert form.fields["csrf_token"]
    assert "devprovider_session" in browser.cookies


def test_code_flow_id_token_and_userinfo(
    dev: DevProvider, browser: requests.Session
) -> None:
    before = time.time()
    token, nonce = log_in(dev, browser, "alice")
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["refresh_token"]
    assert token["scope"] == SCOPE

    header = jwt.get_unverified_header(token["id_token"])
    assert header["alg"] == "RS256" and header["kid"] == dev.kid
    claims = verify_id_token(dev, token["id_token"])
    assert claims["sub"] == "alice"
    assert claims["aud"] == "dev-client" and claims["azp"] == "dev-client"
    assert claims["nonce"] == nonce
    assert claims["at_hash"] == at_hash(token["access_token"])
    assert claims["iat"] <= claims["exp"]
    assert int(before) <= claims["auth_time"] <= time.time()
    assert claims["email"] == "alice@example.test"

    response = userinfo(dev, token["access_token"])
    assert response.status_code == 200
    assert response.json() == {
        "sub": "alice",
        "name": "Alice",
        "given_name": "Alice",
        "family_name": "Example",
        "preferred_username": "alice",
        "email": "alice@example.test",
        "email_verified": True,
    }


def test_authorization_response_carries_iss(
    dev: DevProvider, browser: requests.Session
) -> None:
    with oauth_session() as oauth:
        url, state = oauth.authorization_url(f"{dev.issuer}/authorize")
    location = sign_in(browser, url)
    assert location.startswith(REDIRECT_URI + "?")
    params = query(location)
    assert params["iss"] == dev.issuer
    assert params["state"] == state
    assert params["code"]


def test_odd_state_survives_the_login_page(
    dev: DevProvider, browser: requests.Session
) -> None:
    state = 'a "quoted" <state> & more'
    with oauth_session() as oauth:
        url, _ = oauth.authorization_url(f"{dev.issuer}/authorize", state=state)
    assert query(sign_in(browser, url))["state"] == state


def test_claims_follow_scope(dev: DevProvider, browser: requests.Session) -> None:
    with OAuth2Session(
        "dev-client", redirect_uri=REDIRECT_URI, scope=["openid"], pkce="S256"
    ) as oauth:
        url, _ = oauth.authorization_url(f"{dev.issuer}/authorize")
        token = oauth.fetch_token(
            f"{dev.issuer}/token",
            authorization_response=sign_in(browser, url, "bob.smith"),
            client_secret="dev-secret",
        )
    assert "email" not in verify_id_token(dev, token["id_token"])
    assert userinfo(dev, token["access_token"]).json() == {"sub": "bob.smith"}
    assert DevProvider.user_claims("bob.smith", "profile")["family_name"] == "Smith"


def test_refresh_rotates_and_old_token_is_invalid_grant(
    dev: DevProvider, browser: requests.Session
) -> None:
    token, _ = log_in(dev, browser)
    first = verify_id_token(dev, token["id_token"])
    dev.reset_stats()

    response = refresh(dev, token["refresh_token"])
    assert response.status_code == 200, response.text
    new = response.json()
    assert new["refresh_token"] != token["refresh_token"]
    assert new["access_token"] != token["access_token"]
    claims = verify_id_token(dev, new["id_token"])
    assert (claims["iss"], claims["sub"], claims["aud"]) == (
        first["iss"],
        first["sub"],
        first["aud"],
    )
    assert "nonce" not in claims
    assert claims["at_hash"] == at_hash(new["access_token"])

    reused = refresh(dev, token["refresh_token"])
    assert reused.status_code == 400
    assert reused.headers["Content-Type"] == "application/json"
    assert reused.json()["error"] == "invalid_grant"
    # Without revoke_grant_on_reuse the new refresh token stays good.
    assert refresh(dev, new["refresh_token"]).status_code == 200
    assert dev.stats["token_refresh_token"] == 3
    assert dev.stats["invalid_grant"] == 1


def test_reuse_revokes_grant_when_asked(insecure: None) -> None:
    dev = make_provider(revoke_grant_on_reuse=True)
    with dev.serve():
        token = dev.mint_token("alice")
        new = refresh(dev, token["refresh_token"]).json()
        assert refresh(dev, token["refresh_token"]).json()["error"] == "invalid_grant"
        assert refresh(dev, new["refresh_token"]).json()["error"] == "invalid_grant"
        assert userinfo(dev, new["access_token"]).status_code == 401


def test_no_rotation_keeps_refresh_token(insecure: None) -> None:
    dev = make_provider(rotate_refresh_tokens=False)
    with dev.serve():
        token = dev.mint_token("alice")
        for _ in range(2):
            new = refresh(dev, token["refresh_token"]).json()
            assert new["refresh_token"] == token["refresh_token"]


def test_concurrent_refresh_has_one_winner(insecure: None) -> None:
    dev = make_provider(token_delay=0.05)
    with dev.serve():
        token = dev.mint_token("alice")
        statuses: list[int] = []
        barrier = threading.Barrier(8)

        def attempt() -> None:
            barrier.wait()
            statuses.append(refresh(dev, token["refresh_token"]).status_code)

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [200] + [400] * 7
    assert dev.stats["invalid_grant"] == 7


def test_revoke_refresh_token_ends_grant(dev: DevProvider) -> None:
    token = dev.mint_token("alice")
    response = requests.post(
        f"{dev.issuer}/revoke",
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        auth=CLIENT_AUTH,
    )
    assert response.status_code == 200
    assert refresh(dev, token["refresh_token"]).json()["error"] == "invalid_grant"
    assert userinfo(dev, token["access_token"]).status_code == 401
    assert dev.stats["revocation"] == 1


def test_revoke_access_token(dev: DevProvider) -> None:
    token = dev.mint_token("alice")
    # client_secret_post this time
    response = requests.post(
        f"{dev.issuer}/revoke",
        data={
            "token": token["access_token"],
            "client_id": "dev-client",
            "client_secret": "dev-secret",
        },
    )
    assert response.status_code == 200
    assert userinfo(dev, token["access_token"]).status_code == 401
    assert refresh(dev, token["refresh_token"]).status_code == 200


def test_revoke_needs_client_authentication(dev: DevProvider) -> None:
    token = dev.mint_token("alice")
    response = requests.post(
        f"{dev.issuer}/revoke",
        data={"token": token["access_token"]},
        auth=("dev-client", "wrong"),
    )
    assert response.status_code == 401
    assert userinfo(dev, token["access_token"]).status_code == 200


def test_auto_login(insecure: None) -> None:
    dev = make_provider(auto_login="carol")
    with dev.serve(), oauth_session() as oauth:
        url, state = oauth.authorization_url(f"{dev.issuer}/authorize")
        response = requests.get(url, allow_redirects=False)
        assert response.status_code == 302
        location = response.headers["Location"]
        assert query(location)["iss"] == dev.issuer
        assert "devprovider_session" not in response.cookies
        token = oauth.fetch_token(
            f"{dev.issuer}/token",
            authorization_response=location,
            client_secret="dev-secret",
        )
        assert verify_id_token(dev, token["id_token"])["sub"] == "carol"
    assert dev.stats["authorize"] == 1
    assert dev.stats["token_authorization_code"] == 1


def test_cancel_returns_access_denied(
    dev: DevProvider, browser: requests.Session
) -> None:
    with oauth_session() as oauth:
        url, state = oauth.authorization_url(f"{dev.issuer}/authorize")
    location = sign_in(browser, url, action="cancel")
    params = query(location)
    assert location.startswith(REDIRECT_URI)
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert params["iss"] == dev.issuer
    assert dev.stats["authorize"] == 0


def test_missing_pkce_is_refused(dev: DevProvider) -> None:
    with oauth_session(pkce=None) as oauth:
        url, state = oauth.authorization_url(f"{dev.issuer}/authorize")
    response = requests.get(url, allow_redirects=False)
    assert response.status_code == 302
    params = query(response.headers["Location"])
    assert params["error"] == "invalid_request"
    assert params["state"] == state


def test_plain_pkce_is_refused(dev: DevProvider) -> None:
    params = {
        "response_type": "code",
        "client_id": "dev-client",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "s",
        "code_challenge": "x" * 43,
        "code_challenge_method": "plain",
    }
    url = f"{dev.issuer}/authorize?{urlencode(params)}"
    response = requests.get(url, allow_redirects=False)
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_wrong_code_verifier_is_invalid_grant(
    dev: DevProvider, browser: requests.Session
) -> None:
    with oauth_session() as oauth:
        url, _ = oauth.authorization_url(f"{dev.issuer}/authorize")
    code = query(sign_in(browser, url))["code"]
    response = requests.post(
        f"{dev.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": "w" * 64,
        },
        auth=CLIENT_AUTH,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_refused(
    dev: DevProvider, browser: requests.Session
) -> None:
    with oauth_session() as oauth:
        url, _ = oauth.authorization_url(f"{dev.issuer}/authorize")
        location = sign_in(browser, url)
        with pytest.raises(InvalidClientError):
            oauth.fetch_token(
                f"{dev.issuer}/token",
                authorization_response=location,
                client_secret="not-the-secret",
            )
    response = requests.post(
        f"{dev.issuer}/token",
        data={"grant_type": "authorization_code", "code": query(location)["code"]},
        auth=("dev-client", "nope"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_client_secret_post(dev: DevProvider, browser: requests.Session) -> None:
    with oauth_session() as oauth:
        url, _ = oauth.authorization_url(f"{dev.issuer}/authorize")
        token = oauth.fetch_token(
            f"{dev.issuer}/token",
            authorization_response=sign_in(browser, url),
            client_secret="dev-secret",
            include_client_id=True,
        )
    assert token["access_token"]


def test_code_is_single_use(dev: DevProvider, browser: requests.Session) -> None:
    with oauth_session() as oauth:
        url, _ = oauth.authorization_url(f"{dev.issuer}/authorize")
        location = sign_in(browser, url)
        token = oauth.fetch_token(
            f"{dev.issuer}/token",
            authorization_response=location,
            client_secret="dev-secret",
        )
        replay = requests.post(
            f"{dev.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": query(location)["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": oauth._code_verifier,
            },
            auth=CLIENT_AUTH,
        )
    assert replay.json()["error"] == "invalid_grant"
    # RFC 6749 4.1.2: tokens issued from a replayed code are revoked.
    assert userinfo(dev, token["access_token"]).status_code == 401


def test_expire_access_tokens(dev: DevProvider) -> None:
    token = dev.mint_token("alice")
    assert userinfo(dev, token["access_token"]).status_code == 200
    dev.expire_access_tokens()
    response = userinfo(dev, token["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    new = refresh(dev, token["refresh_token"]).json()
    assert userinfo(dev, new["access_token"]).status_code == 200


def test_userinfo_without_token(dev: DevProvider) -> None:
    response = requests.get(f"{dev.issuer}/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expiry_has_no_clock_tolerance(insecure: None) -> None:
    dev = make_provider(access_token_ttl=0)
    with dev.serve():
        token = dev.mint_token("alice")
        assert token["expires_in"] == 0
        assert userinfo(dev, token["access_token"]).status_code == 401
        # The ID token has a lifetime of its own.
        assert verify_id_token(dev, token["id_token"])["sub"] == "alice"


def test_mint_token_and_revoke_user(dev: DevProvider) -> None:
    token = dev.mint_token("dave", nonce="n-1")
    claims = verify_id_token(dev, token["id_token"])
    assert claims["nonce"] == "n-1" and claims["sub"] == "dave"
    assert token["expires_at"] == pytest.approx(time.time() + 3600, abs=5)
    assert userinfo(dev, token["access_token"]).json()["sub"] == "dave"
    other = dev.mint_token("erin")

    dev.revoke_user("dave")
    assert userinfo(dev, token["access_token"]).status_code == 401
    assert refresh(dev, token["refresh_token"]).json()["error"] == "invalid_grant"
    assert userinfo(dev, other["access_token"]).status_code == 200


def test_stats_and_keep_alive_connections(
    dev: DevProvider, browser: requests.Session
) -> None:
    token, _ = log_in(dev, browser)
    assert dev.stats["authorize"] == 1
    assert dev.stats["token_authorization_code"] == 1
    dev.stats.reset()
    assert dict(dev.stats) == {}

    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token['access_token']}"
        for _ in range(5):
            assert session.get(f"{dev.issuer}/userinfo").status_code == 200
            assert session.get(f"{dev.issuer}/api/items").status_code == 200
    assert dev.stats["connections"] == 1
    assert dev.stats["userinfo"] == 5
    assert dev.stats["api"] == 5

    for _ in range(2):
        requests.get(dev.metadata_url)
    assert dev.stats["connections"] == 3


def test_api_echoes_caller(dev: DevProvider) -> None:
    token = dev.mint_token("alice", scope="openid api")
    response = requests.post(
        f"{dev.issuer}/api/things?x=1",
        json={"a": 1},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert response.json() == {
        "sub": "alice",
        "client_id": "dev-client",
        "scope": "openid api",
        "method": "POST",
        "path": "things",
        "args": {"x": "1"},
        "json": {"a": 1},
    }
    assert requests.get(f"{dev.issuer}/api/things").status_code == 401


def test_introspection(dev: DevProvider) -> None:
    token = dev.mint_token("alice")
    url = f"{dev.issuer}/introspect"
    active = requests.post(url, data={"token": token["access_token"]}, auth=CLIENT_AUTH)
    assert active.json()["active"] is True
    assert active.json()["sub"] == "alice"
    dev.expire_access_tokens()
    inactive = requests.post(
        url, data={"token": token["access_token"]}, auth=CLIENT_AUTH
    )
    assert inactive.json() == {"active": False}


def test_form_post_needs_csrf(dev: DevProvider, browser: requests.Session) -> None:
    with oauth_session() as oauth:
        url, _ = oauth.authorization_url(f"{dev.issuer}/authorize")
    page = browser.get(url)
    fields = parse_form(page.text).fields
    fields.update(username="mallory", action="login", csrf_token="forged")
    response = browser.post(page.url, data=fields, allow_redirects=False)
    assert response.status_code == 400
    # Without the provider's cookie the real value is no good either.
    fields["csrf_token"] = parse_form(page.text).fields["csrf_token"]
    response = requests.post(page.url, data=fields, allow_redirects=False)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [
        ("unknown-client", REDIRECT_URI),
        ("dev-client", "https://evil.example/callback"),
    ],
)
def test_bad_client_or_redirect_uri_is_not_redirected(
    dev: DevProvider, client_id: str, redirect_uri: str
) -> None:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": "s",
    }
    response = requests.get(
        f"{dev.issuer}/authorize?{urlencode(params)}", allow_redirects=False
    )
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_registered_redirect_uris_are_exact(insecure: None) -> None:
    client = DevClient("app", "s3cret", redirect_uris=["http://127.0.0.1:9/cb"])
    dev = make_provider([client])
    with dev.serve():
        params = {
            "response_type": "code",
            "client_id": "app",
            "redirect_uri": "http://127.0.0.1:9/other",
            "scope": "openid",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        }
        response = requests.get(f"{dev.issuer}/authorize?{urlencode(params)}")
        assert response.status_code == 400


def test_prompt_none_uses_provider_session(
    dev: DevProvider, browser: requests.Session
) -> None:
    with oauth_session() as oauth:
        url, _ = oauth.authorization_url(f"{dev.issuer}/authorize", prompt="none")
    response = browser.get(url, allow_redirects=False)
    assert query(response.headers["Location"])["error"] == "login_required"

    log_in(dev, browser, "frank")
    response = browser.get(url, allow_redirects=False)
    assert response.status_code == 302
    assert "code" in query(response.headers["Location"])


def test_logout(dev: DevProvider, browser: requests.Session) -> None:
    token, _ = log_in(dev, browser)
    params = {
        "id_token_hint": token["id_token"],
        "post_logout_redirect_uri": "http://127.0.0.1:9/bye",
        "state": "st",
    }
    response = browser.get(
        f"{dev.issuer}/logout?{urlencode(params)}", allow_redirects=False
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "http://127.0.0.1:9/bye?state=st"
    assert "devprovider_session" not in browser.cookies

    params["post_logout_redirect_uri"] = "https://evil.example/"
    response = browser.get(f"{dev.issuer}/logout?{urlencode(params)}")
    assert response.status_code == 400
    assert browser.get(f"{dev.issuer}/logout").status_code == 200


def test_issue_refresh_token_off(insecure: None) -> None:
    dev = make_provider(issue_refresh_token=False)
    with dev.serve(), requests.Session() as browser:
        token, _ = log_in(dev, browser)
    assert "refresh_token" not in token
    assert "refresh_token" not in dev.mint_token("alice")


def test_token_delay(insecure: None) -> None:
    dev = make_provider(token_delay=0.2)
    with dev.serve():
        token = dev.mint_token("alice")
        started = time.perf_counter()
        assert refresh(dev, token["refresh_token"]).status_code == 200
        assert time.perf_counter() - started >= 0.2


def test_public_client_uses_pkce_without_secret(insecure: None) -> None:
    dev = make_provider([DevClient("spa")], require_pkce=False)
    with dev.serve(), requests.Session() as browser:
        with OAuth2Session(
            "spa", redirect_uri=REDIRECT_URI, scope=["openid"], pkce="S256"
        ) as oauth:
            url, _ = oauth.authorization_url(f"{dev.issuer}/authorize")
            token = oauth.fetch_token(
                f"{dev.issuer}/token",
                authorization_response=sign_in(browser, url),
                include_client_id=True,
            )
        assert verify_id_token(dev, token["id_token"], "spa")["sub"] == "alice"
        # Even with require_pkce off, a public client must use PKCE.
        with OAuth2Session("spa", redirect_uri=REDIRECT_URI, scope=["openid"]) as o:
            url, _ = o.authorization_url(f"{dev.issuer}/authorize")
        response = requests.get(url, allow_redirects=False)
        assert query(response.headers["Location"])["error"] == "invalid_request"


def test_old_state_is_pruned(monkeypatch: pytest.MonkeyPatch, insecure: None) -> None:
    monkeypatch.setattr(devprovider, "_PRUNE_EVERY", 3)
    dev = make_provider()
    with dev.serve():
        old = dev.mint_token("alice")
        dev.expire_access_tokens()
        fresh = [dev.mint_token("bob") for _ in range(2)]
        assert old["access_token"] not in dev._access_tokens
        assert len(dev._access_tokens) == 2
        assert refresh(dev, old["refresh_token"]).status_code == 200
        assert userinfo(dev, fresh[0]["access_token"]).status_code == 200


def test_mint_token_needs_an_issuer() -> None:
    with pytest.raises(RuntimeError, match="issuer"):
        make_provider().mint_token("alice")


def test_cli_prints_issuer() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "flask_oauthclient.testing.devprovider", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        issuer = process.stdout.readline().strip()
        meta = requests.get(f"{issuer}/.well-known/openid-configuration").json()
        assert meta["issuer"] == issuer
    finally:
        process.terminate()
        process.communicate(timeout=10)
