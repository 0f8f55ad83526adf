"""The ``OAUTHCLIENT_*`` configuration keys, each declared once in :class:`Settings`:
its default, the attribute it is read into and how it is read. ``init_app`` reads
them once; every key is documented in :doc:`/config`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields


def _setting(key: str, default: t.Any, read: t.Callable[[t.Any], t.Any]) -> t.Any:
    return field(default=default, metadata={"key": key, "read": read})


def _prefix(value: t.Any) -> str:
    return str(value).rstrip("/")


def _optional(value: t.Any) -> str | None:
    return str(value) if value else None


@dataclass(frozen=True)
class Settings:
    """The ``OAUTHCLIENT_*`` configuration of one app, as read by ``init_app``.
    Each field names its key; every key is documented in :doc:`/config`."""

    url_prefix: str = _setting("OAUTHCLIENT_URL_PREFIX", "/login", _prefix)
    insecure_transport: bool = _setting("OAUTHCLIENT_INSECURE_TRANSPORT", False, bool)
    timeout: float = _setting("OAUTHCLIENT_TIMEOUT", 10.0, float)
    state_ttl: float = _setting("OAUTHCLIENT_STATE_TTL", 600, float)
    max_pending: int = _setting("OAUTHCLIENT_MAX_PENDING_LOGINS", 5, int)
    login_redirect: str = _setting("OAUTHCLIENT_LOGIN_REDIRECT", "/", str)
    refresh_leeway: float = _setting("OAUTHCLIENT_REFRESH_LEEWAY", 30, float)
    id_token_leeway: float = _setting("OAUTHCLIENT_ID_TOKEN_LEEWAY", 60, float)
    metadata_ttl: float = _setting("OAUTHCLIENT_METADATA_TTL", 3600, float)
    pool_maxsize: int = _setting("OAUTHCLIENT_POOL_MAXSIZE", 10, int)
    logout_url: str | None = _setting("OAUTHCLIENT_LOGOUT_URL", "/logout", _optional)
    logout_redirect: str = _setting("OAUTHCLIENT_LOGOUT_REDIRECT", "/", str)
    revoke_on_logout: bool = _setting("OAUTHCLIENT_REVOKE_ON_LOGOUT", True, bool)
    #: Fernet keys, newest first; read into :attr:`AppState.cipher`.
    token_encryption_keys: t.Any = _setting(
        "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS", None, lambda value: value
    )
    link_by_verified_email: bool = _setting(
        "OAUTHCLIENT_LINK_BY_VERIFIED_EMAIL", False, bool
    )

    @classmethod
    def defaults(cls) -> dict[str, t.Any]:
        """Every configuration key and its default."""
        return {f.metadata["key"]: f.default for f in fields(cls)}

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> Settings:
        """Read the settings from an app's config (defaults already set)."""
        return cls(
            **{
                f.name: f.metadata["read"](config[f.metadata["key"]])
                for f in fields(cls)
            }
        )


#: Every configuration key and its default; documented in docs/config.rst.
CONFIG_DEFAULTS: dict[str, t.Any] = Settings.defaults()
