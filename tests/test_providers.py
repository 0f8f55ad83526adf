"""The provider presets: each one loads, registers, and (for plain OAuth 2 providers)
maps a profile of the provider's documented shape onto OpenID Connect claims.

The profile answers are canned JSON served by a fake ``requests`` adapter: no
network."""

from __future__ import annotations

import copy
import io
import json
import typing as t
from functools import cache
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from jwt.algorithms import RSAAlgorithm
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests_oauthlib import OAuth2Session

from flask_oauthclient import ConfigurationError
from flask_oauthclient import OAuth
from flask_oauthclient.errors import InvalidIDToken
from flask_oauthclient.oidc import JWKSCache
from flask_oauthclient.oidc import ServerMetadata
from flask_oauthclient.oidc import tenant_issuer_matcher
from flask_oauthclient.oidc import validate_id_token
from flask_oauthclient.providers import get_preset
from flask_oauthclient.providers import Preset
from flask_oauthclient.providers import preset_names

OIDC = [
    "apple",
    "auth0",
    "gitlab",
    "google",
    "keycloak",
    "linkedin",
    "microsoft",
    "okta",
    "salesforce",
    "slack",
]
PLAIN = [
    "bitbucket",
    "discord",
    "dropbox",
    "facebook",
    "github",
    "reddit",
    "spotify",
    "strava",
    "twitch",
    "x",
    "zoom",
]
#: Presets whose discovery URL depends on the customer's own domain or realm.
TENANT_URLS = {
    "auth0": "https://example.eu.auth0.com/.well-known/openid-configuration",
    "keycloak": "https://sso.example/realms/acme/.well-known/openid-configuration",
    "okta": "https://example.okta.com/oauth2/default/.well-known/openid-configuration",
}
TIMEOUT = 5.0


def preset(name: str) -> Preset:
    found = get_preset(name)
    assert found is not None, name
    return found


# ------------------------------------------------------------- the catalogue


def test_preset_names_lists_every_preset() -> None:
    assert preset_names() == sorted(OIDC + PLAIN)


@pytest.mark.parametrize("name", ["nope", "_profile", "Google", "1x", ""])
def test_unknown_or_private_names_have_no_preset(name: str) -> None:
    assert get_preset(name) is None


@pytest.mark.parametrize("name", OIDC + PLAIN)
def test_preset_is_consistent(name: str) -> None:
    p = preset(name)
    assert p.name == name
    assert p.title
    urls = [
        p.server_metadata_url,
        p.authorize_url,
        p.token_url,
        p.userinfo_url,
        p.jwks_uri,
        p.revocation_url,
        p.end_session_url,
        p.api_base_url,
        p.console_url,
    ]
    for url in filter(None, urls):
        assert url.startswith("https://"), url
    if p.api_base_url:
        # Relative API paths are joined to it.
        assert p.api_base_url.endswith("/")
    assert p.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post")
    assert p.notes


@pytest.mark.parametrize("name", OIDC)
def test_openid_presets(name: str) -> None:
    p = preset(name)
    assert "openid" in p.scope
    assert p.profile is None
    assert p.id_token_algorithms
    # Either a fixed discovery URL, or the docs tell what to pass.
    assert p.server_metadata_url or name in TENANT_URLS
    if name in TENANT_URLS:
        assert "server_metadata_url" in p.notes


@pytest.mark.parametrize("name", PLAIN)
def test_plain_oauth2_presets(name: str) -> None:
    p = preset(name)
    assert "openid" not in p.scope
    assert p.authorize_url and p.token_url
    assert p.profile is not None
    assert p.id_token_algorithms == ()
    assert p.api_base_url


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("github", "scope_separator", ","),
        ("strava", "scope_separator", ","),
        ("facebook", "scope_separator", ","),
        ("strava", "token_endpoint_auth_method", "client_secret_post"),
        ("twitch", "token_endpoint_auth_method", "client_secret_post"),
        ("linkedin", "token_endpoint_auth_method", "client_secret_post"),
        ("slack", "token_endpoint_auth_method", "client_secret_post"),
        ("strava", "pkce", False),
        ("reddit", "pkce", False),
        ("slack", "pkce", False),
        ("linkedin", "pkce", False),
        ("x", "pkce", True),
        ("linkedin", "nonce", False),
        ("google", "nonce", True),
        ("reddit", "authorize_params", {"duration": "permanent"}),
        ("dropbox", "authorize_params", {"token_access_type": "offline"}),
        ("google", "authorize_params", {"access_type": "offline", "prompt": "consent"}),
        ("microsoft", "tenant_placeholder", "{tenantid}"),
    ],
)
def test_quirks_reach_register(name: str, key: str, value: object) -> None:
    assert preset(name).register_defaults()[key] == value


