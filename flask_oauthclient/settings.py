"""The ``OAUTHCLIENT_*`` configuration keys, each declared once in
:data:`SETTINGS`: the attribute of :class:`Settings` it is read into, its key, its
default and how it is read. ``init_app`` reads them once; every key is documented
in :doc:`/config`.
"""

from __future__ import annotations

import typing as t
from dataclasses import FrozenInstanceError


def _prefix(value: t.Any) -> str:
    return str(value).rstrip("/")


def _optional(value: t.Any) -> str | None:
    return str(value) if value else None


def _as_is(value: t.Any) -> t.Any:
    return value


#: Every setting: ``(attribute, key, default, read)``.
SETTINGS: tuple[tuple[str, str, t.Any, t.Callable[[t.Any], t.Any]], ...] = (
    ("url_prefix", "OAUTHCLIENT_URL_PREFIX", "/login", _prefix),
    ("insecure_transport", "OAUTHCLIENT_INSECURE_TRANSPORT", False, bool),
    ("timeout", "OAUTHCLIENT_TIMEOUT", 10.0, float),
    ("state_ttl", "OAUTHCLIENT_STATE_TTL", 600, float),
    ("max_pending", "OAUTHCLIENT_MAX_PENDING_LOGINS", 5, int),
    ("login_redirect", "OAUTHCLIENT_LOGIN_REDIRECT", "/", str),
    ("refresh_leeway", "OAUTHCLIENT_REFRESH_LEEWAY", 30, float),
    ("id_token_leeway", "OAUTHCLIENT_ID_TOKEN_LEEWAY", 60, float),
    ("metadata_ttl", "OAUTHCLIENT_METADATA_TTL", 3600, float),
    ("pool_maxsize", "OAUTHCLIENT_POOL_MAXSIZE", 10, int),
    ("logout_url", "OAUTHCLIENT_LOGOUT_URL", "/logout", _optional),
    ("logout_redirect", "OAUTHCLIENT_LOGOUT_REDIRECT", "/", str),
    ("revoke_on_logout", "OAUTHCLIENT_REVOKE_ON_LOGOUT", True, bool),
    # Fernet keys, newest first; read into AppState.cipher.
    ("token_encryption_keys", "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS", None, _as_is),
    ("link_by_verified_email", "OAUTHCLIENT_LINK_BY_VERIFIED_EMAIL", False, bool),
)


class Settings:
    """The ``OAUTHCLIENT_*`` configuration of one app, as read by ``init_app``;
    immutable. Each attribute is declared once, with its key, in :data:`SETTINGS`;
    every key is documented in :doc:`/config`.

    (A plain class rather than a frozen dataclass: building a dataclass of this
    many fields cost more than the rest of the package's import of this module.)
    """

    __slots__ = tuple(name for name, _, _, _ in SETTINGS)

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
    token_encryption_keys: t.Any
    link_by_verified_email: bool

    def __init__(self, **values: t.Any) -> None:
        for name, _, default, _ in SETTINGS:
            object.__setattr__(self, name, values.pop(name, default))
        if values:
            raise TypeError(f"Unknown settings: {', '.join(values)}.")

    def __setattr__(self, name: str, value: t.Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[t.Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Settings({shown})"

    @classmethod
    def defaults(cls) -> dict[str, t.Any]:
        """Every configuration key and its default."""
        return {key: default for _, key, default, _ in SETTINGS}

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> Settings:
        """Read the settings from an app's config (defaults already set)."""
        return cls(**{name: read(config[key]) for name, key, _, read in SETTINGS})


#: Every configuration key and its default; documented in docs/config.rst.
CONFIG_DEFAULTS: dict[str, t.Any] = Settings.defaults()
