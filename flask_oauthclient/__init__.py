"""Flask-OAuthClient: log users in with any OAuth 2.0 / OpenID Connect provider, keep
their tokens, and call provider APIs with sessions that refresh by themselves."""

from __future__ import annotations

import typing as t

from oauthlib.oauth2 import TokenExpiredError
from requests_oauthlib.oauth2_session import TokenUpdated

from . import signals
from .client import UserClient
from .errors import AuthorizationDenied
from .errors import CallbackError
from .errors import ConfigurationError
from .errors import CSRFError
from .errors import IdentityInUse
from .errors import InsecureTransportError
from .errors import InvalidIDToken
from .errors import LoginRefused
from .errors import OAuthClientError
from .errors import ProviderError
from .errors import ProviderTimeout
from .errors import ProviderUnavailable
from .errors import ReauthorizationRequired
from .errors import StorageError
from .errors import TokenError
from .errors import TokenMissing
from .errors import UnknownProviderError
from .errors import UnlinkRefused
from .errors import UserRequired
from .extension import OAuth
from .provider import Provider
from .storage import BaseStorage
from .storage import Token

if t.TYPE_CHECKING:
    from .app_token import AppClient
    from .storage import MemoryStorage
    from .storage import SessionStorage

__all__ = [
    "AppClient",
    "AuthorizationDenied",
    "BaseStorage",
    "CallbackError",
    "ConfigurationError",
    "CSRFError",
    "IdentityInUse",
    "InsecureTransportError",
    "InvalidIDToken",
    "LoginRefused",
    "MemoryStorage",
    "OAuth",
    "OAuthClientError",
    "Provider",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ReauthorizationRequired",
    "SessionStorage",
    "StorageError",
    "Token",
    "TokenError",
    "TokenExpiredError",
    "TokenMissing",
    "TokenUpdated",
    "UnknownProviderError",
    "UnlinkRefused",
    "UserClient",
    "UserRequired",
    "signals",
]


def __getattr__(name: str) -> t.Any:
    # Imported on first use, not with the package: the app's own token
    # (oauth.<name>.for_app()), which most apps never ask for, and the storages
    # other than the one the app uses.
    if name == "AppClient":
        from .app_token import AppClient

        return AppClient
    if name in ("MemoryStorage", "SessionStorage"):
        from . import storage

        return getattr(storage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "AppClient", "MemoryStorage", "SessionStorage"})
