"""What trying the extension as a new user found, against a certified provider and
django-oauth-toolkit: token responses without ``token_type``, oversized callbacks,
causes hidden at the default log level, a missing ``SECRET_KEY``, error codes, a
storage failure titled as the provider's, revocation endpoints published only in
the RFC 8414 metadata, and ``offline_access`` without consent."""

from __future__ import annotations

import logging
import typing as t

import pytest
import requests
from flask import Flask
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.fakes import response
from helpers.hardening import assert_nothing_happened
from helpers.hardening import BASE_URL
from helpers.hardening import complete
from helpers.hardening import csrf
from helpers.hardening import log_in
from helpers.hardening import make_site
from helpers.hardening import plug
from helpers.hardening import start_login
from helpers.hardening import user_of

from flask_oauthclient import OAuth
from flask_oauthclient.errors import StorageError
from flask_oauthclient.login import MAX_QUERY_BYTES
from flask_oauthclient.storage import MemoryStorage


def token_answer(idp: FakeIdP, **changes: t.Any) -> t.Callable[..., t.Any]:
    """A token endpoint that answers the code exchange with ``changes`` applied."""

    def handler(request: requests.PreparedRequest) -> requests.Response:
        body = idp.token_response(next(iter(idp.nonces.values())))
        idp.nonces.clear()
        body.update(changes)
        return response(200, {k: v for k, v in body.items() if v is not None})

    return handler


def test_a_token_response_without_token_type_is_refused() -> None:
    site = make_site()
    site.idp.token_handler = token_answer(site.idp, token_type=None)
    client = site.client()
    r = complete(client, site.idp, start_login(client))
    assert r.status_code == 502
    assert_nothing_happened(site, client)


def test_token_type_is_compared_case_insensitively() -> None:
    site = make_site()
    site.idp.token_handler = token_answer(site.idp, token_type="BEARER")
    client = site.client()
    assert log_in(site, client).status_code == 302
    assert user_of(client) is not None


def test_a_provider_may_opt_out_of_token_type_for_a_documented_quirk() -> None:
    site = make_site(register={"token_type_required": False})
    site.idp.token_handler = token_answer(site.idp, token_type=None)
    client = site.client()
    assert log_in(site, client).status_code == 302
    assert user_of(client) is not None


def test_an_oversized_callback_is_refused_before_the_token_request() -> None:
    site = make_site()
    client = site.client()
    params = start_login(client)
    r = complete(client, site.idp, params, padding="x" * MAX_QUERY_BYTES)
    assert r.status_code == 400
    assert "/token" not in site.idp.calls
    assert_nothing_happened(site, client)
    # The same login, with a sane callback, still works.
    assert complete(client, site.idp, params).status_code == 302


def test_app_side_failures_are_logged_as_warnings_with_their_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = make_site()
    site.idp.token_handler = lambda request: response(401, {"error": "invalid_client"})
    client = site.client()
    with caplog.at_level(logging.INFO, logger="flask_oauthclient"):
        reply = log_in(site, client)
    assert reply.status_code == 502
    assert "refused this site&#39;s request" in reply.get_data(as_text=True)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "invalid_client" in warnings[0].getMessage()
    assert "/login/corp/authorized" in warnings[0].getMessage()


def test_a_refused_connection_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    site = make_site()

    def refuse(request: requests.PreparedRequest) -> requests.Response:
        raise requests.ConnectionError("connection refused")

    site.idp.token_handler = refuse
    client = site.client()
    with caplog.at_level(logging.INFO, logger="flask_oauthclient"):
        assert log_in(site, client).status_code == 503
    assert [
        r.levelno for r in caplog.records if "ProviderUnavailable" in r.message
    ] == [logging.WARNING]


def test_what_the_user_did_stays_at_info(caplog: pytest.LogCaptureFixture) -> None:
    site = make_site()
    client = site.client()
    params = start_login(client)
    with caplog.at_level(logging.INFO, logger="flask_oauthclient"):
        r = client.get(
            "/login/corp/authorized",
            query_string={"state": params["state"], "error": "access_denied"},
            base_url=BASE_URL,
        )
    assert r.status_code == 403
    assert caplog.records
    assert all(r.levelno == logging.INFO for r in caplog.records)


class FailingStorage(MemoryStorage):
    def set(self, *args: t.Any, **kwargs: t.Any) -> None:
        raise StorageError("the database is down")


def test_a_storage_failure_is_not_titled_as_the_providers() -> None:
    site = make_site(storage=FailingStorage())
    client = site.client()
    r = log_in(site, client)
    assert r.status_code == 503
    page = r.get_data(as_text=True)
    assert "Provider unavailable" not in page
    assert "Service unavailable" in page


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("CSRFError", "csrf_error"),
        ("InvalidIDToken", "invalid_id_token"),
        ("TokenMissing", "token_missing"),
        ("ProviderUnavailable", "provider_unavailable"),
        ("OAuthClientError", "oauth_client_error"),
    ],
)
def test_error_codes_are_snake_case_names(name: str, code: str) -> None:
    from flask_oauthclient import errors

    assert errors._snake(name) == code


def test_the_csrf_error_has_a_stable_json_code() -> None:
    site = make_site()
    client = site.client()
    log_in(site, client)
    csrf(client)  # the session holds a token now
    r = client.post(
        "/logout",
        data={"csrf_token": "wrong"},
        headers={"Accept": "application/json"},
        base_url=BASE_URL,
    )
    assert r.status_code == 400
    assert r.json == {
        "error": "csrf_error",
        "error_description": "The request could not be verified. Please go back "
        "and try again.",
    }


