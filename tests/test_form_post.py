"""``register(..., response_mode="form_post")``: the provider POSTs the authorization
response from its own site, without the ``SameSite=Lax`` session cookie. The
callback answers that POST with a page that posts the response's fields again from
this site (with the cookie), and completes only that second POST, with the same
checks as a GET callback: state, PKCE, nonce, ``iss``. Every bad or forged form gets
a 4xx and leaves nothing behind."""

from __future__ import annotations

import typing as t
from html.parser import HTMLParser
from urllib.parse import parse_qs

import pytest
import requests
from flask.testing import FlaskClient
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.fakes import response
from helpers.hardening import assert_nothing_happened
from helpers.hardening import BASE_URL
from helpers.hardening import make_site
from helpers.hardening import Site
from helpers.hardening import start_login
from helpers.hardening import user_of
from werkzeug.datastructures import MultiDict

from flask_oauthclient import ConfigurationError
from flask_oauthclient import OAuth
from flask_oauthclient.flow import code_challenge
from flask_oauthclient.form_post import RESUBMITTED
from flask_oauthclient.login import MAX_QUERY_BYTES

CALLBACK = "/login/corp/authorized"
#: What a browser sends with the provider's auto-submitted form.
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Origin": ISSUER}
#: What it sends with the resubmitted form of our own page.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Origin": BASE_URL}


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: list[tuple[str, str]] = []
        self.script_nonce: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
            assert a.get("method") == "post"
        elif tag == "input" and a.get("type") == "hidden":
            self.fields.append((a["name"] or "", a.get("value") or ""))
        elif tag == "script":
            self.script_nonce = a.get("nonce")


def page_form(r: t.Any) -> _Form:
    parser = _Form()
    parser.feed(r.get_data(as_text=True))
    return parser


class PKCECheckingIdP(FakeIdP):
    """The FakeIdP, checking each code's PKCE verifier against the challenge of its
    authorization request, as a real provider does."""

    def __init__(self) -> None:
        super().__init__()
        self.challenges: dict[str, str] = {}
        self.token_forms: list[dict[str, list[str]]] = []
        self.token_handler = self._checked_token

    def _checked_token(self, request: requests.PreparedRequest) -> requests.Response:
        form = parse_qs(t.cast(str, request.body or ""))
        self.token_forms.append(form)
        code = form.get("code", [""])[0]
        verifier = form.get("code_verifier", [""])[0]
        if code_challenge(verifier) != self.challenges.get(code):
            return response(400, {"error": "invalid_grant"})
        return self._token(request)


@pytest.fixture
def site() -> Site:
    return make_site(PKCECheckingIdP(), register={"response_mode": "form_post"})


@pytest.fixture
def browser(site: Site) -> FlaskClient:
    return site.client()


def authorize(site: Site, params: dict[str, str], code: str = "the-code") -> None:
    """The provider issues ``code`` for the authorization request ``params``."""
    idp = t.cast(PKCECheckingIdP, site.idp)
    idp.nonces[code] = params["nonce"]
    idp.challenges[code] = params["code_challenge"]


def provider_post(site: Site, fields: t.Any, **kw: t.Any) -> t.Any:
    """The provider's auto-submitted form: a cross-site POST, which carries no
    SameSite=Lax cookie (a client without cookies)."""
    if isinstance(fields, list):
        fields = MultiDict(fields)
    return site.client().post(
        CALLBACK, data=fields, base_url=BASE_URL, headers=CROSS_SITE, **kw
    )


def resubmit(browser: FlaskClient, page: t.Any, headers: t.Any = None) -> t.Any:
    """What the browser does with our page: post its form, same-origin, with the
    session cookie."""
    form = page_form(page)
    assert form.action == CALLBACK
    return browser.post(
        form.action,
        data=MultiDict(form.fields),
        base_url=BASE_URL,
        headers=SAME_ORIGIN if headers is None else headers,
    )


def assert_no_token_request(site: Site) -> None:
    assert "/token" not in site.idp.calls


# ---------------------------------------------------------------- the flow


def test_the_authorization_request_asks_for_form_post(
    site: Site, browser: FlaskClient
) -> None:
    assert start_login(browser)["response_mode"] == "form_post"


