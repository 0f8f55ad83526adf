"""``oauth.<name>.for_app(scope=None)``: the app's own token from the client
credentials grant (RFC 6749 §4.4), against the development provider over loopback
HTTP: fetched on first use, reused until it expires, fetched once under
concurrency, fetched again once on a 401, and the same error answers as every other
call (502/503/504 in a request, exceptions outside)."""

from __future__ import annotations

import threading
import time
import typing as t

import pytest
from flask import Flask
from flask import jsonify
from flask import request
from helpers.live_servers import serve_in_thread

from flask_oauthclient import MemoryStorage
from flask_oauthclient import OAuth
from flask_oauthclient import ProviderError
from flask_oauthclient import ProviderTimeout
from flask_oauthclient import ProviderUnavailable
from flask_oauthclient.app_token import AppClient
from flask_oauthclient.testing import DevProvider


@pytest.fixture(scope="module")
def dev() -> t.Iterator[DevProvider]:
    provider = DevProvider()
    with provider.serve():
        yield provider


@pytest.fixture(autouse=True)
def _fresh(dev: DevProvider) -> t.Iterator[None]:
    dev.reset_stats()
    yield
    dev.token_delay = 0.0
    dev.access_token_ttl = 3600


def make_app(dev: DevProvider, **register: t.Any) -> tuple[Flask, OAuth]:
    oauth = OAuth()
    settings: dict[str, t.Any] = dict(
        client_id="dev-client",
        client_secret="dev-secret",
        server_metadata_url=dev.metadata_url,
        scope=["openid", "email"],
        api_base_url=dev.issuer + "/api/",
    )
    settings.update(register)
    oauth.register("dev", **settings)
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="test",
        OAUTHCLIENT_INSECURE_TRANSPORT=True,
        OAUTHCLIENT_TIMEOUT=2,
    )
    oauth.init_app(app, storage=MemoryStorage())

    @app.get("/report")
    def report() -> t.Any:
        r = oauth.dev.for_app().get("reports/daily")
        return jsonify(status=r.status_code, **r.json())

    return app, oauth


def fetches(dev: DevProvider) -> int:
    return dev.stats["token_client_credentials"]


def test_the_app_token_is_fetched_once_and_reused(dev: DevProvider) -> None:
    app, oauth = make_app(dev)
    with app.app_context():
        client = oauth.dev.for_app()
        assert isinstance(client, AppClient)
        r = client.get("reports/daily", params={"day": "monday"})
        body = r.json()
        assert (body["sub"], body["client_id"]) == ("dev-client", "dev-client")
        assert (body["path"], body["args"]) == ("reports/daily", {"day": "monday"})
        for method in ("post", "put", "patch", "delete"):
            r = getattr(oauth.dev.for_app(), method)("items/1", json={"n": 1})
            assert r.json()["method"] == method.upper()
        token = oauth.dev.for_app().token
        assert token["access_token"] and token["expires_at"] > time.time()
    assert fetches(dev) == 1
    assert dev.stats["api"] == 5


def test_the_app_token_from_a_view(dev: DevProvider) -> None:
    app, _ = make_app(dev)
    client = app.test_client()
    for _ in range(3):
        r = client.get("/report")
        assert r.status_code == 200 and r.json is not None
        assert r.json["sub"] == "dev-client"
    assert fetches(dev) == 1


def test_each_scope_has_its_own_token(dev: DevProvider) -> None:
    app, oauth = make_app(dev)
    with app.app_context():
        a = oauth.dev.for_app(scope="reports.read audit").get("x").json()
        b = oauth.dev.for_app(scope=["audit", "reports.read"]).get("x").json()
        c = oauth.dev.for_app(scope="reports.read").get("x").json()
        d = oauth.dev.for_app().get("x").json()
    assert (
        set(a["scope"].split())
        == set(b["scope"].split())
        == {
            "reports.read",
            "audit",
        }
    )
    assert c["scope"] == "reports.read"
    assert d["scope"] == ""
    assert fetches(dev) == 3


def test_each_app_has_its_own_token(dev: DevProvider) -> None:
    first, oauth1 = make_app(dev)
    second, oauth2 = make_app(dev)
    with first.app_context():
        one = oauth1.dev.for_app().token
    with second.app_context():
        two = oauth2.dev.for_app().token
    with first.app_context():
        assert oauth1.dev.for_app().token == one
    assert one["access_token"] != two["access_token"]
    assert fetches(dev) == 2