def test_a_missing_secret_key_is_named_at_the_first_login() -> None:
    app = Flask(__name__)
    app.config.update(TESTING=True)
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        scope=["openid"],
    )
    oauth.init_app(app, storage=MemoryStorage())
    plug(app, FakeIdP())
    app.config["PROPAGATE_EXCEPTIONS"] = True
    from flask_oauthclient.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        app.test_client().get("/login/corp", base_url=BASE_URL)


class NoRevocationInDiscovery(FakeIdP):
    """django-oauth-toolkit's shape: the revocation endpoint only in the RFC 8414
    document."""

    def __init__(self, rfc8414: bool) -> None:
        super().__init__()
        self.rfc8414 = rfc8414
        self.revoked: list[str] = []

    def metadata(self) -> dict[str, t.Any]:
        document = super().metadata()
        del document["revocation_endpoint"]
        return document

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: t.Any
    ) -> requests.Response:
        path = (request.url or "").split(ISSUER, 1)[-1].split("?")[0]
        if path == "/.well-known/oauth-authorization-server" and self.rfc8414:
            document = dict(super().metadata())
            r = response(200, document)
        elif path == "/revoke":
            self.calls.append(path)
            self.revoked.append(str(request.body))
            r = response(200, {})
        else:
            return super().send(request, **kwargs)
        r.request = request
        r.url = request.url or ""
        return r


def test_revocation_uses_the_rfc8414_metadata_when_discovery_lacks_it() -> None:
    idp = NoRevocationInDiscovery(rfc8414=True)
    site = make_site(idp)
    client = site.client()
    log_in(site, client)
    r = client.post("/logout", data={"csrf_token": csrf(client)}, base_url=BASE_URL)
    assert r.status_code == 302
    assert len(idp.revoked) == 2  # the refresh token, then the access token
    assert "token_type_hint=refresh_token" in idp.revoked[0]


def test_logout_that_cannot_revoke_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    idp = NoRevocationInDiscovery(rfc8414=False)
    site = make_site(idp)
    with caplog.at_level(logging.WARNING, logger="flask_oauthclient"):
        for _ in range(2):
            client = site.client()
            log_in(site, client)
            r = client.post(
                "/logout", data={"csrf_token": csrf(client)}, base_url=BASE_URL
            )
            assert r.status_code == 302
            assert user_of(client) is None
    assert idp.revoked == []
    notes = [r for r in caplog.records if "revocation endpoint" in r.getMessage()]
    assert len(notes) == 1


def consent_prompt(**register: t.Any) -> str | None:
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="k")
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        **register,
    )
    oauth.init_app(app, storage=MemoryStorage())
    plug(app, FakeIdP())
    return start_login(app.test_client()).get("prompt")


def test_offline_access_asks_for_consent() -> None:
    assert consent_prompt(scope=["openid", "email", "offline_access"]) == "consent"
    assert (
        consent_prompt(
            scope=["openid", "offline_access"],
            authorize_params={"prompt": "login consent"},
        )
        == "login consent"
    )
    assert consent_prompt(scope=["openid", "email"]) is None


def test_the_loggers_of_lazily_imported_modules_are_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """oidc, transport and encryption are imported on first use, after init_app
    installed the filter; their loggers are filtered all the same."""
    make_site()
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    for name in ("oidc", "transport", "encryption"):
        with caplog.at_level(logging.WARNING, logger=f"flask_oauthclient.{name}"):
            logging.getLogger(f"flask_oauthclient.{name}").warning("token %s", jwt)
        assert jwt not in caplog.text, name
        caplog.clear()


def login_calls(register: dict[str, t.Any], **claims: t.Any) -> tuple[list[str], t.Any]:
    """Log in with the ID token carrying ``claims``; the provider's calls and what
    ``on_login`` got."""
    site = make_site(register=register)
    site.idp.id_token_claims.update(claims)
    client = site.client()
    assert log_in(site, client).status_code == 302
    return site.idp.calls, site.logins[0][1]


def test_userinfo_is_skipped_when_the_id_token_has_the_requested_claims() -> None:
    # make_site asks for "openid email profile".
    calls, userinfo = login_calls(
        {},
        email="ann@idp.example",
        email_verified=True,
        name="Ann",
    )
    assert "/userinfo" not in calls
    assert userinfo["name"] == "Ann" and userinfo["email"] == "ann@idp.example"


def test_userinfo_is_read_when_the_id_token_lacks_a_requested_claim() -> None:
    calls, userinfo = login_calls({}, name="Ann")
    assert "/userinfo" in calls
    assert userinfo["email"] == "user-1@idp.example"


@pytest.mark.parametrize(("mode", "read"), [("always", True), ("never", False)])
def test_userinfo_mode_always_or_never(mode: str, read: bool) -> None:
    calls, _ = login_calls(
        {"userinfo": mode},
        email="ann@idp.example",
        email_verified=True,
        name="Ann",
    )
    assert ("/userinfo" in calls) is read


def test_a_wrong_userinfo_mode_is_a_configuration_error() -> None:
    from flask_oauthclient.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="userinfo"):
        make_site(register={"userinfo": "sometimes"})
