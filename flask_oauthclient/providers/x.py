"""X, formerly Twitter (plain OAuth 2 with PKCE; the profile is mapped to OpenID
Connect claims)."""

from __future__ import annotations

import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    data = p.fetch_object(
        http,
        api_base_url,
        "users/me",
        timeout,
        params={"user.fields": "id,name,username,profile_image_url"},
    )
    user = data.get("data")
    if not isinstance(user, dict):
        raise ValueError("X sent no user.")
    username = p.text(user.get("username"))
    # X's API shares no email address with this scope set.
    return p.claims(
        sub=p.subject(user.get("id")),
        preferred_username=username,
        name=p.text(user.get("name")) or username,
        picture=p.url(user.get("profile_image_url")),
        profile=f"https://x.com/{username}" if username else None,
    )


PRESET = Preset(
    name="x",
    title="X",
    authorize_url="https://x.com/i/oauth2/authorize",
    token_url="https://api.x.com/2/oauth2/token",
    revocation_url="https://api.x.com/2/oauth2/revoke",
    api_base_url="https://api.x.com/2/",
    # users.read needs tweet.read; offline.access asks for a refresh token.
    scope=("tweet.read", "users.read", "offline.access"),
    id_token_algorithms=(),
    profile=_profile,
    console_url="https://developer.x.com/en/portal/dashboard",
    notes="Plain OAuth 2 with PKCE (required by X): the profile comes from "
    "/2/users/me. Enable OAuth 2.0 in the app's User authentication settings as a "
    "confidential client (Web App) and add the callback URL there.",
)
