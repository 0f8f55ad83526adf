"""The pytest plugin we ship for our users' test suites (``oauth_login``,
``oauth_mock_api``, ``oauth_dev_provider``, ``oauth_dev_login``), run as a user would
run it: in a test suite of its own, through pytester."""

from __future__ import annotations

import textwrap
import typing as t
from pathlib import Path

import pytest
import requests
from flask import Flask

from flask_oauthclient import OAuth
from flask_oauthclient.testing.pytest_plugin import login
from flask_oauthclient.testing.pytest_plugin import MockAPI
from flask_oauthclient.testing.pytest_plugin import UnmatchedRequest

pytest_plugins = ["pytester"]

#: Only the plugins a user's suite needs: pytest-playwright (installed for the e2e
#: tests) refuses to nest in-process, and the others cost seconds per run.
INNER_ARGS = (
    "-p", "no:cacheprovider", "-p", "no:playwright", "-p", "no:hypothesispytest",
    "-p", "no:pytest_flask_dance", "-W", "error",
)  # fmt: skip

#: A user's app: GitHub login, Flask-Login, tokens in the Flask session (default) or
#: in memory, and a protected view that calls GitHub's API.
CONFTEST = """
import pytest
from flask import Flask, jsonify
from flask_login import LoginManager, UserMixin, login_required

from flask_oauthclient import OAuth
from flask_oauthclient.storage import MemoryStorage


class User(UserMixin):
    def __init__(self, id):
        self.id = id


USERS = {"1": User("1"), "2": User("2")}


def create_app(storage=None):
    oauth = OAuth()
    oauth.register("github", client_id="id", client_secret="secret")
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="test")
    LoginManager(app).user_loader(USERS.get)
    oauth.init_app(app, storage=storage)

    @app.get("/profile")
    @login_required
    def profile():
        return jsonify(oauth.github.get("user").json())

    @app.get("/repos")
    @login_required
    def repos():
        r = oauth.github.get("user/repos", params={"per_page": 2})
        return jsonify(status=r.status_code, body=r.json())

    return app


@pytest.fixture(params=["session", "memory"])
def app(request):
    if request.param == "memory":
        from flask_login import current_user

        return create_app(MemoryStorage(user=lambda: current_user.get_id()))
    return create_app()


@pytest.fixture
def user():
    return USERS["1"]
"""


def inner_run(pytester: pytest.Pytester, *, subprocess: bool) -> pytest.RunResult:
    # SQLAlchemy imports modules lazily, which an in-process run drops again when it
    # restores sys.modules: suites that use a database run in a process of their own.
    if subprocess:
        return pytester.runpytest_subprocess(*INNER_ARGS)
    return pytester.runpytest_inprocess(*INNER_ARGS)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


def run(
    pytester: pytest.Pytester,
    test: str,
    passed: int,
    *,
    subprocess: bool = False,
    **outcomes: int,
) -> str:
    pytester.makepyfile(test_user=textwrap.dedent(test))
    result = inner_run(pytester, subprocess=subprocess)
    result.assert_outcomes(passed=passed, **outcomes)
    return str(result.stdout)


def test_a_protected_view_in_five_lines(suite: pytest.Pytester) -> None:
    run(
        suite,
        """
        def test_profile(client, user, oauth_login, oauth_mock_api):
            oauth_login(client, user, "github")
            oauth_mock_api("github", "GET", "user", json={"login": "octocat"})
            r = client.get("/profile")
            assert r.json == {"login": "octocat"}
        """,
        passed=2,
    )


def test_without_login_the_view_refuses(suite: pytest.Pytester) -> None:
    run(
        suite,
        """
        def test_anonymous(client, oauth_mock_api):
            oauth_mock_api("github", "GET", "user", json={"login": "octocat"})
            assert client.get("/profile").status_code == 401
        """,
        passed=2,
    )


def test_login_stores_the_token_given_for_that_user(suite: pytest.Pytester) -> None:
    run(
        suite,
        """
        from conftest import USERS

        def test_token(app, client, oauth_login, oauth_mock_api):
            token = oauth_login(client, USERS["2"], "github",
                                token={"access_token": "abc", "token_type": "Bearer"})
            assert token == {"access_token": "abc", "token_type": "Bearer"}
            canned = oauth_mock_api("github", "GET", "user", json={"id": 2})
            assert client.get("/profile").json == {"id": 2}
            (sent,) = canned.calls
            assert sent.headers["Authorization"] == "Bearer abc"
        """,
        passed=2,
    )