def test_reddit_sends_its_own_user_agent() -> None:
    headers = preset("reddit").register_defaults()["headers"]
    assert not headers["User-Agent"].startswith("python-requests")


# -------------------------------------------------------------- registration


def register(name: str, **config: t.Any) -> OAuth:
    oauth = OAuth()
    if name in TENANT_URLS:
        config.setdefault("server_metadata_url", TENANT_URLS[name])
    oauth.register(name, client_id="x", client_secret="y", **config)
    return oauth


@pytest.mark.parametrize("name", OIDC + PLAIN)
def test_every_preset_registers(app: Flask, name: str) -> None:
    oauth = register(name)
    provider = oauth[name]
    assert provider.title == preset(name).title
    assert provider.config["scope"] == list(preset(name).scope)
    oauth.init_app(app)
    ap = app.extensions["oauthclient"].providers[name]
    assert ap.is_oidc is (name in OIDC)
    assert ap.client_id == "x"
    rules = {r.endpoint: r.rule for r in app.url_map.iter_rules()}
    assert rules[f"{name}.authorized"] == f"/login/{name}/authorized"


@pytest.mark.parametrize("name", sorted(TENANT_URLS))
def test_tenant_presets_need_a_discovery_url(app: Flask, name: str) -> None:
    oauth = OAuth()
    oauth.register(name, client_id="x", client_secret="y")
    with pytest.raises(ConfigurationError, match="server_metadata_url"):
        oauth.init_app(app)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("github", {"scope": ["repo"], "scope_separator": " "}),
        ("google", {"authorize_params": {}, "scope": ["openid"]}),
        ("microsoft", {"token_endpoint_auth_method": "client_secret_basic"}),
        ("strava", {"pkce": True, "api_base_url": "https://strava.test/api/v3/"}),
        ("discord", {"title": "Our Discord"}),
        ("okta", {"server_metadata_url": TENANT_URLS["okta"].replace("default", "x")}),
    ],
)
def test_register_keywords_override_the_preset(
    app: Flask, name: str, config: dict[str, t.Any]
) -> None:
    oauth = register(name, **config)
    for key, value in config.items():
        assert oauth[name].config[key] == value
    # What was not given still comes from the preset.
    assert oauth[name].config["token_url"] == preset(name).token_url
    oauth.init_app(app)


def test_credentials_from_app_config(app: Flask) -> None:
    oauth = OAuth()
    oauth.register("discord")
    app.config.update(
        OAUTHCLIENT_DISCORD_CLIENT_ID="cid", OAUTHCLIENT_DISCORD_CLIENT_SECRET="cs"
    )
    oauth.init_app(app)
    ap = app.extensions["oauthclient"].providers["discord"]
    assert (ap.client_id, ap.client_secret) == ("cid", "cs")


# ------------------------------------------------- a provider's API, faked


