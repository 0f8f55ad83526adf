"""Twitch (plain OAuth 2 with the Helix users API; the profile is mapped to OpenID
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
    # Every Helix call names the app in a Client-Id header besides the token.
    client_id = getattr(http, "client_id", None)
    headers = {"Client-Id": client_id} if isinstance(client_id, str) else {}
    data = p.fetch_object(http, api_base_url, "users", timeout, headers=headers)
    user = p.dig(data, "data", 0)
    if not isinstance(user, dict):
        raise ValueError("Twitch sent no user.")
    login = p.text(user.get("login"))
    return p.claims(
        sub=p.subject(user.get("id")),
        preferred_username=login,
        name=p.text(user.get("display_name")) or login,
        picture=p.url(user.get("profile_image_url")),
        profile=f"https://www.twitch.tv/{login}" if login else None,
        email=p.text(user.get("email")),
        # Helix only ever returns the user's verified email address.
        email_verified=True,
    )


PRESET = Preset(
    name="twitch",
    title="Twitch",
    authorize_url="https://id.twitch.tv/oauth2/authorize",
    token_url="https://id.twitch.tv/oauth2/token",
    revocation_url="https://id.twitch.tv/oauth2/revoke",
    api_base_url="https://api.twitch.tv/helix/",
    scope=("user:read:email",),
    token_endpoint_auth_method="client_secret_post",
    pkce=False,
    id_token_algorithms=(),
    profile=_profile,
    console_url="https://dev.twitch.tv/console/apps",
    notes="Plain OAuth 2: the profile comes from the Helix users API. Every Helix "
    "call needs a Client-Id header besides the token: pass headers={'Client-Id': "
    "...} to oauth.twitch.get(). The user:read:email scope adds the verified email.",
)
