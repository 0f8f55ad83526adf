"""The :class:`OAuth` extension: the provider registry and the per-app state."""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass
from dataclasses import field

from flask import current_app
from flask import Flask
from flask import session

from . import redaction
from .encryption import cipher_from_config
from .encryption import TokenCipher
from .errors import ConfigurationError
from .errors import OAuthClientError
from .errors import UnknownProviderError
from .provider import AppProvider
from .provider import Provider
from .provider import REGISTER_DEFAULTS
from .providers import get_preset
from .storage.base import BaseStorage
from .storage.session import SessionStorage

#: ``on_login(provider, token, userinfo)``: the user to log in, a response, or None.
LoginHandler = t.Callable[[Provider, dict[str, t.Any], dict[str, t.Any]], t.Any]

#: Every configuration key and its default; documented in docs/config.rst.
CONFIG_DEFAULTS: dict[str, t.Any] = {
    "OAUTHCLIENT_URL_PREFIX": "/login",
    "OAUTHCLIENT_INSECURE_TRANSPORT": False,
    "OAUTHCLIENT_TIMEOUT": 10.0,
    "OAUTHCLIENT_STATE_TTL": 600,
    "OAUTHCLIENT_MAX_PENDING_LOGINS": 5,
    "OAUTHCLIENT_LOGIN_REDIRECT": "/",
    "OAUTHCLIENT_REFRESH_LEEWAY": 30,
    "OAUTHCLIENT_ID_TOKEN_LEEWAY": 60,
    "OAUTHCLIENT_METADATA_TTL": 3600,
    "OAUTHCLIENT_POOL_MAXSIZE": 10,
    "OAUTHCLIENT_LOGOUT_URL": "/logout",
    "OAUTHCLIENT_LOGOUT_REDIRECT": "/",
    "OAUTHCLIENT_REVOKE_ON_LOGOUT": True,
    "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS": None,
    "OAUTHCLIENT_LINK_BY_VERIFIED_EMAIL": False,
}


@dataclass
class _State:
    """What the extension keeps per app, in ``app.extensions["oauthclient"]``."""

    ext: OAuth
    storage: BaseStorage
    config: t.Mapping[str, t.Any]
    url_prefix: str
    insecure_transport: bool
    timeout: float
    state_ttl: float
    max_pending: int
    login_redirect: str
    refresh_leeway: float
    id_token_leeway: float
    metadata_ttl: float
    pool_maxsize: int
    logout_url: str | None
    logout_redirect: str
    revoke_on_logout: bool
    #: Encrypts tokens at rest; ``None`` without ``OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS``.
    cipher: TokenCipher | None = None
    link_by_verified_email: bool = False
    providers: dict[str, AppProvider] = field(default_factory=dict)


