"""Documents an OpenID provider publishes (its discovery metadata, its key set):
fetched as JSON with a size cap and a deadline (:func:`fetch_json`), and kept in a
single-flight TTL cache (:class:`SingleFlightCache`). Only logins and ID-token
checks need them; an API call never loads this module.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import typing as t

import requests

from ..errors import ConfigurationError
from ..errors import ProviderError
from ..errors import ProviderTimeout
from ..errors import ProviderUnavailable
from ..transport import read_capped

_logger = logging.getLogger(__name__)

T = t.TypeVar("T")


def fetch_json(
    http: requests.Session,
    url: str,
    *,
    timeout: float,
    max_bytes: int = 1_000_000,
) -> dict[str, t.Any]:
    """GET a JSON object from a provider.

    :param http: the session to send the request with (its connection pool is reused).
    :param url: the document's URL.
    :param timeout: seconds for connecting and for each read; the body must also be
        complete within that many seconds of the first byte, so a provider that
        trickles its answer cannot hold a worker.
    :param max_bytes: the largest body accepted, after decompression.
    :raises ProviderTimeout: the provider did not answer in time.
    :raises ProviderUnavailable: the provider could not be reached.
    :raises ProviderError: a non-2xx status, a body too large, not JSON, or JSON that is
        not an object.
    """
    try:
        response = http.get(
            url,
            timeout=timeout,
            headers={"Accept": "application/json"},
            stream=True,
        )
    except requests.Timeout as exc:
        raise ProviderTimeout(f"No answer from {url} within {timeout}s.") from exc
    except requests.ConnectionError as exc:
        raise ProviderUnavailable(f"Could not connect to {url}: {exc}") from exc
    except requests.RequestException as exc:
        raise ProviderError(f"Request to {url} failed: {exc}") from exc

    with response:
        if not 200 <= response.status_code < 300:
            raise ProviderError(
                f"{url} answered with HTTP {response.status_code}, expected 2xx."
            )
        body = read_capped(response, timeout=timeout, max_bytes=max_bytes)

    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and undecodable bytes; RecursionError a
        # deeply nested document.
        raise ProviderError(f"{url} did not answer with JSON.") from exc
    if not isinstance(data, dict):
        raise ProviderError(
            f"{url} answered with a JSON {type(data).__name__}, expected an object."
        )
    return data


class CacheEntry(t.Generic[T]):
    """A value of a :class:`SingleFlightCache` and when it expires (in the cache's
    clock). Never changed once made: a reload makes a new one."""

    __slots__ = ("value", "expires_at")

    def __init__(self, value: T, expires_at: float) -> None:
        self.value = value
        self.expires_at = expires_at

    def __repr__(self) -> str:
        return f"CacheEntry(value={self.value!r}, expires_at={self.expires_at!r})"


class _Failure:
    """The outcome of a failed load, shared with the callers that waited for it."""

    __slots__ = ("error_class", "message")

    def __init__(self, error_class: type[Exception], message: str) -> None:
        self.error_class = error_class
        self.message = message


class SingleFlightCache(t.Generic[T]):
    """A value loaded from the network, kept for ``ttl`` seconds.

    At most one load runs at a time; callers that queued behind a load share its
    outcome, success or failure, instead of repeating it (a provider that is down is
    asked once, not once per waiting request). When a reload fails with a
    :class:`ProviderError` the stale value keeps serving for ``retry_interval``.

    :param load: ``load(http, timeout)`` fetches the value.
    :param ttl: seconds to keep a loaded value.
    :param retry_interval: seconds a stale value keeps serving after a failed load.
    :param clock: monotonic seconds.
    :param logger: where to warn that a stale value is used (default: this
        module's logger); pass the logger of the module that owns the cache.
    """

    def __init__(
        self,
        load: t.Callable[[requests.Session, float], T],
        *,
        ttl: float,
        retry_interval: float,
        clock: t.Callable[[], float],
        logger: logging.Logger | None = None,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._retry_interval = retry_interval
        self._clock = clock
        self._logger = logger if logger is not None else _logger
        self._lock = threading.Lock()
        self._entry: CacheEntry[T] | None = None
        self._attempts = 0
        self._failure: _Failure | None = None
        # Only forced loads are rate limited: the first load and those after the
        # TTL do not delay a refetch for a rotated key.
        self._last_forced = -math.inf

    def get(self, http: requests.Session, timeout: float) -> CacheEntry[T]:
        entry = self._entry
        if entry is not None and self._clock() < entry.expires_at:
            return entry
        attempts = self._attempts
        with self._lock:
            entry = self._entry
            if entry is not None and self._clock() < entry.expires_at:
                return entry
            failure = self._failure
            if failure is not None and self._attempts != attempts:
                # The load we waited for failed a moment ago: share its verdict.
                raise failure.error_class(failure.message)
            return self._load_locked(http, timeout, serve_stale=True)

    def reload(
        self,
        http: requests.Session,
        timeout: float,
        *,
        seen: CacheEntry[T],
        min_interval: float,
    ) -> CacheEntry[T] | None:
        """Load again although the value has not expired, unless another caller did
        so since ``seen`` was read or the last forced load is under ``min_interval``
        seconds old. Returns None when no newer value is available."""
        with self._lock:
            entry = self._entry
            if entry is not None and entry is not seen:
                if self._clock() < entry.expires_at:
                    return entry
            now = self._clock()
            if now - self._last_forced < min_interval:
                return None
            self._last_forced = now
            return self._load_locked(http, timeout, serve_stale=False)

    def _load_locked(
        self, http: requests.Session, timeout: float, *, serve_stale: bool
    ) -> CacheEntry[T]:
        stale = self._entry
        try:
            value = self._load(http, timeout)
        except (ProviderError, ConfigurationError) as exc:
            self._attempts += 1
            self._failure = _Failure(type(exc), str(exc))
            if serve_stale and stale is not None and isinstance(exc, ProviderError):
                self._logger.warning(
                    "%s; using the copy fetched earlier for %s more seconds.",
                    exc,
                    self._retry_interval,
                )
                self._entry = CacheEntry(
                    stale.value, self._clock() + self._retry_interval
                )
                return self._entry
            raise
        except BaseException:
            self._attempts += 1
            self._failure = None
            raise
        self._attempts += 1
        self._failure = None
        self._entry = CacheEntry(value, self._clock() + self._ttl)
        return self._entry
