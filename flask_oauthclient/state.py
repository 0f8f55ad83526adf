"""The extension's per-app state, kept in ``app.extensions["oauthclient"]``, and its
accessors: :func:`get_state` (the state, or a clear error) and :func:`find_state`
(the state, or ``None``). Nothing else reads ``app.extensions``.
"""

from __future__ import annotations

import typing as t

from flask import current_app
from flask import Flask
from flask import has_app_context

from .errors import ConfigurationError

if t.TYPE_CHECKING:
    from .app_provider import AppProvider
    from .cipher import TokenCipher
    from .settings import Settings
    from .storage.base import BaseStorage

#: The key of the state in ``app.extensions``.
EXTENSION_KEY = "oauthclient"


class Hooks:
    """The app's callbacks, set with the extension's decorators. One object is shared
    by the extension and the state of every app it is set up on, so a decorator
    used after ``init_app`` still takes effect."""

    __slots__ = ("on_login", "has_other_login")

    def __init__(
        self,
        on_login: t.Callable[..., t.Any] | None = None,
        has_other_login: t.Callable[[t.Any], bool] | None = None,
    ) -> None:
        #: ``on_login(provider, token, userinfo)``.
        self.on_login = on_login
        #: ``has_other_login(user)``.
        self.has_other_login = has_other_login

    def __repr__(self) -> str:
        return (
            f"Hooks(on_login={self.on_login!r}, "
            f"has_other_login={self.has_other_login!r})"
        )


class AppState:
    """What the extension keeps per app.

    (Plain classes here, not dataclasses: building those costs more import time
    than the rest of this module.)
    """

    def __init__(
        self,
        owner: object,
        storage: BaseStorage,
        settings: Settings,
        hooks: Hooks,
        config: t.Mapping[str, t.Any],
        cipher: TokenCipher | None = None,
        providers: dict[str, AppProvider] | None = None,
    ) -> None:
        #: The extension instance that set the app up (an :class:`~.OAuth`).
        self.owner = owner
        self.storage = storage
        self.settings = settings
        self.hooks = hooks
        #: The app's config, for the per-provider keys (``OAUTHCLIENT_<NAME>_...``).
        self.config = config
        #: Encrypts tokens at rest; ``None`` without
        #: ``OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS``.
        self.cipher = cipher
        self.providers: dict[str, AppProvider] = (
            providers if providers is not None else {}
        )

    def __repr__(self) -> str:
        return f"<AppState providers={sorted(self.providers)!r}>"

    @classmethod
    def create(
        cls,
        owner: object,
        app: Flask,
        storage: BaseStorage,
        hooks: Hooks,
    ) -> AppState:
        """Set the config defaults on ``app`` and read its settings."""
        # Imported here, by init_app: importing the package doesn't need it.
        from .settings import CONFIG_DEFAULTS
        from .settings import Settings

        for key, value in CONFIG_DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = Settings.from_config(app.config)
        return cls(
            owner=owner,
            storage=storage,
            settings=settings,
            hooks=hooks,
            config=app.config,
            cipher=_cipher(settings.token_encryption_keys),
        )

    def provider(self, name: str) -> AppProvider:
        """The app's provider called ``name``."""
        try:
            return self.providers[name]
        except KeyError:
            raise ConfigurationError(
                f"Provider {name!r} was registered after init_app(); register "
                "providers before initializing the app."
            ) from None


def _cipher(keys: t.Any) -> TokenCipher | None:
    """The cipher of ``OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS``, or ``None`` without keys.
    The cipher's module is imported only by the apps that encrypt their tokens."""
    if not keys:
        return None
    from .cipher import cipher_from_config

    return cipher_from_config(keys)


def get_state(app: Flask | None = None, *, owner: object | None = None) -> AppState:
    """The extension's state of ``app`` (default: the current app).

    :param owner: the extension instance the caller belongs to; a state set up by
        another instance is refused.
    :raises ConfigurationError: the app is not set up with the extension (or with
        another instance of it).
    """
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, AppState) or (
        owner is not None and state.owner is not owner
    ):
        raise ConfigurationError(
            "The current app is not set up with this OAuth instance: call "
            "oauth.init_app(app) in your app factory."
        )
    return state


def find_state() -> AppState | None:
    """The current app's state, or ``None`` outside an app context or on an app
    without the extension."""
    if not has_app_context():
        return None
    state = current_app.extensions.get(EXTENSION_KEY)
    return state if isinstance(state, AppState) else None


def current_cipher() -> TokenCipher | None:
    """The current app's token cipher, or ``None`` when it does not encrypt tokens
    (or there is no app, or the extension is not set up on it)."""
    state = find_state()
    return state.cipher if state is not None else None
