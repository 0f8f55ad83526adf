"""OpenID Connect discovery, the JWKS cache and ID-token validation.

This package knows nothing of Flask: everything here takes a :class:`requests.Session`
and plain values, so it can be used and tested without an application.

The checks follow OpenID Connect Core 1.0 §3.1.3.7 (ID token), §5.3.2 (userinfo),
§12.2 (refreshed ID token), OpenID Connect Discovery 1.0 §4.3 / RFC 8414 §3.3
(metadata bound to its issuer) and RFC 9207 (``iss`` in the authorization response).
All cryptography is PyJWT's; this package only chooses which key and which algorithm
PyJWT may use.

Import the names below from here; the modules are ``discovery`` (server metadata),
``jwks`` (the key set), ``id_token`` (ID-token checks, RFC 9207), ``userinfo``
(the userinfo check and merge) and ``documents`` (:func:`fetch_json` and the
single-flight cache that discovery and the key set share).
"""

from __future__ import annotations

from . import id_token as _id_token
from . import userinfo as _userinfo
from .discovery import issuer_from_metadata_url
from .discovery import ServerMetadata
from .documents import fetch_json
from .id_token import check_authorization_response_iss
from .id_token import tenant_issuer_matcher
from .id_token import validate_id_token
from .id_token import validate_refreshed_id_token
from .jwks import JWKSCache
from .userinfo import check_userinfo
from .userinfo import merge_claims

# Assigned rather than imported so that autodoc finds their #: comments here.

#: ``issuer_matcher(iss, claims) -> bool``: decides whether a multi-tenant issuer is
#: acceptable, in place of exact equality with the configured issuer.
IssuerMatcher = _id_token.IssuerMatcher

#: ID-token claims that a userinfo response may not replace (see :func:`merge_claims`).
PROTECTED_CLAIMS = _userinfo.PROTECTED_CLAIMS

__all__ = [
    "PROTECTED_CLAIMS",
    "IssuerMatcher",
    "JWKSCache",
    "ServerMetadata",
    "check_authorization_response_iss",
    "check_userinfo",
    "fetch_json",
    "issuer_from_metadata_url",
    "merge_claims",
    "tenant_issuer_matcher",
    "validate_id_token",
    "validate_refreshed_id_token",
]
