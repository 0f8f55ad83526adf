"""OpenID Connect discovery: a provider's metadata document (OpenID Connect
Discovery 1.0, RFC 8414), fetched, cached and bound to its issuer (OpenID Connect
Discovery 1.0 §4.3 / RFC 8414 §3.3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Callable
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import requests

from ..errors import ConfigurationError
from ..errors import ProviderError
from .documents import fetch_json
from .documents import SingleFlightCache

__all__ = ["ServerMetadata", "issuer_from_metadata_url"]

# The package's logger, the one name for all of flask_oauthclient.oidc's records.
logger = logging.getLogger("flask_oauthclient.oidc")

_OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
_OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"


def issuer_from_metadata_url(url: str) -> str | None:
    """The issuer a discovery URL belongs to, or None if the URL has no well-known
    part.

    ``https://idp.example/tenant/.well-known/openid-configuration`` (OpenID Connect
    Discovery §4) and ``https://idp.example/.well-known/oauth-authorization-server/tenant``
    (RFC 8414 §3.1) both give ``https://idp.example/tenant``; the suffix form of
    RFC 8414 and the infix form of OIDC, which some servers use, are accepted too.
    """
    parts = urlsplit(url)
    path = parts.path
    for well_known in (_OIDC_WELL_KNOWN, _OAUTH_WELL_KNOWN):
        if path.endswith(well_known):
            path = path[: -len(well_known)]
            break
        if path.startswith(well_known + "/"):
            path = path[len(well_known) :]
            break
    else:
        return None
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


_METADATA_STRINGS = (
    "jwks_uri",
    "userinfo_endpoint",
    "revocation_endpoint",
    "end_session_endpoint",
    "introspection_endpoint",
    "registration_endpoint",
    "pushed_authorization_request_endpoint",
)
_METADATA_STRING_LISTS = (
    "scopes_supported",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "userinfo_signing_alg_values_supported",
    "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported",
    "claims_supported",
)
_METADATA_BOOLS = (
    "authorization_response_iss_parameter_supported",
    "require_pushed_authorization_requests",
)


class ServerMetadata:
    """A provider's discovery document, fetched on first use and cached for ``ttl``
    seconds, bound to its issuer.

    The document's ``issuer`` must equal ``expected_issuer``, or the issuer the URL
    names (see :func:`issuer_from_metadata_url`; a single trailing ``/`` may differ,
    as OpenID Connect Discovery §4.1 removes it to build the URL). A document that
    names another issuer is refused: otherwise whoever answers at that URL could
    make the client trust tokens from any issuer.

    :param url: the discovery document's URL.
    :param ttl: seconds to keep the document.
    :param expected_issuer: the issuer the document must name. Required when the URL
        has no well-known part; for multi-tenant providers this is the template
        the provider publishes (``https://login.microsoftonline.com/{tenantid}/v2.0``).
    :param required: the fields the document must have.
    :param retry_interval: after a failed refresh, the stale document keeps serving
        for this many seconds before the next attempt.
    :param clock: monotonic seconds, for tests.
    :raises ConfigurationError: if no issuer can be derived from the URL and none is
        given.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 3600.0,
        expected_issuer: str | None = None,
        required: Sequence[str] = (
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
        ),
        retry_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._exact = expected_issuer is not None
        derived = expected_issuer or issuer_from_metadata_url(url)
        if derived is None:
            raise ConfigurationError(
                f"Cannot tell which issuer {url} belongs to: it has no"
                f" '{_OIDC_WELL_KNOWN}' part. Pass the provider's issuer as well."
            )
        #: The issuer the document must name (but see :meth:`get` for the value to
        #: check ID tokens against).
        self.expected_issuer: str = derived
        self._required = tuple(required)
        self._cache: SingleFlightCache[dict[str, Any]] = SingleFlightCache(
            self._load,
            ttl=ttl,
            retry_interval=retry_interval,
            clock=clock,
            logger=logger,
        )

    def get(self, http: requests.Session, *, timeout: float) -> dict[str, Any]:
        """The discovery document, fetched if not cached or expired.

        Check ID tokens against the returned ``["issuer"]``, which may differ from
        :attr:`expected_issuer` by a trailing ``/``.

        :param http: the session to fetch with.
        :param timeout: see :func:`fetch_json`.
        :raises ConfigurationError: the document names another issuer.
        :raises ProviderError: the document could not be fetched or is malformed.
        """
        # A copy: callers may change what they get without changing the cache.
        return dict(self.cached(http, timeout=timeout))

    def cached(self, http: requests.Session, *, timeout: float) -> Mapping[str, Any]:
        """As :meth:`get`, the cached document itself, not a copy: the same object
        until it is fetched again (callers must not change it)."""
        return self._cache.get(http, timeout).value

    def _issuer_matches(self, issuer: str) -> bool:
        if self._exact:
            return issuer == self.expected_issuer
        return issuer in (self.expected_issuer, self.expected_issuer + "/")

    def _load(self, http: requests.Session, timeout: float) -> dict[str, Any]:
        doc = fetch_json(http, self.url, timeout=timeout)
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise ProviderError(f"The discovery document at {self.url} has no issuer.")
        if not self._issuer_matches(issuer):
            raise ConfigurationError(
                f"The discovery document at {self.url} names the issuer {issuer!r},"
                f" but {self.expected_issuer!r} was expected. Check the metadata URL,"
                " or pass the provider's real issuer if it is published elsewhere."
            )
        for name in self._required:
            value = doc.get(name)
            if value is None or value == "":
                raise ProviderError(
                    f"The discovery document at {self.url} has no {name!r}."
                )
        for name in ("issuer", "authorization_endpoint", "token_endpoint"):
            _check_type(doc, name, str, self.url)
        for name in _METADATA_STRINGS:
            _check_type(doc, name, str, self.url)
        for name in _METADATA_BOOLS:
            _check_type(doc, name, bool, self.url)
        for name in _METADATA_STRING_LISTS:
            _check_type(doc, name, list, self.url)
            if name in doc and not all(isinstance(v, str) for v in doc[name]):
                raise ProviderError(
                    f"The discovery document at {self.url} has a non-string in"
                    f" {name!r}."
                )
        return doc


def _check_type(doc: Mapping[str, Any], name: str, kind: type, url: str) -> None:
    # Checked once here so that callers can use "S256" in doc[...] and the like
    # without being fooled by a string where a list belongs.
    if name in doc and not isinstance(doc[name], kind):
        raise ProviderError(
            f"The discovery document at {url} has {name!r} of type"
            f" {type(doc[name]).__name__}, expected {kind.__name__}."
        )