def test_canned_answers_in_turn_and_the_query_string(suite: pytest.Pytester) -> None:
    run(
        suite,
        """
        def test_turns(client, user, oauth_login, oauth_mock_api):
            oauth_login(client, user, "github")
            oauth_mock_api("github", "GET", "user/repos?per_page=2", status=429,
                           json={"message": "slow down"})
            oauth_mock_api("github", "GET", "user/repos?per_page=2", json=[1, 2])
            first = client.get("/repos").json
            assert first == {"status": 429, "body": {"message": "slow down"}}
            assert client.get("/repos").json == {"status": 200, "body": [1, 2]}
            # The last answer repeats.
            assert client.get("/repos").json == {"status": 200, "body": [1, 2]}
            assert len(oauth_mock_api.calls) == 3
        """,
        passed=2,
    )


def test_a_401_is_refreshed_and_retried(suite: pytest.Pytester) -> None:
    run(
        suite,
        """
        from flask_oauthclient.testing.pytest_plugin import make_token

        def test_retry(client, user, oauth_login, oauth_mock_api):
            oauth_login(client, user, "github", token=make_token(access_token="old"))
            oauth_mock_api("github", "GET", "user", status=401, json={})
            oauth_mock_api("github", "GET", "user", json={"login": "octocat"})
            token = oauth_mock_api(
                "github", "POST", "https://github.com/login/oauth/access_token",
                json={"access_token": "new", "token_type": "bearer",
                      "expires_in": 3600},
            )
            assert client.get("/profile").json == {"login": "octocat"}
            assert len(token.calls) == 1
            last = oauth_mock_api.calls[-1][1]
            assert last.headers["Authorization"] == "Bearer new"
        """,
        passed=2,
    )


def test_a_call_without_a_canned_answer_fails_the_test(
    suite: pytest.Pytester,
) -> None:
    output = run(
        suite,
        """
        def test_unmatched(client, user, oauth_login, oauth_mock_api):
            oauth_login(client, user, "github")
            oauth_mock_api("github", "GET", "user/emails", json=[])
            client.get("/profile")
        """,
        passed=0,
        failed=2,
    )
    assert "UnmatchedRequest" in output
    assert "No canned response for GET https://api.github.com/user" in output
    assert "GET https://api.github.com/user/emails" in output


def test_unknown_provider_is_named(suite: pytest.Pytester) -> None:
    output = run(
        suite,
        """
        def test_typo(client, user, oauth_login):
            oauth_login(client, user, "githbu")
        """,
        passed=0,
        failed=2,
    )
    assert "No provider named 'githbu' is registered (registered: github)" in output


def test_login_survives_strong_session_protection(suite: pytest.Pytester) -> None:
    run(
        suite,
        """
        def test_strong(app, client, user, oauth_login, oauth_mock_api):
            app.login_manager.session_protection = "strong"
            oauth_login(client, user, "github")
            oauth_mock_api("github", "GET", "user", json={"login": "octocat"})
            assert client.get("/profile").status_code == 200
        """,
        passed=2,
    )


