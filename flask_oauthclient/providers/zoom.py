"""Zoom (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    user = p.fetch_object(http, api_base_url, "users/me", timeout)
    given = p.text(user.get("first_name"))
    family = p.text(user.get("last_name"))
    full = " ".join(part for part in (given, family) if part)
    return p.claims(
        sub=p.subject(user.get("id")),
        name=p.text(user.get("display_name")) or full or None,
        given_name=given,
        family_name=family,
        picture=p.url(user.get("pic_url")),
        email=p.text(user.get("email")),
        # "verified": 1 when the account's email address is verified, else 0.
        email_verified=user.get("verified") == 1,
    )


PRESET = Preset(
    name="zoom",
    title="Zoom",
    authorize_url="https://zoom.us/oauth/authorize",
    token_url="https://zoom.us/oauth/token",
    revocation_url="https://zoom.us/oauth/revoke",
    api_base_url="https://api.zoom.us/v2/",
    id_token_algorithms=(),
    profile=_profile,
    console_url="https://marketplace.zoom.us/",
    notes="Plain OAuth 2: the profile comes from /users/me. Create a General app "
    "(user-managed) in the Zoom App Marketplace; its scopes are chosen there (it "
    "needs user:read:user, or user:read on older apps), so none is sent.",
)
