from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from flask_oauthclient import ConfigurationError
from flask_oauthclient import InsecureTransportError
from flask_oauthclient import OAuth
from flask_oauthclient import UnknownProviderError
from flask_oauthclient.storage import MemoryStorage
from flask_oauthclient.storage import SessionStorage

ENDPOINTS = {
    "authorize_url": "https://idp.example/authorize",
    "token_url": "https://idp.example/token",
}


def make_oauth(**config: object) -> OAuth:
    oauth = OAuth()
    oauth.register(
        "corp", client_id="id", client_secret="secret", **ENDPOINTS, **config
    )
    return oauth


def test_init_app_records_itself(app: Flask) -> None:
    oauth = make_oauth()
    oauth.init_app(app)
    state = app.extensions["oauthclient"]
    assert state.owner is oauth
    assert isinstance(state.storage, SessionStorage)
    assert "corp.login" in app.view_functions
    assert "corp.authorized" in app.view_functions
    rules = {r.endpoint: r.rule for r in app.url_map.iter_rules()}
    assert rules["corp.login"] == "/login/corp"
    assert rules["corp.authorized"] == "/login/corp/authorized"


def test_constructor_with_app(app: Flask) -> None:
    oauth = OAuth(app)
    assert app.extensions["oauthclient"].owner is oauth


def test_double_registration_is_refused(app: Flask) -> None:
    oauth = make_oauth()
    oauth.init_app(app)
    with pytest.raises(RuntimeError, match="already been registered"):
        oauth.init_app(app)


def test_app_factory_two_apps_one_extension() -> None:
    oauth = make_oauth()
    apps = []
    for prefix in ("/auth", "/sso"):
        app = Flask(__name__)
        app.config.update(SECRET_KEY="k", OAUTHCLIENT_URL_PREFIX=prefix)
        oauth.init_app(app, storage=MemoryStorage())
        apps.append(app)
    rules = [
        {r.endpoint: r.rule for r in app.url_map.iter_rules()}["corp.login"]
        for app in apps
    ]
    assert rules == ["/auth/corp", "/sso/corp"]
    assert apps[0].extensions["oauthclient"] is not apps[1].extensions["oauthclient"]
    with apps[1].test_request_context():
        assert oauth.corp.storage is apps[1].extensions["oauthclient"].storage


def test_config_is_read_once_in_init_app(app: Flask) -> None:
    app.config["OAUTHCLIENT_TIMEOUT"] = 3
    oauth = make_oauth()
    oauth.init_app(app)
    app.config["OAUTHCLIENT_TIMEOUT"] = 99
    assert app.extensions["oauthclient"].settings.timeout == 3.0
    assert app.config["OAUTHCLIENT_STATE_TTL"] == 600


def test_provider_access_by_attribute_and_item() -> None:
    oauth = make_oauth()
    assert oauth.corp is oauth["corp"]
    assert "corp" in oauth
    assert [p.name for p in oauth] == ["corp"]


def test_unknown_provider_lists_registered_ones() -> None:
    oauth = make_oauth()
    with pytest.raises(UnknownProviderError, match="registered: corp"):
        oauth.nope  # noqa: B018
    with pytest.raises(KeyError):
        oauth["nope"]


def test_register_checks_its_arguments(app: Flask) -> None:
    oauth = make_oauth()
    with pytest.raises(ValueError, match="already registered"):
        oauth.register("corp", client_id="x", **ENDPOINTS)
    with pytest.raises(ValueError, match="identifier"):
        oauth.register("my-idp", client_id="x", **ENDPOINTS)
    with pytest.raises(TypeError, match="authorise_url"):
        oauth.register("other", client_id="x", authorise_url="https://x")
    oauth.init_app(app)
    with pytest.raises(RuntimeError, match="before initializing"):
        oauth.register("late", client_id="x", **ENDPOINTS)


def test_credentials_from_app_config(app: Flask) -> None:
    oauth = OAuth()
    oauth.register("corp", **ENDPOINTS)
    app.config["OAUTHCLIENT_CORP_CLIENT_ID"] = "from-config"
    app.config["OAUTHCLIENT_CORP_CLIENT_SECRET"] = "s3cret"
    oauth.init_app(app)
    ap = app.extensions["oauthclient"].providers["corp"]
    assert (ap.client_id, ap.client_secret) == ("from-config", "s3cret")


def test_missing_client_id_says_how_to_fix(app: Flask) -> None:
    oauth = OAuth()
    oauth.register("corp", **ENDPOINTS)
    with pytest.raises(ConfigurationError, match="OAUTHCLIENT_CORP_CLIENT_ID"):
        oauth.init_app(app)


def test_missing_endpoints_are_a_configuration_error(app: Flask) -> None:
    oauth = OAuth()
    oauth.register("corp", client_id="x")
    with pytest.raises(ConfigurationError, match="server_metadata_url"):
        oauth.init_app(app)


def test_plain_http_is_refused_without_the_flag(app: Flask) -> None:
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id="x",
        authorize_url="http://idp.example/authorize",
        token_url="https://idp.example/token",
    )
    with pytest.raises(InsecureTransportError, match="OAUTHCLIENT_INSECURE_TRANSPORT"):
        oauth.init_app(app)


def test_plain_http_callback_is_refused_without_the_flag(app: Flask) -> None:
    oauth = make_oauth()
    oauth.init_app(app)
    client = app.test_client()
    with pytest.raises(InsecureTransportError, match="not https"):
        client.get("/login/corp")


def test_preset_fills_in_endpoints_and_register_overrides(app: Flask) -> None:
    oauth = OAuth()
    google = oauth.register("google", client_id="g", scope=["openid", "email"])
    assert google.config["server_metadata_url"].startswith("https://accounts.google")
    assert google.config["scope"] == ["openid", "email"]
    assert google.config["authorize_params"]["access_type"] == "offline"
    assert google.title == "Google"


def test_providers_outside_an_initialized_app() -> None:
    oauth = make_oauth()
    app = Flask(__name__)
    with (
        app.test_request_context(),
        pytest.raises(ConfigurationError, match="init_app"),
    ):
        oauth.corp.token  # noqa: B018


def test_every_config_key_is_documented() -> None:
    from flask_oauthclient.settings import CONFIG_DEFAULTS

    docs = (Path(__file__).parent.parent / "docs" / "config.rst").read_text()
    missing = [key for key in CONFIG_DEFAULTS if f".. py:data:: {key}" not in docs]
    assert missing == []


def test_every_per_provider_config_key_is_documented() -> None:
    """The ``OAUTHCLIENT_<NAME>_*`` keys a provider reads from the app config (as
    ``prefix + "KEY"`` in app_provider.py) each have an entry in config.rst."""
    root = Path(__file__).parent.parent
    source = (root / "flask_oauthclient" / "app_provider.py").read_text()
    keys = set(re.findall(r'prefix \+ "([A-Z_]+)"', source))
    assert {"CLIENT_ID", "CLIENT_SECRET", "CLIENT_PRIVATE_KEY"} <= keys
    docs = (root / "docs" / "config.rst").read_text()
    documented = set(re.findall(r"OAUTHCLIENT_<NAME>_([A-Z_]+)", docs))
    assert sorted(keys - documented) == []
