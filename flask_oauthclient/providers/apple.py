"""Sign in with Apple (OpenID Connect, with Apple's own client secret).

Apple has no client secret to copy: the app signs one, an ES256 JWT, with the
private key (``.p8``) it downloads from Apple's developer console. Apple posts the
authorization response (``response_mode=form_post``, which it requires for the
``name`` and ``email`` scopes), and with it, on the user's first login only, their
name in a ``user`` form field.
"""

from __future__ import annotations

import json
import typing as t

from ..errors import ConfigurationError
from . import Preset

if t.TYPE_CHECKING:
    from ..client_auth import SigningKey

ISSUER = "https://appleid.apple.com"
#: Seconds a client secret is valid; Apple accepts up to six months (15777000 s).
#: It is made again ten minutes before it expires.
SECRET_LIFETIME = 24 * 3600
#: The longest name part taken from the ``user`` field.
_MAX_NAME = 256


def client_secret(
    *, client_id: str, team_id: str | None, key: SigningKey, now: int
) -> tuple[str, int]:
    """Apple's client secret: an ES256 JWT signed with the app's ``.p8`` key, with
    the key id in its header, issued by the team for the Services ID.

    :raises ConfigurationError: no team id, no key id, or not a P-256 key.

    .. versionadded:: 0.1
    """
    if not team_id:
        raise ConfigurationError(
            "Provider 'apple' needs team_id= (the Team ID of your Apple developer "
            "account), or OAUTHCLIENT_APPLE_TEAM_ID, to sign its client secret."
        )
    if not key.kid:
        raise ConfigurationError(
            "Provider 'apple' needs client_key_id= (the Key ID of the .p8 key), or "
            "OAUTHCLIENT_APPLE_CLIENT_KEY_ID, to sign its client secret."
        )
    if key.alg != "ES256":
        raise ConfigurationError(
            "Provider 'apple': client_private_key must be the .p8 key from Apple "
            f"(an EC P-256 key, ES256), not a key that signs with {key.alg}."
        )
    expires = now + SECRET_LIFETIME
    secret = key.sign(
        {"iss": team_id, "sub": client_id, "aud": ISSUER, "iat": now, "exp": expires}
    )
    return secret, expires


def user_claims(params: t.Mapping[str, str]) -> dict[str, str]:
    """The name claims of the ``user`` field Apple posts on the first login,
    ``{"name": {"firstName": ..., "lastName": ...}, "email": ...}``: ``given_name``,
    ``family_name`` and ``name``. Anything malformed gives none.

    .. versionadded:: 0.1
    """
    raw = params.get("user")
    if not raw:
        return {}
    try:
        user = json.loads(raw)
    except ValueError:
        return {}
    name = user.get("name") if isinstance(user, dict) else None
    if not isinstance(name, dict):
        return {}
    claims: dict[str, str] = {}
    for claim, field in (("given_name", "firstName"), ("family_name", "lastName")):
        value = name.get(field)
        if isinstance(value, str) and value.strip():
            claims[claim] = value.strip()[:_MAX_NAME]
    full = " ".join(claims[c] for c in ("given_name", "family_name") if c in claims)
    if full:
        claims["name"] = full
    return claims


PRESET = Preset(
    name="apple",
    title="Apple",
    server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
    scope=("openid", "name", "email"),
    response_mode="form_post",
    token_endpoint_auth_method="client_secret_post",
    client_secret_signer=client_secret,
    callback_claims=user_claims,
    # Apple has no userinfo endpoint: the ID token carries email and sub.
    userinfo="never",
    console_url="https://developer.apple.com/account/resources/identifiers/list/serviceId",
    notes="The client id is the Services ID; the client secret is signed with the "
    ".p8 key: pass team_id, client_key_id and client_private_key. Apple posts the "
    "callback (form_post) and the user's name only on their first login.",
)