class FakeAPI(BaseAdapter):
    """Answers ``(method, url)`` from a table of canned JSON; records each request.
    Query strings are compared as parsed parameters."""

    def __init__(self, routes: dict[str, tuple[int, t.Any]]) -> None:
        super().__init__()
        self.routes = {_key(route): answer for route, answer in routes.items()}
        self.requests: list[requests.PreparedRequest] = []

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: t.Any
    ) -> requests.Response:
        assert request.url is not None
        assert kwargs.get("timeout") == TIMEOUT
        self.requests.append(request)
        key = _key(f"{request.method} {request.url}")
        if key not in self.routes:
            raise AssertionError(f"unexpected request: {request.method} {request.url}")
        status, body = self.routes[key]
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        response.raw = io.BytesIO(json.dumps(body).encode())
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def _key(route: str) -> tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...]]:
    method, url = route.split(" ", 1)
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    params = tuple(sorted((k, tuple(v)) for k, v in query.items()))
    return method, f"{parts.scheme}://{parts.netloc}{parts.path}", params


def run_profile(
    name: str, routes: dict[str, tuple[int, t.Any]]
) -> tuple[dict[str, t.Any], FakeAPI]:
    """Run the preset's profile mapper against ``routes``, as the extension does:
    with an OAuth2Session that carries the token."""
    api = FakeAPI(routes)
    session = OAuth2Session(
        client_id="the-client-id", token={"access_token": "at", "token_type": "Bearer"}
    )
    session.mount("https://", api)
    p = preset(name)
    assert p.profile is not None and p.api_base_url is not None
    claims = p.profile(session, p.api_base_url, TIMEOUT)
    for request in api.requests:
        assert request.headers["Authorization"] == "Bearer at"
    return claims, api


# The answers below follow each provider's documented examples (abridged).

GITHUB_USER = "GET https://api.github.com/user"
GITHUB_EMAILS = "GET https://api.github.com/user/emails"
BITBUCKET_USER = "GET https://api.bitbucket.org/2.0/user"
BITBUCKET_EMAILS = "GET https://api.bitbucket.org/2.0/user/emails"
DISCORD_ME = "GET https://discord.com/api/v10/users/@me"
DROPBOX_ME = "POST https://api.dropboxapi.com/2/users/get_current_account"
FACEBOOK_ME = (
    "GET https://graph.facebook.com/me?fields=id,name,first_name,last_name,email,"
    "picture"
)
REDDIT_ME = "GET https://oauth.reddit.com/api/v1/me"
SPOTIFY_ME = "GET https://api.spotify.com/v1/me"
STRAVA_ME = "GET https://www.strava.com/api/v3/athlete"
TWITCH_ME = "GET https://api.twitch.tv/helix/users"
X_ME = "GET https://api.x.com/2/users/me?user.fields=id,name,username,profile_image_url"
ZOOM_ME = "GET https://api.zoom.us/v2/users/me"

BITBUCKET_UUID = "{d301aafa-d676-4ee0-88be-962be7417567}"

