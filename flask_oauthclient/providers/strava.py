"""Strava (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    athlete = p.fetch_object(http, api_base_url, "athlete", timeout)
    sub = p.subject(athlete.get("id"))
    given = p.text(athlete.get("firstname"))
    family = p.text(athlete.get("lastname"))
    full = " ".join(part for part in (given, family) if part)
    # Strava shares no email address.
    return p.claims(
        sub=sub,
        preferred_username=p.text(athlete.get("username")),
        name=full or None,
        given_name=given,
        family_name=family,
        # Without a photo, "profile" is a relative placeholder path: p.url drops it.
        picture=p.url(athlete.get("profile")),
        profile=f"https://www.strava.com/athletes/{sub}",
    )


PRESET = Preset(
    name="strava",
    title="Strava",
    authorize_url="https://www.strava.com/oauth/authorize",
    token_url="https://www.strava.com/oauth/token",
    api_base_url="https://www.strava.com/api/v3/",
    scope=("read",),
    # Strava reads a comma-separated scope list, takes the client credentials in
    # the body, and documents no PKCE.
    scope_separator=",",
    token_endpoint_auth_method="client_secret_post",
    pkce=False,
    id_token_algorithms=(),
    profile=_profile,
    console_url="https://www.strava.com/settings/api",
    notes="Plain OAuth 2: the profile comes from /athlete; Strava shares no email "
    "address. Strava checks only the callback's host, set as the app's "
    "'Authorization Callback Domain' (localhost and 127.0.0.1 are allowed). "
    "Refresh tokens rotate.",
)
