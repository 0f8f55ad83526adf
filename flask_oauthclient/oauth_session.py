"""The per-request ``OAuth2Session`` and the HTTP plumbing shared by all of them.

A session is built at most once per request and provider and kept on ``g``; it is
never shared between requests, so one user's token cannot reach another user's
request. All sessions of a provider mount the same
:class:`requests.adapters.HTTPAdapter`, so keep-alive connections to the provider are
reused across requests.
"""

from __future__ import annotations

import json
import typing as t

import requests
from requests.adapters import HTTPAdapter
from requests_oauthlib import OAuth2Session

from .errors import ProviderError
from .errors import ProviderTimeout
from .errors import ProviderUnavailable

#: The largest body accepted from a token or userinfo endpoint.
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024


def make_adapter(pool_maxsize: int) -> HTTPAdapter:
    """One connection pool per provider and app, shared by its sessions."""
    return HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)


class PooledOAuth2Session(OAuth2Session):  # type: ignore[misc]
    """An :class:`~requests_oauthlib.OAuth2Session` that uses a shared connection
    pool and a default timeout on every call."""

    def __init__(
        self, *args: t.Any, adapter: HTTPAdapter, timeout: float, **kwargs: t.Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # requests.Session made two private adapters; use the shared pool instead.
        self.adapters.clear()
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.default_timeout = timeout

    def request(
        self, method: str, url: str, *args: t.Any, **kwargs: t.Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return t.cast(requests.Response, super().request(method, url, *args, **kwargs))

    def close(self) -> None:
        # The adapter is shared: closing it would close every request's connections.
        pass


def check_token_response(response: requests.Response) -> requests.Response:
    """A requests-oauthlib ``access_token_response`` / ``refresh_token_response``
    hook: refuse what is not a token response before oauthlib parses it.

    An error answer in RFC 6749 §5.2 form (a 4xx with a JSON ``error``) is passed on
    so oauthlib raises the matching error; anything else that is not a JSON object
    becomes :class:`ProviderError`.
    """
    length = response.headers.get("Content-Length")
    if (length and length.isdigit() and int(length) > MAX_TOKEN_RESPONSE_BYTES) or len(
        response.content
    ) > MAX_TOKEN_RESPONSE_BYTES:
        raise ProviderError("The token endpoint sent an oversized response.")
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    if response.status_code >= 500:
        raise ProviderError(f"The token endpoint answered HTTP {response.status_code}.")
    if not isinstance(data, dict):
        # GitHub answers form-encoded without an Accept header; we always ask for JSON.
        raise ProviderError(
            f"The token endpoint answered HTTP {response.status_code} without a "
            "JSON object."
        )
    if response.status_code >= 400 and "error" not in data:
        raise ProviderError(f"The token endpoint answered HTTP {response.status_code}.")
    if response.status_code < 400 and "error" not in data:
        if not isinstance(data.get("access_token"), str) or not data["access_token"]:
            raise ProviderError("The token endpoint's answer has no access_token.")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise ProviderError(
                "The token endpoint issued a token of an unsupported type."
            )
        expires_in = data.get("expires_in")
        if expires_in is not None and not _is_number(expires_in):
            raise ProviderError("The token endpoint sent an invalid expires_in.")
    return response


def _is_number(value: t.Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and value.isdigit()


def translate_http_error(error: requests.RequestException) -> ProviderError:
    """The :class:`ProviderError` for a failure of ``requests``."""
    if isinstance(error, requests.Timeout):
        return ProviderTimeout("The provider did not answer in time.")
    if isinstance(error, requests.ConnectionError):
        return ProviderUnavailable("The provider could not be reached.")
    return ProviderError(f"The request to the provider failed: {type(error).__name__}")