RECORDED: dict[str, dict[str, tuple[int, t.Any]]] = {
    "github": {
        GITHUB_USER: (
            200,
            {
                "login": "octocat",
                "id": 1,
                "node_id": "MDQ6VXNlcjE=",
                "avatar_url": "https://github.com/images/error/octocat_happy.gif",
                "html_url": "https://github.com/octocat",
                "type": "User",
                "name": "monalisa octocat",
                "email": "public@example.com",
            },
        ),
        GITHUB_EMAILS: (
            200,
            [
                {
                    "email": "old@example.com",
                    "verified": True,
                    "primary": False,
                    "visibility": None,
                },
                {
                    "email": "octocat@github.com",
                    "verified": True,
                    "primary": True,
                    "visibility": "public",
                },
            ],
        ),
    },
    "bitbucket": {
        BITBUCKET_USER: (
            200,
            {
                "type": "user",
                "uuid": BITBUCKET_UUID,
                "account_id": "557058:c0b72ad0-1cb5-4018-9cdc-0cde8492c443",
                "display_name": "Emma Smith",
                "nickname": "emma",
                "account_status": "active",
                "links": {
                    "avatar": {"href": "https://secure.gravatar.com/avatar/e.png"},
                    "html": {"href": "https://bitbucket.org/%7Bd301aafa%7D/"},
                },
            },
        ),
        BITBUCKET_EMAILS: (
            200,
            {
                "pagelen": 10,
                "page": 1,
                "size": 2,
                "values": [
                    {
                        "is_primary": False,
                        "is_confirmed": True,
                        "type": "email",
                        "email": "old@example.com",
                    },
                    {
                        "is_primary": True,
                        "is_confirmed": True,
                        "type": "email",
                        "email": "emma@example.com",
                    },
                ],
            },
        ),
    },
    "discord": {
        DISCORD_ME: (
            200,
            {
                "id": "80351110224678912",
                "username": "nelly",
                "discriminator": "0",
                "global_name": "Nelly",
                "avatar": "8342729096ea3675442027381ff50dfe",
                "verified": True,
                "email": "nelly@discord.com",
                "flags": 64,
                "banner": None,
                "accent_color": 16711680,
                "premium_type": 1,
                "public_flags": 64,
                "mfa_enabled": True,
                "locale": "en-US",
            },
        )
    },
    "dropbox": {
        DROPBOX_ME: (
            200,
            {
                "account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
                "name": {
                    "given_name": "Franz",
                    "surname": "Ferdinand",
                    "familiar_name": "Franz",
                    "display_name": "Franz Ferdinand (Personal)",
                    "abbreviated_name": "FF",
                },
                "email": "franz@dropbox.com",
                "email_verified": True,
                "disabled": False,
                "locale": "en",
                "is_paired": False,
                "account_type": {".tag": "basic"},
                "profile_photo_url": "https://dl-web.dropbox.com/account_photo/get/x",
                "country": "US",
            },
        )
    },
    "facebook": {
        FACEBOOK_ME: (
            200,
            {
                "id": "10158283470521234",
                "name": "Jane Doe",
                "first_name": "Jane",
                "last_name": "Doe",
                "email": "jane@example.com",
                "picture": {
                    "data": {
                        "height": 50,
                        "is_silhouette": False,
                        "url": "https://platform-lookaside.fbsbx.com/p/?asid=1&h=50",
                        "width": 50,
                    }
                },
            },
        )
    },
    "reddit": {
        REDDIT_ME: (
            200,
            {
                "id": "1w72",
                "name": "spez",
                "icon_img": "https://styles.redditmedia.com/t5_3k30p/styles/"
                "profileIcon_snoo.png?width=256&amp;height=256&amp;s=abc",
                "has_verified_email": True,
                "verified": True,
                "created_utc": 1118030400.0,
            },
        )
    },
    "spotify": {
        SPOTIFY_ME: (
            200,
            {
                "country": "SE",
                "display_name": "JM Wizzler",
                "email": "email@example.com",
                "external_urls": {"spotify": "https://open.spotify.com/user/wizzler"},
                "followers": {"href": None, "total": 3829},
                "href": "https://api.spotify.com/v1/users/wizzler",
                "id": "wizzler",
                "images": [
                    {
                        "height": None,
                        "url": "https://i.scdn.co/image/ab6775700000ee85",
                        "width": None,
                    }
                ],
                "product": "premium",
                "type": "user",
                "uri": "spotify:user:wizzler",
            },
        )
    },
    "strava": {
        STRAVA_ME: (
            200,
            {
                "id": 1234567890,
                "username": "marianne_t",
                "resource_state": 3,
                "firstname": "Marianne",
                "lastname": "Teutenberg",
                "city": "San Francisco",
                "profile_medium": "https://x.cloudfront.net/athletes/1/medium.jpg",
                "profile": "https://x.cloudfront.net/athletes/1/large.jpg",
            },
        )
    },
    "twitch": {
        TWITCH_ME: (
            200,
            {
                "data": [
                    {
                        "id": "141981764",
                        "login": "twitchdev",
                        "display_name": "TwitchDev",
                        "type": "",
                        "broadcaster_type": "partner",
                        "description": "Supporting third-party developers.",
                        "profile_image_url": "https://static-cdn.jtvnw.net/u/p.png",
                        "offline_image_url": "https://static-cdn.jtvnw.net/u/o.png",
                        "view_count": 5980557,
                        "email": "not-real@email.com",
                        "created_at": "2016-12-14T20:32:28Z",
                    }
                ]
            },
        )
    },
    "x": {
        X_ME: (
            200,
            {
                "data": {
                    "id": "2244994945",
                    "name": "Developers",
                    "username": "XDevelopers",
                    "profile_image_url": "https://pbs.twimg.com/profile_images/1.jpg",
                }
            },
        )
    },
    "zoom": {
        ZOOM_ME: (
            200,
            {
                "id": "KDcuGIm1QgePTO8WbOqwIQ",
                "first_name": "Jill",
                "last_name": "Chill",
                "display_name": "Jill Chill",
                "email": "jchill@example.com",
                "type": 1,
                "pmi": 3542471135,
                "timezone": "Asia/Shanghai",
                "verified": 1,
                "dept": "",
                "pic_url": "https://example.com/photo.jpg",
                "language": "en-US",
                "status": "active",
                "account_id": "q6gBJVO5TzexKYTb_I2rpg",
            },
        )
    },
}