def test_a_cookieless_cross_site_post_gets_a_page_then_the_login_completes(
    site: Site, browser: FlaskClient
) -> None:
    params = start_login(browser, next="/after?x=1")
    authorize(site, params)
    page = provider_post(
        site,
        {"state": params["state"], "code": "the-code", "iss": ISSUER, "extra": "x"},
    )
    assert page.status_code == 200
    # The session is not touched: no cookie was sent, and one set here would
    # replace the user's session (and its pending login).
    assert "Set-Cookie" not in page.headers
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    csp = page.headers["Content-Security-Policy"]
    form = page_form(page)
    assert form.script_nonce and f"'nonce-{form.script_nonce}'" in csp
    assert "form-action 'self'" in csp and "default-src 'none'" in csp
    # Only the authorization response's fields are posted again, plus the marker.
    assert sorted(form.fields) == sorted(
        [
            ("state", params["state"]),
            ("code", "the-code"),
            ("iss", ISSUER),
            (RESUBMITTED, "1"),
        ]
    )
    assert_no_token_request(site)

    r = resubmit(browser, page)
    assert r.status_code == 302
    assert r.headers["Location"] == "/after?x=1"
    assert user_of(browser) == "user-1"
    token = site.storage.get("corp", user="user-1")
    assert token is not None and token["access_token"] == "access-1"
    # PKCE: the verifier of this login went with the code (the IdP checked it).
    idp = t.cast(PKCECheckingIdP, site.idp)
    assert idp.token_forms[0]["code_verifier"]


def test_the_first_post_with_the_cookie_also_leaves_the_session_alone(
    site: Site, browser: FlaskClient
) -> None:
    """A browser that does send the cookie (SameSite=None) gets the same page; the
    pending login stays for the second POST."""
    params = start_login(browser)
    authorize(site, params)
    page = browser.post(
        CALLBACK,
        data={"state": params["state"], "code": "the-code", "iss": ISSUER},
        base_url=BASE_URL,
        headers=CROSS_SITE,
    )
    assert page.status_code == 200 and "Set-Cookie" not in page.headers
    assert resubmit(browser, page).status_code == 302
    assert user_of(browser) == "user-1"


def test_the_user_declining_by_form_post_is_403(
    site: Site, browser: FlaskClient
) -> None:
    params = start_login(browser)
    page = provider_post(
        site,
        {
            "state": params["state"],
            "error": "access_denied",
            "error_description": "The user said no",
        },
    )
    r = resubmit(browser, page)
    assert r.status_code == 403
    assert_no_token_request(site)
    assert_nothing_happened(site, browser)


# ---------------------------------------------------- forged and bad forms


def test_a_forged_resubmission_without_the_cookie_is_400(
    site: Site, browser: FlaskClient
) -> None:
    """A cross-site POST that claims to be the second step carries no cookie: its
    state is nobody's pending login here."""
    params = start_login(browser)
    authorize(site, params)
    r = site.client().post(
        CALLBACK,
        data={"state": params["state"], "code": "the-code", RESUBMITTED: "1"},
        base_url=BASE_URL,
    )
    assert r.status_code == 400
    assert_no_token_request(site)
    assert_nothing_happened(site, browser)


def test_a_resubmission_the_browser_says_came_from_another_site_is_400(
    site: Site, browser: FlaskClient
) -> None:
    params = start_login(browser)
    authorize(site, params)
    r = browser.post(
        CALLBACK,
        data={"state": params["state"], "code": "the-code", RESUBMITTED: "1"},
        base_url=BASE_URL,
        headers=CROSS_SITE,
    )
    assert r.status_code == 400
    assert_no_token_request(site)
    assert_nothing_happened(site, browser)
    # The pending login was not consumed: the real answer still completes it.
    page = provider_post(
        site, {"state": params["state"], "code": "the-code", "iss": ISSUER}
    )
    assert resubmit(browser, page).status_code == 302


def test_login_csrf_with_the_attackers_own_code_is_400(
    site: Site, browser: FlaskClient
) -> None:
    """The attacker logs in in their own browser, stops before the callback, and
    makes the victim's browser post their state and code: the victim's session
    has no such pending login."""
    attacker = site.client()
    attackers = start_login(attacker)
    authorize(site, attackers, code="attackers-code")
    start_login(browser)  # the victim may have a login of their own pending
    page = provider_post(
        site, {"state": attackers["state"], "code": "attackers-code", "iss": ISSUER}
    )
    r = resubmit(browser, page)
    assert r.status_code == 400
    assert_no_token_request(site)
    assert_nothing_happened(site, browser)


def test_a_code_of_another_login_fails_pkce(site: Site, browser: FlaskClient) -> None:
    """A code issued for another authorization request (another PKCE challenge)
    injected with this login's state: the provider refuses the verifier."""
    params = start_login(browser)
    other = start_login(site.client())
    authorize(site, other, code="stolen-code")
    page = provider_post(site, {"state": params["state"], "code": "stolen-code"})
    r = resubmit(browser, page)
    assert r.status_code == 400
    assert_nothing_happened(site, browser)


