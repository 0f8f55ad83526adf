"""What the app is given after the ID token: the check that a userinfo response is
about the same user (OpenID Connect Core §5.3.2), and the merge of its claims with
the ID token's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidIDToken

__all__ = ["PROTECTED_CLAIMS", "check_userinfo", "merge_claims"]

#: ID-token claims that a userinfo response may not replace (see :func:`merge_claims`).
PROTECTED_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "nonce",
        "at_hash",
        "c_hash",
        "azp",
        "auth_time",
        "acr",
        "amr",
        "sid",
        "jti",
    }
)


def check_userinfo(id_claims: Mapping[str, Any], userinfo: Mapping[str, Any]) -> None:
    """Check that a userinfo response is about the user of the ID token (OpenID
    Connect Core §5.3.2): its ``sub`` must equal the ID token's.

    :raises InvalidIDToken: ``userinfo_sub_mismatch``.

    .. versionadded:: 0.1
    """
    sub = userinfo.get("sub")
    if not isinstance(sub, str) or sub != id_claims.get("sub"):
        raise InvalidIDToken(
            "userinfo_sub_mismatch",
            "The userinfo response is about another user than the ID token.",
        )


def merge_claims(
    id_claims: Mapping[str, Any], userinfo: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The claims given to the app: the userinfo values over the ID token's, except
    the ID token's own claims (``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``nonce``,
    ``azp``, ``at_hash``, ``auth_time``, ``acr``, ``amr`` ...: see
    :data:`PROTECTED_CLAIMS`), which only the signed ID token may set.

    Call :func:`check_userinfo` first.

    .. versionadded:: 0.1
    """
    merged = dict(id_claims)
    if userinfo:
        for name, value in userinfo.items():
            if name not in PROTECTED_CLAIMS:
                merged[name] = value
    return merged