EXPECTED: dict[str, dict[str, t.Any]] = {
    "github": {
        "sub": "1",
        "preferred_username": "octocat",
        "name": "monalisa octocat",
        "picture": "https://github.com/images/error/octocat_happy.gif",
        "profile": "https://github.com/octocat",
        # The primary address from /user/emails, not the public profile one.
        "email": "octocat@github.com",
        "email_verified": True,
    },
    "bitbucket": {
        "sub": BITBUCKET_UUID,
        "preferred_username": "emma",
        "name": "Emma Smith",
        "picture": "https://secure.gravatar.com/avatar/e.png",
        "profile": "https://bitbucket.org/%7Bd301aafa%7D/",
        "email": "emma@example.com",
        "email_verified": True,
    },
    "discord": {
        "sub": "80351110224678912",
        "preferred_username": "nelly",
        "name": "Nelly",
        "picture": "https://cdn.discordapp.com/avatars/80351110224678912/"
        "8342729096ea3675442027381ff50dfe.png",
        "email": "nelly@discord.com",
        "email_verified": True,
    },
    "dropbox": {
        "sub": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
        "name": "Franz Ferdinand (Personal)",
        "given_name": "Franz",
        "family_name": "Ferdinand",
        "picture": "https://dl-web.dropbox.com/account_photo/get/x",
        "email": "franz@dropbox.com",
        "email_verified": True,
    },
    "facebook": {
        "sub": "10158283470521234",
        "name": "Jane Doe",
        "given_name": "Jane",
        "family_name": "Doe",
        "picture": "https://platform-lookaside.fbsbx.com/p/?asid=1&h=50",
        "email": "jane@example.com",
        # Facebook never says that the address was confirmed.
        "email_verified": False,
    },
    "reddit": {
        "sub": "1w72",
        "preferred_username": "spez",
        "name": "spez",
        "picture": "https://styles.redditmedia.com/t5_3k30p/styles/"
        "profileIcon_snoo.png?width=256&height=256&s=abc",
        "profile": "https://www.reddit.com/user/spez/",
    },
    "spotify": {
        "sub": "wizzler",
        "preferred_username": "wizzler",
        "name": "JM Wizzler",
        "picture": "https://i.scdn.co/image/ab6775700000ee85",
        "profile": "https://open.spotify.com/user/wizzler",
        "email": "email@example.com",
        # Spotify documents its email address as unverified.
        "email_verified": False,
    },
    "strava": {
        "sub": "1234567890",
        "preferred_username": "marianne_t",
        "name": "Marianne Teutenberg",
        "given_name": "Marianne",
        "family_name": "Teutenberg",
        "picture": "https://x.cloudfront.net/athletes/1/large.jpg",
        "profile": "https://www.strava.com/athletes/1234567890",
    },
    "twitch": {
        "sub": "141981764",
        "preferred_username": "twitchdev",
        "name": "TwitchDev",
        "picture": "https://static-cdn.jtvnw.net/u/p.png",
        "profile": "https://www.twitch.tv/twitchdev",
        "email": "not-real@email.com",
        "email_verified": True,
    },
    "x": {
        "sub": "2244994945",
        "preferred_username": "XDevelopers",
        "name": "Developers",
        "picture": "https://pbs.twimg.com/profile_images/1.jpg",
        "profile": "https://x.com/XDevelopers",
    },
    "zoom": {
        "sub": "KDcuGIm1QgePTO8WbOqwIQ",
        "name": "Jill Chill",
        "given_name": "Jill",
        "family_name": "Chill",
        "picture": "https://example.com/photo.jpg",
        "email": "jchill@example.com",
        "email_verified": True,
    },
}

