"""GitHub (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    data = p.fetch_object(http, api_base_url, "user", timeout)
    login = p.text(data.get("login"))
    # The public profile email may be unverified or hidden: ask for the primary,
    # verified one (needs the user:email scope).
    emails = p.try_fetch(http, api_base_url, "user/emails", timeout)
    email, verified = p.primary_email(emails, primary="primary", verified="verified")
    return p.claims(
        sub=p.subject(data.get("id")),
        preferred_username=login,
        name=p.text(data.get("name")) or login,
        picture=p.url(data.get("avatar_url")),
        profile=p.url(data.get("html_url")),
        email=email,
        email_verified=verified,
    )


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
