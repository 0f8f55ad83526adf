"""GitHub (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import typing as t
from urllib.parse import urljoin

from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    user = http.get(urljoin(api_base_url, "user"), timeout=timeout)
    user.raise_for_status()
    data = user.json()
    claims: dict[str, t.Any] = {
        "sub": str(data["id"]),
        "preferred_username": data.get("login"),
        "name": data.get("name") or data.get("login"),
        "picture": data.get("avatar_url"),
        "profile": data.get("html_url"),
        "email": None,
        "email_verified": False,
    }
    # The public profile email may be unverified or hidden: ask for the primary,
    # verified one (needs the user:email scope).
    emails = http.get(urljoin(api_base_url, "user/emails"), timeout=timeout)
    if emails.ok:
        for entry in emails.json():
            if isinstance(entry, dict) and entry.get("primary"):
                claims["email"] = entry.get("email")
                claims["email_verified"] = bool(entry.get("verified"))
                break
    return {k: v for k, v in claims.items() if v is not None}


PRESET = Preset(
    name="github",
    title="GitHub",
    authorize_url="https://github.com/login/oauth/authorize",
    token_url="https://github.com/login/oauth/access_token",
    api_base_url="https://api.github.com/",
    revocation_url=None,
    scope=("read:user", "user:email"),
    # GitHub's classic OAuth apps read the scope list comma-separated.
    scope_separator=",",
    token_endpoint_auth_method="client_secret_post",
    id_token_algorithms=(),
    profile=_profile,
    console_url="https://github.com/settings/developers",
    notes="Plain OAuth 2: the profile comes from /user and the primary verified "
    "email from /user/emails.",
)