#: The call that must succeed, per preset; other calls are optional.
MAIN_CALL = {
    "github": GITHUB_USER,
    "bitbucket": BITBUCKET_USER,
    "discord": DISCORD_ME,
    "dropbox": DROPBOX_ME,
    "facebook": FACEBOOK_ME,
    "reddit": REDDIT_ME,
    "spotify": SPOTIFY_ME,
    "strava": STRAVA_ME,
    "twitch": TWITCH_ME,
    "x": X_ME,
    "zoom": ZOOM_ME,
}


def recorded(name: str, **changes: tuple[int, t.Any]) -> dict[str, tuple[int, t.Any]]:
    routes = copy.deepcopy(RECORDED[name])
    routes.update(changes)
    return routes


def test_every_plain_preset_has_a_recorded_profile() -> None:
    assert sorted(RECORDED) == sorted(EXPECTED) == sorted(MAIN_CALL) == PLAIN


@pytest.mark.parametrize("name", PLAIN)
def test_profile_maps_to_openid_claims(name: str) -> None:
    claims, api = run_profile(name, recorded(name))
    assert claims == EXPECTED[name]
    # Every recorded call was made; JSON was asked for.
    made = {_key(f"{r.method} {r.url}") for r in api.requests}
    assert made == {_key(route) for route in RECORDED[name]}
    assert all(r.headers["Accept"] == "application/json" for r in api.requests)


def _unverified(name: str) -> dict[str, tuple[int, t.Any]]:
    routes = recorded(name)
    status, body = routes[MAIN_CALL[name]]
    if name == "github":
        routes[GITHUB_EMAILS][1][1]["verified"] = False
    elif name == "bitbucket":
        routes[BITBUCKET_EMAILS][1]["values"][1]["is_confirmed"] = False
    elif name == "discord":
        body["verified"] = False
    elif name == "dropbox":
        body["email_verified"] = False
    elif name == "zoom":
        body["verified"] = 0
    return routes


@pytest.mark.parametrize("name", ["github", "bitbucket", "discord", "dropbox", "zoom"])
def test_unverified_email_is_not_marked_verified(name: str) -> None:
    claims, _ = run_profile(name, _unverified(name))
    assert claims["email"] == EXPECTED[name]["email"]
    assert claims["email_verified"] is False


@pytest.mark.parametrize(
    ("name", "routes"),
    [
        # The email list needs a scope the user may not have granted.
        ("github", {GITHUB_EMAILS: (404, {"message": "Not Found"})}),
        ("bitbucket", {BITBUCKET_EMAILS: (403, {"type": "error"})}),
        # A body of an unexpected shape is no email either.
        ("github", {GITHUB_EMAILS: (200, {"message": "?"})}),
        ("bitbucket", {BITBUCKET_EMAILS: (200, [])}),
    ],
)
def test_optional_email_call_may_fail(
    name: str, routes: dict[str, tuple[int, t.Any]]
) -> None:
    claims, _ = run_profile(name, recorded(name, **routes))
    assert "email" not in claims and "email_verified" not in claims
    assert claims["sub"] == EXPECTED[name]["sub"]


@pytest.mark.parametrize("status", [401, 403, 500])
@pytest.mark.parametrize("name", PLAIN)
def test_failed_profile_call_raises_http_error(name: str, status: int) -> None:
    routes = recorded(name, **{MAIN_CALL[name]: (status, {"error": "nope"})})
    with pytest.raises(requests.HTTPError):
        run_profile(name, routes)


def _minimal(name: str, user: dict[str, t.Any]) -> t.Any:
    if name == "twitch":
        return {"data": [user]}
    if name == "x":
        return {"data": user}
    return user


