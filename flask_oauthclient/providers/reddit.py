"""Reddit (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import html
import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    user = p.fetch_object(http, api_base_url, "api/v1/me", timeout)
    name = p.text(user.get("name"))
    icon = p.text(user.get("icon_img"))
    # Reddit gives no email address at all (has_verified_email says whether the
    # account has one, not what it is).
    return p.claims(
        sub=p.subject(user.get("id")),
        preferred_username=name,
        name=name,
        # The icon URL comes HTML-escaped ("&amp;" between query parameters).
        picture=p.url(html.unescape(icon)) if icon else None,
        profile=f"https://www.reddit.com/user/{name}/" if name else None,
    )


PRESET = Preset(
    name="reddit",
    title="Reddit",
    authorize_url="https://www.reddit.com/api/v1/authorize",
    token_url="https://www.reddit.com/api/v1/access_token",
    revocation_url="https://www.reddit.com/api/v1/revoke_token",
    api_base_url="https://oauth.reddit.com/",
    scope=("identity",),
    # Without duration=permanent Reddit issues no refresh token.
    authorize_params={"duration": "permanent"},
    pkce=False,
    id_token_algorithms=(),
    # Reddit throttles or refuses generic user agents (python-requests/...): pass
    # headers={"User-Agent": "web:<app id>:<version> (by /u/<your username>)"}.
    headers={"User-Agent": "web:flask-oauthclient:0.1 (Reddit preset default)"},
    profile=_profile,
    console_url="https://www.reddit.com/prefs/apps",
    notes="Plain OAuth 2: the profile comes from /api/v1/me; Reddit shares no email "
    "address. Create a 'web app'. Reddit requires a unique, descriptive User-Agent: "
    "pass headers={'User-Agent': 'web:<app id>:<version> (by /u/<username>)'}.",
)
