"""The :class:`OAuth` extension: the provider registry and the per-app state."""

from __future__ import annotations

import os
import typing as t

from flask import current_app
from flask import Flask
from flask import session
from flask.cli import AppGroup

from .errors import OAuthClientError
from .errors import UnknownProviderError
from .provider import Provider
from .state import AppState
from .state import EXTENSION_KEY
from .state import get_state
from .state import Hooks

if t.TYPE_CHECKING:
    import click

# Imported where they are first needed, not with the package: the schema of the
# register() keywords and the presets by register(); the views, the protocol and
# the default storage (views, login, flow, csrf, error_pages, app_provider,
# storage.session) by init_app; linking by can_unlink(); the commands (cli) only
# when the CLI lists or runs them.

#: ``on_login(provider, token, userinfo)``: the user to log in, a response, or None.
LoginHandler = t.Callable[[Provider, dict[str, t.Any], dict[str, t.Any]], t.Any]


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
        self.providers: dict[str, Provider] = {}
        self._hooks = Hooks()
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
        if name in self.providers:
            raise ValueError(f"A provider named {name!r} is already registered.")
        if self._initialized:
            raise RuntimeError(
                f"Provider {name!r} is registered after init_app(): register every "
                "provider before initializing an app with this extension."
            )
        from .provider_config import merge
        from .providers import get_preset

        preset = get_preset(name)
        merged = merge(preset.register_defaults() if preset else {}, config)
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
        self._hooks.on_login = f
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
        self._hooks.has_other_login = f
        return f

    def can_unlink(self, provider: Provider) -> bool:
        """Whether the current user may unlink ``provider``: another registered
        provider is linked to them (see
        :meth:`~flask_oauthclient.storage.BaseStorage.linked`), or the
        :meth:`has_other_login` handler says they can log in otherwise.

        .. versionadded:: 0.1
        """
        from .linking import can_unlink

        return can_unlink(self._get_state(), provider.name)

    # -- apps --------------------------------------------------------------------

    def init_app(self, app: Flask, **options: t.Any) -> None:
        """Set the extension up for ``app``: read the ``OAUTHCLIENT_*`` config,
        register one blueprint per provider and the error handler.

        :param storage: a :class:`~flask_oauthclient.storage.BaseStorage`; the
            default keeps tokens in the Flask session.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "A 'Flask-OAuthClient' instance has already been registered on this "
                "Flask app. Import and use that instance instead."
            )
        options = {**self._options, **options}
        storage = options.pop("storage", None)
        if storage is None:
            from .storage.session import SessionStorage

            storage = SessionStorage()
        if options:
            raise TypeError(f"init_app() got unknown keywords: {', '.join(options)}.")
        from . import redaction
        from .app_provider import AppProvider
        from .csrf import csrf_token
        from .error_pages import render_error
        from .provider_config import ProviderConfig
        from .views import make_blueprint
        from .views import make_site_blueprint

        state = AppState.create(self, app, storage, self._hooks)
        settings = state.settings
        if settings.insecure_transport:
            # oauthlib checks this process-wide variable itself; our own per-app
            # check (AppProvider.check_transport) still guards apps without the flag.
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        for name, provider in self.providers.items():
            ap = AppProvider(
                name, ProviderConfig(**provider.config), settings, app.config
            )
            state.providers[name] = ap
            redaction.register_secret(ap.client_secret)
        # requests-oauthlib logs tokens, secrets and codes at DEBUG: filter them out.
        redaction.install()

        for provider in self.providers.values():
            app.register_blueprint(make_blueprint(provider, settings.url_prefix))
        app.register_blueprint(make_site_blueprint(settings.logout_url, self.logout))
        app.jinja_env.globals["oauthclient_csrf_token"] = csrf_token
        app.register_error_handler(OAuthClientError, render_error)
        app.cli.add_command(_LazyCommands(_CLI_NAME, help=_CLI_HELP))
        app.extensions[EXTENSION_KEY] = state
        self._initialized = True

    def _get_state(self, app: Flask | None = None) -> AppState:
        return get_state(app, owner=self)

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
            revoke = state.settings.revoke_on_logout
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


#: The ``flask oauth`` group: its name and help, shown by ``flask --help``.
_CLI_NAME = "oauth"
_CLI_HELP = "Flask-OAuthClient: the app's OAuth providers."


class _LazyCommands(AppGroup):
    """``flask oauth``: the commands of :mod:`.cli`, imported only when the CLI
    lists or runs them, never by an app that serves requests."""

    def _commands(self) -> AppGroup:
        from .cli import oauth_cli

        return oauth_cli

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._commands().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._commands().get_command(ctx, cmd_name)