#: The user id field of each profile.
ID_FIELD = {
    "github": "id",
    "bitbucket": "uuid",
    "discord": "id",
    "dropbox": "account_id",
    "facebook": "id",
    "reddit": "id",
    "spotify": "id",
    "strava": "id",
    "twitch": "id",
    "x": "id",
    "zoom": "id",
}


@pytest.mark.parametrize("name", PLAIN)
def test_profile_with_only_an_id(name: str) -> None:
    body = _minimal(name, {ID_FIELD[name]: "u-1"})
    # Optional calls that fail are ignored.
    routes = {route: (404, {}) for route in RECORDED[name]}
    routes[MAIN_CALL[name]] = (200, body)
    claims, _ = run_profile(name, routes)
    assert claims["sub"] == "u-1"
    assert "email" not in claims and "email_verified" not in claims
    for key, value in claims.items():
        assert value, key


@pytest.mark.parametrize("name", PLAIN)
@pytest.mark.parametrize(
    "user",
    [
        {},
        {"id": None, "uuid": None, "account_id": None},
        {"id": "", "uuid": "", "account_id": ""},
        {"id": True, "uuid": True, "account_id": True},
        {"id": ["1"], "uuid": ["1"], "account_id": ["1"]},
    ],
)
def test_profile_without_a_user_id_is_refused(
    name: str, user: dict[str, t.Any]
) -> None:
    routes = recorded(name, **{MAIN_CALL[name]: (200, _minimal(name, user))})
    with pytest.raises(ValueError):
        run_profile(name, routes)


@pytest.mark.parametrize("name", PLAIN)
@pytest.mark.parametrize("body", [[], "user", None, 42])
def test_profile_that_is_not_an_object_is_refused(name: str, body: t.Any) -> None:
    # The extension turns ValueError into a clear provider error (no 500).
    routes = recorded(name, **{MAIN_CALL[name]: (200, body)})
    with pytest.raises(ValueError):
        run_profile(name, routes)


@pytest.mark.parametrize(
    ("name", "route", "field", "value"),
    [
        ("github", GITHUB_USER, "avatar_url", "not a url"),
        ("strava", STRAVA_ME, "profile", "avatar/athlete/large.png"),
        ("zoom", ZOOM_ME, "pic_url", "javascript:alert(1)"),
        ("discord", DISCORD_ME, "avatar", None),
        ("spotify", SPOTIFY_ME, "images", []),
    ],
)
def test_picture_must_be_an_absolute_url(
    name: str, route: str, field: str, value: t.Any
) -> None:
    routes = recorded(name)
    routes[route][1][field] = value
    claims, _ = run_profile(name, routes)
    assert "picture" not in claims


def test_facebook_silhouette_is_no_picture() -> None:
    routes = recorded("facebook")
    routes[FACEBOOK_ME][1]["picture"]["data"]["is_silhouette"] = True
    claims, _ = run_profile("facebook", routes)
    assert "picture" not in claims


def test_twitch_names_the_client() -> None:
    _, api = run_profile("twitch", recorded("twitch"))
    assert api.requests[0].headers["Client-Id"] == "the-client-id"


def test_twitch_without_a_user_is_refused() -> None:
    with pytest.raises(ValueError):
        run_profile("twitch", recorded("twitch", **{TWITCH_ME: (200, {"data": []})}))


def test_dropbox_rpc_call_has_no_body() -> None:
    _, api = run_profile("dropbox", recorded("dropbox"))
    assert api.requests[0].body is None
    assert "Content-Type" not in api.requests[0].headers


# ------------------------------------------------ Microsoft's tenant issuers

MS = preset("microsoft")
MS_KEYS = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"
CONTOSO = "72f988bf-86f1-41af-91ab-2d7cd011db47"
NOW = 1_700_000_000
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"