def test_sqlalchemy_storage(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from flask import Flask, jsonify
        from flask_login import LoginManager, UserMixin, current_user, login_required
        from flask_sqlalchemy import SQLAlchemy

        from flask_oauthclient import OAuth
        from flask_oauthclient.sqla import OAuthTokenMixin, SQLAlchemyStorage

        db = SQLAlchemy()
        oauth = OAuth()
        oauth.register(
            "corp",
            client_id="id",
            client_secret="secret",
            authorize_url="https://idp.example/authorize",
            token_url="https://idp.example/token",
            api_base_url="https://api.idp.example/v1/",
        )


        class User(db.Model, UserMixin):
            id = db.Column(db.Integer, primary_key=True)


        class OAuthToken(OAuthTokenMixin, db.Model):
            user_id = db.Column(db.ForeignKey(User.id), nullable=False)
            user = db.relationship(User)


        @pytest.fixture
        def app(tmp_path):
            app = Flask(__name__)
            app.config.update(
                TESTING=True,
                SECRET_KEY="test",
                SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.sqlite'}",
            )
            db.init_app(app)
            LoginManager(app).user_loader(lambda id: db.session.get(User, int(id)))
            oauth.init_app(
                app,
                storage=SQLAlchemyStorage(
                    OAuthToken, db.session, user=lambda: current_user
                ),
            )

            @app.get("/me")
            @login_required
            def me():
                return jsonify(oauth.corp.get("me").json())

            with app.app_context():
                db.create_all()
            return app


        @pytest.fixture
        def user(app):
            user = User()
            db.session.add(user)
            db.session.commit()
            return user
        """
    )
    run(
        pytester,
        """
        from conftest import OAuthToken, db

        def test_me(client, user, oauth_login, oauth_mock_api):
            oauth_login(client, user, "corp")
            oauth_mock_api("corp", "GET", "me", json={"sub": "u1"})
            assert client.get("/me").json == {"sub": "u1"}
            row = db.session.scalars(db.select(OAuthToken)).one()
            assert row.user_id == user.id and row.provider == "corp"
        """,
        passed=1,
        subprocess=True,
    )


def test_a_real_login_through_the_development_provider(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import pytest
        from flask import Flask, jsonify
        from flask_login import LoginManager, UserMixin, login_required

        from flask_oauthclient import OAuth
        from flask_oauthclient.storage import MemoryStorage


        class User(UserMixin):
            def __init__(self, id, name):
                self.id = id
                self.name = name


        @pytest.fixture
        def app(oauth_dev_provider):
            users = {}
            oauth = OAuth()
            oauth.register(
                "dev",
                client_id="dev-client",
                client_secret="dev-secret",
                server_metadata_url=oauth_dev_provider.metadata_url,
                scope=["openid", "email", "profile", "offline_access"],
                api_base_url=oauth_dev_provider.issuer + "/",
            )

            @oauth.on_login
            def on_login(provider, token, userinfo):
                return users.setdefault(
                    userinfo["sub"], User(userinfo["sub"], userinfo["name"])
                )

            app = Flask(__name__)
            app.config.update(
                TESTING=True, SECRET_KEY="test", OAUTHCLIENT_INSECURE_TRANSPORT=True
            )
            LoginManager(app).user_loader(users.get)
            oauth.init_app(app)

            @app.get("/profile")
            @login_required
            def profile():
                return jsonify(oauth.dev.get("userinfo").json())

            @app.get("/api")
            @login_required
            def api():
                return jsonify(oauth.dev.get("api/things").json())

            return app
        """
    )
    run(
        pytester,
        """
        def test_login(client, oauth_dev_login):
            r = oauth_dev_login(client, "dev", "alice", next="/profile")
            assert (r.status_code, r.headers["Location"]) == (302, "/profile")
            assert client.get("/profile").json["name"] == "Alice"

        def test_mock_one_call_let_others_through(
            client, oauth_dev_login, oauth_mock_api
        ):
            oauth_dev_login(client, "dev", "bob")
            oauth_mock_api.passthrough = True
            oauth_mock_api("dev", "GET", "api/things", json=["canned"])
            assert client.get("/api").json == ["canned"]
            assert client.get("/profile").json["sub"] == "bob"
        """,
        passed=2,
    )


#: An app factory for the development provider tests: one provider, "dev",
#: registered against the DevProvider given.
DEV_APP = """
import pytest
from flask import Flask, jsonify
from flask_login import LoginManager, UserMixin, login_required

from flask_oauthclient import OAuth


class User(UserMixin):
    def __init__(self, id):
        self.id = id


def create_app(dev):
    users = {}
    oauth = OAuth()
    oauth.register(
        "dev",
        client_id="dev-client",
        client_secret="dev-secret",
        server_metadata_url=dev.metadata_url,
        scope=["openid", "profile", "offline_access"],
        api_base_url=dev.issuer + "/",
    )
    oauth.on_login(
        lambda p, token, info: users.setdefault(info["sub"], User(info["sub"]))
    )
    app = Flask(__name__)
    app.config.update(
        TESTING=True, SECRET_KEY="test", OAUTHCLIENT_INSECURE_TRANSPORT=True
    )
    LoginManager(app).user_loader(users.get)
    oauth.init_app(app)

    @app.get("/api")
    @login_required
    def api():
        return jsonify(oauth.dev.get("api/things").json())

    return app
"""


def test_dev_login_at_a_provider_of_ones_own(pytester: pytest.Pytester) -> None:
    """oauth_dev_login signs in at the DevProvider the login goes to, not only at
    the session's oauth_dev_provider (it failed with "answered 200", the other
    provider's sign-in page)."""
    pytester.makeconftest(DEV_APP)
    run(
        pytester,
        """
        import pytest
        from conftest import create_app
        from flask_oauthclient.testing import DevProvider

        @pytest.fixture(scope="module")
        def own_provider():
            # 60 s: tokens shorter than the refresh leeway (30 s) are another story.
            provider = DevProvider(access_token_ttl=60, revoke_grant_on_reuse=True)
            with provider.serve():
                yield provider

        def test_own(own_provider, oauth_dev_login):
            client = create_app(own_provider).test_client()
            r = oauth_dev_login(client, "dev", "carol", next="/api")
            assert (r.status_code, r.headers["Location"]) == (302, "/api")
            assert client.get("/api").json["sub"] == "carol"
            assert own_provider.stats["token_authorization_code"] == 1
            assert own_provider.auto_login is None  # put back

        def test_both_in_one_test(own_provider, oauth_dev_provider, oauth_dev_login):
            own = create_app(own_provider).test_client()
            shared = create_app(oauth_dev_provider).test_client()
            oauth_dev_login(own, "dev", "dave")
            oauth_dev_login(shared, "dev", "erin")
            assert own.get("/api").json["sub"] == "dave"
            assert shared.get("/api").json["sub"] == "erin"

        def test_dev_names_the_provider(own_provider, oauth_dev_login):
            client = create_app(own_provider).test_client()
            oauth_dev_login(client, "dev", "frank", dev=own_provider)
            assert client.get("/api").json["sub"] == "frank"
        """,
        passed=3,
    )


