"""Discord (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests

_CDN = "https://cdn.discordapp.com/"


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    user = p.fetch_object(http, api_base_url, "users/@me", timeout)
    sub = p.subject(user.get("id"))
    avatar = p.text(user.get("avatar"))
    username = p.text(user.get("username"))
    return p.claims(
        sub=sub,
        preferred_username=username,
        name=p.text(user.get("global_name")) or username,
        picture=f"{_CDN}avatars/{sub}/{avatar}.png" if avatar else None,
        email=p.text(user.get("email")),
        # "verified": whether the account's email address has been verified.
        email_verified=user.get("verified"),
    )


PRESET = Preset(
    name="discord",
    title="Discord",
    authorize_url="https://discord.com/oauth2/authorize",
    token_url="https://discord.com/api/oauth2/token",
    revocation_url="https://discord.com/api/oauth2/token/revoke",
    api_base_url="https://discord.com/api/v10/",
    scope=("identify", "email"),
    id_token_algorithms=(),
    profile=_profile,
    console_url="https://discord.com/developers/applications",
    notes="Plain OAuth 2: the profile comes from /users/@me; the email scope adds "
    "the email address and whether Discord verified it.",
)