@cache
def _ms_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ms_http() -> requests.Session:
    jwk = RSAAlgorithm.to_jwk(_ms_key().public_key(), as_dict=True)
    jwk.update(kid="k1", use="sig")
    discovery = {
        # The "common" document names the issuer as a template.
        "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
        "authorization_endpoint": (
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
        ),
        "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "jwks_uri": MS_KEYS,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    api = FakeAPI(
        {
            f"GET {MS.server_metadata_url}": (200, discovery),
            f"GET {MS_KEYS}": (200, {"keys": [jwk]}),
        }
    )
    http = requests.Session()
    http.mount("https://", api)
    return http


def _ms_token(tid: str | None, iss: str) -> str:
    claims = {
        "iss": iss,
        "aud": CLIENT_ID,
        "sub": f"sub-in-{tid}",
        "iat": NOW - 10,
        "exp": NOW + 300,
        "nonce": "n-1",
    }
    if tid is not None:
        claims["tid"] = tid
    return jwt.encode(claims, _ms_key(), algorithm="RS256", headers={"kid": "k1"})


def _ms_validate(http: requests.Session, token: str) -> dict[str, t.Any]:
    # What the extension does with the preset: the discovery document's issuer
    # template and a matcher for the preset's placeholder.
    assert MS.server_metadata_url is not None and MS.tenant_placeholder is not None
    metadata = ServerMetadata(MS.server_metadata_url, expected_issuer=MS.issuer)
    issuer = metadata.get(http, timeout=TIMEOUT)["issuer"]
    return validate_id_token(
        token,
        http=http,
        timeout=TIMEOUT,
        issuer=issuer,
        client_id=CLIENT_ID,
        jwks=JWKSCache(MS_KEYS),
        algorithms=MS.id_token_algorithms,
        nonce="n-1",
        issuer_matcher=tenant_issuer_matcher(issuer, placeholder=MS.tenant_placeholder),
        now=NOW,
    )


@pytest.mark.parametrize("tid", [CONTOSO, CONSUMERS])
def test_microsoft_accepts_each_tenant_with_its_own_issuer(tid: str) -> None:
    token = _ms_token(tid, f"https://login.microsoftonline.com/{tid}/v2.0")
    claims = _ms_validate(_ms_http(), token)
    assert claims["tid"] == tid
    assert claims["sub"] == f"sub-in-{tid}"


@pytest.mark.parametrize(
    ("tid", "iss"),
    [
        # One tenant's token claiming another tenant's issuer.
        (CONTOSO, f"https://login.microsoftonline.com/{CONSUMERS}/v2.0"),
        (CONSUMERS, f"https://login.microsoftonline.com/{CONTOSO}/v2.0"),
        # No tid to check the issuer with.
        (None, f"https://login.microsoftonline.com/{CONTOSO}/v2.0"),
        # The template itself, and another host.
        (CONTOSO, "https://login.microsoftonline.com/{tenantid}/v2.0"),
        (CONTOSO, f"https://login.example.com/{CONTOSO}/v2.0"),
        # The v1.0 issuer of the same tenant.
        (CONTOSO, f"https://sts.windows.net/{CONTOSO}/"),
        (
            f"{CONTOSO}/v2.0/x",
            f"https://login.microsoftonline.com/{CONTOSO}/v2.0/x/v2.0",
        ),
    ],
)
def test_microsoft_refuses_a_foreign_issuer(tid: str | None, iss: str) -> None:
    with pytest.raises(InvalidIDToken) as info:
        _ms_validate(_ms_http(), _ms_token(tid, iss))
    assert info.value.reason == "invalid_iss"


def test_microsoft_single_tenant(app: Flask) -> None:
    # One tenant: its own discovery URL and its fixed issuer, which has no
    # placeholder, so ID tokens are compared with it exactly.
    issuer = f"https://login.microsoftonline.com/{CONTOSO}/v2.0"
    oauth = register(
        "microsoft",
        server_metadata_url=issuer + "/.well-known/openid-configuration",
        issuer=issuer,
    )
    oauth.init_app(app)
    ap = app.extensions["oauthclient"].providers["microsoft"]
    assert ap.metadata.expected_issuer == issuer
    assert MS.tenant_placeholder not in issuer