def test_dev_login_where_no_dev_provider_is_served(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(DEV_APP)
    output = run(
        pytester,
        """
        from conftest import create_app
        from flask_oauthclient.testing import DevProvider

        def test_stopped(oauth_dev_login):
            provider = DevProvider()
            with provider.serve():
                client = create_app(provider).test_client()
                client.get("/login/dev")  # discovery, while it serves
            oauth_dev_login(client, "dev", "gina")
        """,
        passed=0,
        failed=1,
    )
    assert "where no DevProvider is served in this process" in output


def test_served_at_finds_a_provider_while_it_serves() -> None:
    from flask_oauthclient.testing import DevProvider

    first, second = DevProvider(), DevProvider(issuer="http://localhost:1/realm")
    with first.serve() as first_url, second.serve() as second_url:
        assert DevProvider.served_at(first_url) is first
        assert DevProvider.served_at(first_url + "/authorize?x=1") is first
        assert DevProvider.served_at(first.metadata_url) is first
        # Its issuer and the URL it is served at.
        assert DevProvider.served_at("http://LOCALHOST:1/realm/authorize") is second
        assert DevProvider.served_at(second_url + "/token") is second
        assert DevProvider.served_at("http://localhost:1/realmless") is None
        assert DevProvider.served_at("http://localhost:1/") is None
        assert DevProvider.served_at("https://" + first_url[len("http://") :]) is None
    assert DevProvider.served_at(first_url) is None
    assert DevProvider.served_at("http://localhost:1/realm") is None


def test_the_mock_is_removed_after_the_test(app: Flask) -> None:
    app.config["SERVER_NAME"] = "app.test"
    oauth = OAuth()
    oauth.register("github", client_id="id", client_secret="secret")
    oauth.init_app(app)
    ap = app.extensions["oauthclient"].providers["github"]
    adapter, http_adapter = ap.adapter, ap.http.get_adapter("https://api.github.com")
    mock = MockAPI(lambda: app)
    mock("github", "GET", "user", json={})
    assert ap.adapter is not adapter
    with pytest.raises(UnmatchedRequest):
        ap.http.get("https://api.github.com/other")
    mock.remove()
    assert ap.adapter is adapter
    assert ap.http.get_adapter("https://api.github.com") is http_adapter
    assert isinstance(ap.http, requests.Session)


def test_relative_url_needs_an_api_base_url(app: Flask) -> None:
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id="id",
        authorize_url="https://idp.example/authorize",
        token_url="https://idp.example/token",
    )
    oauth.init_app(app)
    mock = MockAPI(lambda: app)
    with pytest.raises(ValueError, match="has no api_base_url"):
        mock("corp", "GET", "me", json={})
    mock("corp", "GET", "https://api.idp.example/me", json={})
    mock.remove()


def test_the_examples_of_the_testing_docs(pytester: pytest.Pytester) -> None:
    """docs/testing.rst includes these files: they must pass as they are."""
    examples = Path(__file__).parent.parent / "docs" / "examples" / "testing"
    for source in examples.glob("*.py"):
        (pytester.path / source.name).write_text(source.read_text())
    result = inner_run(pytester, subprocess=True)
    result.assert_outcomes(passed=7)


def test_an_api_call_with_a_valid_token_needs_no_discovery(app: Flask) -> None:
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id="id",
        client_secret="secret",
        server_metadata_url="https://idp.example/.well-known/openid-configuration",
        scope=["openid"],
        api_base_url="https://api.idp.example/",
    )
    oauth.init_app(app)

    @app.get("/me")
    def me() -> t.Any:
        return oauth.corp.get("me").json()

    client = app.test_client()
    login(client, None, "corp")
    mock = MockAPI(lambda: app)
    mock("corp", "GET", "me", json={"sub": "u1"})
    try:
        # The mock fails on any other request, the discovery document included.
        assert client.get("/me").json == {"sub": "u1"}
        assert [r.url for _, r in mock.calls] == ["https://api.idp.example/me"]
    finally:
        mock.remove()
