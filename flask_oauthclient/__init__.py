"""Flask-OAuthClient: log users in with any OAuth 2.0 / OpenID Connect provider, keep
their tokens, and call provider APIs with sessions that refresh by themselves."""

from __future__ import annotations

from oauthlib.oauth2 import TokenExpiredError
from requests_oauthlib.oauth2_session import TokenUpdated

from . import signals
from .app_token import AppClient
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
from .storage import MemoryStorage
from .storage import SessionStorage
from .storage import Token

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
