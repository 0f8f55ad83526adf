"""Token revocation (RFC 7009): the requests, authenticated as the token requests
are (:class:`~.client_auth.ClientAuth`), and the revocation endpoint of an OpenID
provider's RFC 8414 metadata. Best effort: failures are logged, never raised.
No Flask here.
"""

from __future__ import annotations

import logging
import typing as t
from urllib.parse import urlsplit

import requests

from .errors import OAuthClientError

if t.TYPE_CHECKING:
    from .client_auth import ClientAuth
    from .tokens import Token

log = logging.getLogger("flask_oauthclient")

_OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"


def revoke(
    http: requests.Session,
    url: str,
    token: Token,
    auth: ClientAuth,
    *,
    token_url: str,
    timeout: float,
    provider: str,
) -> bool:
    """Revoke ``token``'s refresh token, then its access token, at ``url``.

    :param token_url: the audience of JWT client assertions.
    :return: whether the provider confirmed every revocation.
    """
    confirmed = True
    for hint in ("refresh_token", "access_token"):
        value = token.get(hint)
        if not value:
            continue
        # A new assertion for each request: a provider refuses a jti it has seen.
        data, basic = auth.form_and_auth(token_url)
        try:
            response = http.post(
                url,
                data={"token": value, "token_type_hint": hint, **data},
                timeout=timeout,
                # The body is never read: a hostile answer can't be large.
                stream=True,
                auth=basic,
            )
            response.close()
        except requests.RequestException as e:
            log.warning("Revoking the %s %s failed: %s", provider, hint, type(e))
            confirmed = False
            continue
        if response.status_code != 200:
            log.warning(
                "The %s revocation endpoint answered HTTP %s for the %s.",
                provider,
                response.status_code,
                hint,
            )
            confirmed = False
    return confirmed


def oauth_metadata_revocation_url(
    http: requests.Session, issuer: str, *, skip: str, ttl: float, timeout: float
) -> str | None:
    """The ``revocation_endpoint`` of ``issuer``'s RFC 8414 metadata, for an OpenID
    provider whose discovery document leaves it out (django-oauth-toolkit lists it
    only there); any failure counts as none.

    :param skip: the discovery URL already read.
    """
    from . import oidc

    parts = urlsplit(issuer)
    for url in (
        f"{parts.scheme}://{parts.netloc}{_OAUTH_WELL_KNOWN}{parts.path}",
        issuer.rstrip("/") + _OAUTH_WELL_KNOWN,
    ):
        if url == skip:
            continue
        try:
            document = oidc.ServerMetadata(url, ttl=ttl, expected_issuer=issuer).get(
                http, timeout=timeout
            )
        except OAuthClientError:
            continue
        found = document.get("revocation_endpoint")
        if isinstance(found, str) and found:
            return found
    return None
