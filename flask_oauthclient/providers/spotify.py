"""Spotify (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    user = p.fetch_object(http, api_base_url, "me", timeout)
    sub = p.subject(user.get("id"))
    return p.claims(
        sub=sub,
        preferred_username=sub,
        name=p.text(user.get("display_name")),
        picture=p.url(p.dig(user, "images", 0, "url")),
        profile=p.url(p.dig(user, "external_urls", "spotify")),
        # Spotify says the address is unverified: it is as the user typed it.
        email=p.text(user.get("email")),
    )


PRESET = Preset(
    name="spotify",
    title="Spotify",
    authorize_url="https://accounts.spotify.com/authorize",
    token_url="https://accounts.spotify.com/api/token",
    api_base_url="https://api.spotify.com/v1/",
    scope=("user-read-email",),
    id_token_algorithms=(),
    profile=_profile,
    console_url="https://developer.spotify.com/dashboard",
    notes="Plain OAuth 2: the profile comes from /me. Spotify's email is never "
    "verified. Spotify refuses 'localhost' in redirect URIs: for local development "
    "register http://127.0.0.1:PORT/... instead.",
)
