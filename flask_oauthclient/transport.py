"""HTTP plumbing shared by every request to a provider: the pooled
:class:`~requests_oauthlib.OAuth2Session` base class (one
:class:`~requests.adapters.HTTPAdapter` per provider and app, so keep-alive
connections are reused across requests; a timeout on every call), bodies read with a
size cap and a deadline, the check of token responses, the translation of
``requests`` failures into :class:`~flask_oauthclient.errors.ProviderError`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import typing as t
from collections import OrderedDict
from contextlib import contextmanager
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests_oauthlib import OAuth2Session
from urllib3.exceptions import DecodeError
from urllib3.exceptions import ReadTimeoutError

from .errors import ProviderError
from .errors import ProviderTimeout
from .errors import ProviderUnavailable

_logger = logging.getLogger(__name__)

#: The largest body accepted from a token endpoint.
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
#: The largest body accepted from a userinfo endpoint or a preset's profile calls.
MAX_USERINFO_RESPONSE_BYTES = 1024 * 1024


def make_adapter(pool_maxsize: int) -> HTTPAdapter:
    """One connection pool per provider and app, shared by its sessions."""
    return HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)


class Environment:
    """What ``requests`` reads from the environment on every call of a session
    (proxies and ``no_proxy`` for the URL's host, the CA bundle), read once per
    host instead.

    Sessions built with it have ``trust_env`` off; ``~/.netrc`` is not read
    either (requests-oauthlib already keeps it from replacing the bearer token).
    """

    _MAX_HOSTS = 256

    def __init__(self) -> None:
        self.verify: bool | str = (
            os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or True
        )
        self._proxies: dict[str, dict[str, str]] = {}

    def proxies(self, url: str) -> dict[str, str]:
        """The proxies ``requests`` would use for ``url`` (empty: none)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._proxies.get(origin)
        if found is None:
            found = requests.utils.get_environ_proxies(origin)
            if len(self._proxies) < self._MAX_HOSTS:
                self._proxies[origin] = found
        return found


#: What ``requests.Session.__init__`` sets (see :class:`_SharedPoolSession`).
_SESSION_ATTRIBUTES = frozenset(
    {
        "headers",
        "auth",
        "proxies",
        "hooks",
        "params",
        "stream",
        "verify",
        "cert",
        "max_redirects",
        "trust_env",
        "cookies",
        "adapters",
    }
)
_lean_init: list[bool] = []


def _lean_init_fits() -> bool:
    """Whether ``requests.Session.__init__`` sets no more than
    :class:`_SharedPoolSession` does (checked once, on a plain session)."""
    if not _lean_init:
        _lean_init.append(set(vars(requests.Session())) == _SESSION_ATTRIBUTES)
    return _lean_init[0]


class _SharedPoolSession(requests.Session):
    """A :class:`requests.Session` on a connection pool it shares with others:
    where ``requests.Session()`` makes two adapters of its own, which a pooled
    session would only throw away (a third of the cost of a session, made once per
    request), it mounts ``shared_adapter`` for both schemes.

    It sets what ``requests.Session.__init__`` sets, to requests' own defaults;
    should a version of requests set more (:func:`_lean_init_fits`), it runs that
    ``__init__`` and mounts ``shared_adapter`` after."""

    def __init__(self, *, shared_adapter: HTTPAdapter | None = None) -> None:
        if shared_adapter is None or not _lean_init_fits():
            super().__init__()
            if shared_adapter is not None:
                self.adapters.clear()
                self.mount("https://", shared_adapter)
                self.mount("http://", shared_adapter)
            return
        self.headers = requests.utils.default_headers()  # type: ignore[assignment]
        self.auth = None
        self.proxies = {}
        self.hooks = requests.hooks.default_hooks()
        self.params = {}
        self.stream = False
        self.verify = True
        self.cert = None
        self.max_redirects = requests.models.DEFAULT_REDIRECT_LIMIT
        self.trust_env = True
        self.cookies = requests.cookies.cookiejar_from_dict({})  # type: ignore[no-untyped-call]
        self.adapters = OrderedDict()
        self.mount("https://", shared_adapter)
        self.mount("http://", shared_adapter)


# Untyped to mypy, as OAuth2Session is: requests' stubs would hold the request()
# of every subclass to requests.Session's signature.
_SharedPool: t.Any = _SharedPoolSession


class PooledOAuth2Session(OAuth2Session, _SharedPool):  # type: ignore[misc]
    """An :class:`~requests_oauthlib.OAuth2Session` that uses a shared connection
    pool, the environment as read once (:class:`Environment`) and a default timeout
    on every call."""

    def __init__(
        self,
        *args: t.Any,
        adapter: HTTPAdapter,
        timeout: float,
        environment: Environment | None = None,
        **kwargs: t.Any,
    ) -> None:
        # OAuth2Session passes shared_adapter on to _SharedPoolSession.
        super().__init__(*args, shared_adapter=adapter, **kwargs)
        self.default_timeout = timeout
        self.environment = environment or Environment()
        self.trust_env = False
        self.verify = self.environment.verify

    def request(
        self, method: str, url: str, *args: t.Any, **kwargs: t.Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            # requests-oauthlib's fetch_token and refresh_token pass timeout=None
            # explicitly: setdefault would leave token requests without a timeout.
            kwargs["timeout"] = self.default_timeout
        if kwargs.get("proxies") is None:
            kwargs["proxies"] = self.environment.proxies(url)
        return t.cast(requests.Response, super().request(method, url, *args, **kwargs))

    def close(self) -> None:
        # The adapter is shared: closing it would close every request's connections.
        pass


def body_cap(max_bytes: int) -> t.Callable[..., requests.Response]:
    """A requests ``response`` hook that reads the body as it streams in and refuses
    it past ``max_bytes`` (after decompression), or when it is not complete within
    the request's (read) timeout, before anyone else reads it.

    requests-oauthlib's ``fetch_token`` and ``refresh_token`` don't stream: without
    the hook, requests would read a body of any size into memory (and
    requests-oauthlib would log it) before any check. Response hooks run between
    the headers and the body, so the cap applies there. Put it on the sessions of
    token and userinfo requests only: API responses are the app's to read.

    :raises ProviderError: the body is too large.
    :raises ProviderTimeout: the body did not arrive in time.
    :raises ProviderUnavailable: the connection broke.
    """

    def hook(response: requests.Response, **kwargs: t.Any) -> requests.Response:
        if response._content_consumed:  # type: ignore[attr-defined]
            return response  # read already
        timeout = kwargs.get("timeout")
        if isinstance(timeout, tuple):
            timeout = timeout[1]
        try:
            body = read_capped(
                response,
                timeout=float(timeout) if timeout else _DEFAULT_DEADLINE,
                max_bytes=max_bytes,
            )
        except BaseException:
            response.close()  # drops the connection: the rest is never read
            raise
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]
        response.close()  # read whole: the connection goes back to the pool
        return response

    return hook


#: Seconds a capped body may take when the request has no timeout.
_DEFAULT_DEADLINE = 30.0


def read_capped(
    response: requests.Response, *, timeout: float, max_bytes: int
) -> bytes:
    """Read the body of a streamed ``response``: at most ``max_bytes`` (after
    decompression), within ``timeout`` seconds however slowly it trickles in (each
    read returns what has arrived, so the deadline is checked as bytes come)."""
    what = urlsplit(response.url or "").path or "the provider"
    if getattr(response, "_content_consumed", False):
        # A response hook (body_cap) read it already, under the same limits.
        body = response.content
        if len(body) > max_bytes:
            raise ProviderError(f"{what} answered with over {max_bytes} bytes.")
        return body
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise ProviderError(f"{what} answered with {length} bytes, over {max_bytes}.")
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in _chunks(response.raw):
            size += len(chunk)
            if size > max_bytes:
                raise ProviderError(f"{what} answered with over {max_bytes} bytes.")
            if time.monotonic() > deadline:
                raise ProviderTimeout(f"{what} did not finish its answer in time.")
            chunks.append(chunk)
    except ReadTimeoutError:
        raise ProviderTimeout(f"{what} stopped answering.") from None
    except requests.ConnectionError as e:
        # How requests reports the same faults, from bodies it wraps.
        if e.args and isinstance(e.args[0], ReadTimeoutError):
            raise ProviderTimeout(f"{what} stopped answering.") from None
        raise ProviderUnavailable(f"The connection to {what} broke.") from None
    except requests.RequestException:
        raise ProviderError(f"{what} sent a body that could not be read.") from None
    except DecodeError:
        raise ProviderError(f"{what} sent a body that does not decode.") from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise ProviderUnavailable(
            f"The connection to {what} broke: {type(e).__name__}"
        ) from None
    return b"".join(chunks)


def _chunks(raw: t.Any, size: int = 64 * 1024) -> t.Iterator[bytes]:
    """The body, as it arrives: urllib3's ``read1`` returns what one socket read
    gave (decompressed) rather than waiting for ``size`` bytes."""
    if isinstance(raw, urllib3.response.HTTPResponse) and hasattr(raw, "read1"):
        while chunk := raw.read1(size, decode_content=True):
            yield chunk
    elif hasattr(raw, "stream"):  # urllib3 1.26
        yield from raw.stream(size, decode_content=True)
    else:  # a file-like body (tests, adapters of other libraries)
        while chunk := raw.read(size):
            yield chunk


@contextmanager
def capped(session: requests.Session, max_bytes: int) -> t.Iterator[None]:
    """Cap the bodies of the responses ``session`` receives inside the block (see
    :func:`body_cap`)."""
    hook = body_cap(max_bytes)
    session.hooks["response"].append(hook)
    try:
        yield
    finally:
        session.hooks["response"].remove(hook)


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