class OAuth:
    """Log users in with OAuth 2.0 / OpenID Connect providers.

    .. code-block:: python

        oauth = OAuth()
        oauth.register("google")
        oauth.init_app(app, storage=SQLAlchemyStorage(OAuthToken, db.session, user=...))

    :param app: call :meth:`init_app` on this app right away.
    :param options: defaults for :meth:`init_app`'s keywords.

    .. versionadded:: 0.1
    """

    def __init__(self, app: Flask | None = None, **options: t.Any) -> None:
        self._configs: dict[str, dict[str, t.Any]] = {}
        self.providers: dict[str, Provider] = {}
        self._login_handler: LoginHandler | None = None
        self._other_login: t.Callable[[t.Any], bool] | None = None
        self._options = options
        self._initialized = False
        if app is not None:
            self.init_app(app)

    # -- registry --------------------------------------------------------------

    def register(self, name: str, **config: t.Any) -> Provider:
        """Register a provider and return it.

        ``name`` selects a preset when one exists (``"google"``, ``"github"``, ...);
        the keywords override the preset's settings. See :doc:`/providers`.

        :param name: the provider's name: its blueprint, URLs and config keys use it.
        :param config: ``client_id``, ``client_secret``, ``server_metadata_url`` or
            explicit ``authorize_url``, ``token_url``, ``userinfo_url``,
            ``jwks_uri``, ``issuer``, ``revocation_url``, ``end_session_url``;
            ``scope``, ``api_base_url``, ``authorize_params``, and
            ``token_endpoint_auth_method``, ``pkce``, ``id_token_algorithms``,
            ``nonce``, ``tenant_placeholder``, ``headers``, ``title``; and how
            tokens are refreshed: ``auto_refresh`` (``False``: a view gets
            ``TokenExpiredError`` and calls ``refresh_token()`` itself) and
            ``token_updater`` (a callable called with each refreshed token after it
            was saved, or ``None`` to save nothing and raise ``TokenUpdated``, as
            requests-oauthlib does). See :doc:`/refresh`.
        """
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(
                f"Provider name {name!r} must be a Python identifier (it names a "
                "blueprint and an attribute)."
            )
        if name == "oauthclient":
            raise ValueError("The provider name 'oauthclient' is reserved.")
        if name in self._configs:
            raise ValueError(f"A provider named {name!r} is already registered.")
        if self._initialized:
            raise RuntimeError(
                f"Provider {name!r} is registered after init_app(): register every "
                "provider before initializing an app with this extension."
            )
        unknown = set(config) - set(REGISTER_DEFAULTS)
        if unknown:
            raise TypeError(
                f"register() got unknown keywords: {', '.join(sorted(unknown))}."
            )
        merged = dict(REGISTER_DEFAULTS)
        preset = get_preset(name)
        if preset is not None:
            merged.update(preset.register_defaults())
        merged.update(config)
        self._configs[name] = merged
        provider = self.providers[name] = Provider(self, name, merged)
        return provider

    def __getattr__(self, name: str) -> Provider:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Provider:
        try:
            return self.__dict__["providers"][name]  # type: ignore[no-any-return]
        except KeyError:
            known = ", ".join(sorted(self.__dict__.get("providers", ()))) or "none"
            raise UnknownProviderError(
                f"No provider named {name!r} is registered (registered: {known})."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.providers

    def __iter__(self) -> t.Iterator[Provider]:
        return iter(self.providers.values())

    def on_login(self, f: LoginHandler) -> LoginHandler:
        """Decorate the function called after a successful callback with
        ``(provider, token, userinfo)``. It returns the user to log in (the
        extension calls :func:`flask_login.login_user` and stores the token for that
        user), a response to send instead, or ``None`` to refuse the login."""
        self._login_handler = f
        return f

    def has_other_login(
        self, f: t.Callable[[t.Any], bool]
    ) -> t.Callable[[t.Any], bool]:
        """Decorate the function that tells whether a user can log in other than
        with a linked provider (a password, a passkey, email links). It is called
        with the current user when they unlink a provider: unlinking the last
        linked provider is refused unless it returns true.

        .. code-block:: python

            @oauth.has_other_login
            def has_password(user):
                return user.password_hash is not None

        .. versionadded:: 0.1
        """
        self._other_login = f
        return f

    def can_unlink(self, provider: Provider) -> bool:
        """Whether the current user may unlink ``provider``: another registered
        provider is linked to them (see
        :meth:`~flask_oauthclient.storage.BaseStorage.linked`), or the
        :meth:`has_other_login` handler says they can log in otherwise.

        .. versionadded:: 0.1
        """
        if any(other.linked for other in self if other.name != provider.name):
            return True
        if self._other_login is None:
            return False
        user = None
        if hasattr(current_app, "login_manager"):
            from flask_login import current_user

            if current_user.is_authenticated:
                user = current_user._get_current_object()
        return user is not None and bool(self._other_login(user))

    # -- apps --------------------------------------------------------------------

    def init_app(self, app: Flask, **options: t.Any) -> None:
        """Set the extension up for ``app``: read the ``OAUTHCLIENT_*`` config,
        register one blueprint per provider and the error handler.

        :param storage: a :class:`~flask_oauthclient.storage.BaseStorage`; the
            default keeps tokens in the Flask session.
        """
        if "oauthclient" in app.extensions:
            raise RuntimeError(
                "A 'Flask-OAuthClient' instance has already been registered on this "
                "Flask app. Import and use that instance instead."
            )
        options = {**self._options, **options}
        storage = options.pop("storage", None) or SessionStorage()
        if options:
            raise TypeError(f"init_app() got unknown keywords: {', '.join(options)}.")
        for key, value in CONFIG_DEFAULTS.items():
            app.config.setdefault(key, value)
        config = app.config
        state = _State(
            ext=self,
            storage=storage,
            config=config,
            url_prefix=config["OAUTHCLIENT_URL_PREFIX"].rstrip("/"),
            insecure_transport=bool(config["OAUTHCLIENT_INSECURE_TRANSPORT"]),
            timeout=float(config["OAUTHCLIENT_TIMEOUT"]),
            state_ttl=float(config["OAUTHCLIENT_STATE_TTL"]),
            max_pending=int(config["OAUTHCLIENT_MAX_PENDING_LOGINS"]),
            login_redirect=config["OAUTHCLIENT_LOGIN_REDIRECT"],
            refresh_leeway=float(config["OAUTHCLIENT_REFRESH_LEEWAY"]),
            id_token_leeway=float(config["OAUTHCLIENT_ID_TOKEN_LEEWAY"]),
            metadata_ttl=float(config["OAUTHCLIENT_METADATA_TTL"]),
            pool_maxsize=int(config["OAUTHCLIENT_POOL_MAXSIZE"]),
            logout_url=config["OAUTHCLIENT_LOGOUT_URL"] or None,
            logout_redirect=config["OAUTHCLIENT_LOGOUT_REDIRECT"],
            revoke_on_logout=bool(config["OAUTHCLIENT_REVOKE_ON_LOGOUT"]),
            cipher=cipher_from_config(config["OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS"]),
            link_by_verified_email=bool(config["OAUTHCLIENT_LINK_BY_VERIFIED_EMAIL"]),
        )
        if state.insecure_transport:
            # oauthlib checks this process-wide variable itself; our own per-app
            # check (AppProvider.check_transport) still guards apps without the flag.
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        for name, provider_config in self._configs.items():
            state.providers[name] = AppProvider(name, provider_config, state)
            redaction.register_secret(state.providers[name].client_secret)
        # requests-oauthlib logs tokens, secrets and codes at DEBUG: filter them out.
        redaction.install()

        from .cli import oauth_cli
        from .views import csrf_token
        from .views import make_blueprint
        from .views import make_site_blueprint
        from .views import render_error

        for name in self._configs:
            app.register_blueprint(
                make_blueprint(self.providers[name], state.url_prefix)
            )
        app.register_blueprint(make_site_blueprint(state))
        app.jinja_env.globals["oauthclient_csrf_token"] = csrf_token
        app.register_error_handler(OAuthClientError, render_error)
        app.cli.add_command(oauth_cli)
        app.extensions["oauthclient"] = state
        self._initialized = True

    def _get_state(self, app: Flask | None = None) -> _State:
        app = app or current_app._get_current_object()  # type: ignore[attr-defined]
        state = app.extensions.get("oauthclient")
        if state is None or state.ext is not self:
            raise ConfigurationError(
                "The current app is not set up with this OAuth instance: call "
                "oauth.init_app(app) in your app factory."
            )
        return t.cast(_State, state)

    def logout(
        self,
        *,
        revoke: bool | None = None,
        end_session: str | None = None,
        post_logout_redirect_uri: str | None = None,
    ) -> str | None:
        """Log the current user out: revoke (RFC 7009) and delete their token of
        every provider, log them out of Flask-Login, and clear the session.

        :param revoke: revoke at the provider before deleting; the default is
            ``OAUTHCLIENT_REVOKE_ON_LOGOUT``. Local deletion happens either way.
        :param end_session: the name of a provider to log out of too (OpenID
            RP-initiated logout), if it has an ``end_session_endpoint``.
        :param post_logout_redirect_uri: where that provider sends the user back.
        :return: the provider's logout URL to redirect to, or ``None``.
        """
        state = self._get_state()
        if revoke is None:
            revoke = state.revoke_on_logout
        target: str | None = None
        for provider in self:
            token = provider.token
            if token is None:
                continue
            if end_session == provider.name:
                target = state.providers[provider.name].end_session_url(
                    token, post_logout_redirect_uri
                )
            if revoke:
                provider.revoke_token()
            else:
                provider.token = None
        if hasattr(current_app, "login_manager"):
            from flask_login import logout_user

            logout_user()
        session.clear()
        return target

    def handle_login(
        self, provider: Provider, token: dict[str, t.Any], userinfo: dict[str, t.Any]
    ) -> t.Any:
        """Call the ``on_login`` handler; without one, return ``...`` (meaning: just
        keep the token)."""
        if self._login_handler is None:
            return ...
        return self._login_handler(provider, token, userinfo)