def test_an_id_token_with_another_nonce_is_refused(
    site: Site, browser: FlaskClient
) -> None:
    params = start_login(browser)
    authorize(site, params)
    site.idp.nonces["the-code"] = "another-login's-nonce"
    page = provider_post(site, {"state": params["state"], "code": "the-code"})
    r = resubmit(browser, page)
    assert r.status_code == 400
    assert_nothing_happened(site, browser)


def test_a_repeated_state_or_code_survives_the_resubmission_and_is_400(
    site: Site, browser: FlaskClient
) -> None:
    params = start_login(browser)
    authorize(site, params)
    page = provider_post(
        site,
        [("state", params["state"]), ("state", "other"), ("code", "the-code")],
    )
    assert page_form(page).fields.count(("state", params["state"])) == 1
    assert ("state", "other") in page_form(page).fields
    assert resubmit(browser, page).status_code == 400
    assert_no_token_request(site)
    assert_nothing_happened(site, browser)


@pytest.mark.parametrize("step", ["provider", "resubmission"])
def test_an_oversized_form_is_400_without_reading_it(
    site: Site, browser: FlaskClient, step: str
) -> None:
    params = start_login(browser)
    authorize(site, params)
    fields = {
        "state": params["state"],
        "code": "the-code",
        "pad": "x" * MAX_QUERY_BYTES,
    }
    if step == "provider":
        r = provider_post(site, fields)
    else:
        r = browser.post(
            CALLBACK,
            data={**fields, RESUBMITTED: "1"},
            base_url=BASE_URL,
            headers=SAME_ORIGIN,
        )
    assert r.status_code == 400
    if step == "provider":
        assert "Set-Cookie" not in r.headers
    assert_no_token_request(site)
    assert_nothing_happened(site, browser)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"state": "s", "code": "c"}', "application/json"),
        (b"state=s&code=c", "text/plain"),
        (b"state=%ff%fe&code=c", "application/x-www-form-urlencoded"),
        (b"state=\xff&code=c", "application/x-www-form-urlencoded"),
        (b"&".join([b"a=1"] * 100), "application/x-www-form-urlencoded"),
    ],
    ids=["json", "text", "not-utf-8", "raw-bytes", "too-many-fields"],
)
def test_a_body_that_is_not_a_small_utf8_form_is_400(
    site: Site, browser: FlaskClient, body: bytes, content_type: str
) -> None:
    start_login(browser)
    r = site.client().post(
        CALLBACK, data=body, content_type=content_type, base_url=BASE_URL
    )
    assert r.status_code == 400
    assert_no_token_request(site)
    assert_nothing_happened(site, browser)


def test_a_multipart_form_is_400(site: Site, browser: FlaskClient) -> None:
    params = start_login(browser)
    r = site.client().post(
        CALLBACK,
        data={"state": params["state"], "code": "c"},
        content_type="multipart/form-data",
        base_url=BASE_URL,
    )
    assert r.status_code == 400


def test_hostile_values_are_escaped_in_the_page(site: Site) -> None:
    hostile = '"><script>alert(1)</script><input name="x'
    page = provider_post(
        site, {"state": hostile, "error_description": "</script><img src=x>"}
    )
    html = page.get_data(as_text=True)
    assert "<script>alert" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&#34;&gt;" in html
    # The browser posts back exactly what the provider sent.
    assert ("state", hostile) in page_form(page).fields


def test_a_get_callback_is_refused_for_a_form_post_provider(
    site: Site, browser: FlaskClient
) -> None:
    params = start_login(browser)
    authorize(site, params)
    r = browser.get(
        CALLBACK,
        query_string={"state": params["state"], "code": "the-code"},
        base_url=BASE_URL,
    )
    assert r.status_code == 400
    assert_no_token_request(site)
    assert_nothing_happened(site, browser)


def test_a_post_callback_is_refused_for_a_query_provider() -> None:
    site = make_site()
    browser = site.client()
    params = start_login(browser)
    assert "response_mode" not in params
    r = browser.post(CALLBACK, data={"state": params["state"]}, base_url=BASE_URL)
    assert r.status_code == 405
    assert_nothing_happened(site, browser)


# ----------------------------------------------------------- configuration


def test_a_provider_that_does_not_list_form_post_is_a_configuration_error() -> None:
    idp = FakeIdP()
    metadata = idp.metadata()
    idp.metadata = lambda: {**metadata, "response_modes_supported": ["query"]}  # type: ignore[method-assign]
    site = make_site(idp, register={"response_mode": "form_post"})
    with pytest.raises(ConfigurationError, match="response_modes_supported"):
        site.client().get("/login/corp", base_url=BASE_URL)


def test_an_unknown_response_mode_is_a_configuration_error() -> None:
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id="c",
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        response_mode="fragment",
    )
    from flask import Flask

    app = Flask("t")
    with pytest.raises(ConfigurationError, match="response_mode"):
        oauth.init_app(app)