def test_many_threads_at_once_cause_one_fetch(dev: DevProvider) -> None:
    dev.token_delay = 0.3
    app, oauth = make_app(dev)
    barrier = threading.Barrier(16)
    subs: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with app.app_context():
                barrier.wait(10)
                subs.append(oauth.dev.for_app().get("whoami").json()["sub"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert subs == ["dev-client"] * 16
    assert fetches(dev) == 1


def test_a_token_about_to_expire_is_fetched_again(dev: DevProvider) -> None:
    """A token of 2 s: the leeway is at most half its life, so it serves for about
    a second, then a new one is fetched (oauthlib rounds ``expires_at`` to the
    second: 1.6 s covers that and stays inside the token's life)."""
    dev.access_token_ttl = 2
    app, oauth = make_app(dev)
    with app.app_context():
        first = oauth.dev.for_app().token
        assert oauth.dev.for_app().token == first
        assert fetches(dev) == 1
        time.sleep(1.6)
        second = oauth.dev.for_app().token
        assert second["access_token"] != first["access_token"]
        assert oauth.dev.for_app().get("whoami").status_code == 200
    assert fetches(dev) == 2


def test_a_401_fetches_a_new_token_once_and_retries_once(dev: DevProvider) -> None:
    app, oauth = make_app(dev)
    with app.app_context():
        before = oauth.dev.for_app().token
        dev.expire_access_tokens()  # revoked early, as far as the app can tell
        r = oauth.dev.for_app().post("items", data={"a": "1"})
        assert r.status_code == 200 and r.json()["sub"] == "dev-client"
        assert oauth.dev.for_app().token["access_token"] != before["access_token"]
    assert fetches(dev) == 2
    assert dev.stats["api"] == 2


def test_threads_that_all_get_a_401_fetch_one_new_token(dev: DevProvider) -> None:
    app, oauth = make_app(dev)
    with app.app_context():
        _ = oauth.dev.for_app().token
    dev.expire_access_tokens()
    dev.token_delay = 0.2
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def call() -> None:
        with app.app_context():
            barrier.wait(10)
            statuses.append(oauth.dev.for_app().get("whoami").status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * 8
    assert fetches(dev) == 2


def test_a_second_401_is_returned_not_looped(dev: DevProvider) -> None:
    """An API that refuses every token: one new token, one retry, and the 401 is the
    caller's."""
    refusing = Flask("refusing")
    seen: list[str] = []

    @refusing.get("/api/<path:path>")
    def refuse(path: str) -> t.Any:
        seen.append(request.headers.get("Authorization", ""))
        return jsonify(error="invalid_token"), 401

    app, oauth = make_app(dev)
    with serve_in_thread(refusing) as base, app.app_context():
        r = oauth.dev.for_app().get(f"{base}/api/x")
    assert r.status_code == 401
    assert len(seen) == 2 and seen[0] != seen[1]
    assert all(h.startswith("Bearer ") for h in seen)
    assert fetches(dev) == 2


def test_fetch_token_replaces_the_token_now(dev: DevProvider) -> None:
    app, oauth = make_app(dev)
    with app.app_context():
        first = oauth.dev.for_app().token
        second = oauth.dev.for_app().fetch_token()
        assert second["access_token"] != first["access_token"]
        assert oauth.dev.for_app().token == second
    assert fetches(dev) == 2


def test_client_secret_post(dev: DevProvider) -> None:
    app, oauth = make_app(dev, token_endpoint_auth_method="client_secret_post")
    with app.app_context():
        assert oauth.dev.for_app().get("whoami").json()["sub"] == "dev-client"


# -- errors -----------------------------------------------------------------------


def test_a_refused_grant_is_a_provider_error_outside_and_a_502_inside(
    dev: DevProvider,
) -> None:
    app, oauth = make_app(dev, client_secret="wrong")
    with app.app_context():
        with pytest.raises(ProviderError, match="invalid_client") as caught:
            oauth.dev.for_app().get("whoami")
        assert caught.value.provider == "dev"
    r = app.test_client().get("/report", headers={"Accept": "application/json"})
    assert r.status_code == 502
    assert r.json is not None and r.json["error"] == "provider_error"
    assert r.json["error_description"] == ProviderError.refused_description
    assert "wrong" not in r.get_data(as_text=True)
    r = app.test_client().get("/report")
    assert r.status_code == 502 and "Provider error" in r.get_data(as_text=True)


def test_threads_waiting_for_a_failed_fetch_share_its_error(dev: DevProvider) -> None:
    dev.token_delay = 0.3
    app, oauth = make_app(dev, client_secret="wrong")
    barrier = threading.Barrier(8)
    failures: list[type[BaseException]] = []

    def call() -> None:
        with app.app_context():
            barrier.wait(10)
            try:
                oauth.dev.for_app().get("whoami")
            except ProviderError as e:
                failures.append(type(e))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == [ProviderError] * 8
    assert fetches(dev) == 1
    # A later call tries again.
    dev.token_delay = 0.0
    with app.app_context(), pytest.raises(ProviderError):
        _ = oauth.dev.for_app().token
    assert fetches(dev) == 2


def test_an_unreachable_provider_is_a_503(dev: DevProvider) -> None:
    app, oauth = make_app(
        dev,
        server_metadata_url=None,
        authorize_url="http://127.0.0.1:1/authorize",
        token_url="http://127.0.0.1:1/token",
    )
    with app.app_context(), pytest.raises(ProviderUnavailable):
        _ = oauth.dev.for_app().token
    r = app.test_client().get("/report", headers={"Accept": "application/json"})
    assert r.status_code == 503


def test_a_slow_provider_is_a_504(dev: DevProvider) -> None:
    dev.token_delay = 3  # past OAUTHCLIENT_TIMEOUT = 2
    app, oauth = make_app(dev)
    with app.app_context(), pytest.raises(ProviderTimeout):
        _ = oauth.dev.for_app().token
    r = app.test_client().get("/report", headers={"Accept": "application/json"})
    assert r.status_code == 504


def test_api_failures_are_translated(dev: DevProvider) -> None:
    app, oauth = make_app(dev)
    with app.app_context():
        _ = oauth.dev.for_app().token
        with pytest.raises(ProviderUnavailable):
            oauth.dev.for_app().get("http://127.0.0.1:1/api/x")


def test_outside_an_app_context_the_error_says_so(dev: DevProvider) -> None:
    _, oauth = make_app(dev)
    with pytest.raises(RuntimeError, match="application context"):
        _ = oauth.dev.for_app().token
