"""Bitbucket Cloud (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    user = p.fetch_object(http, api_base_url, "user", timeout)
    nickname = p.text(user.get("nickname")) or p.text(user.get("username"))
    # The primary address and whether it is confirmed (needs the Email permission);
    # the primary one is on the first page.
    emails = p.dig(p.try_fetch(http, api_base_url, "user/emails", timeout), "values")
    email, verified = p.primary_email(
        emails, primary="is_primary", verified="is_confirmed"
    )
    return p.claims(
        # The uuid ("{...}") names the user for Bitbucket; account_id is the
        # Atlassian account, shared with Jira and Confluence.
        sub=p.subject(user.get("uuid")),
        preferred_username=nickname,
        name=p.text(user.get("display_name")) or nickname,
        picture=p.url(p.dig(user, "links", "avatar", "href")),
        profile=p.url(p.dig(user, "links", "html", "href")),
        email=email,
        email_verified=verified,
    )


PRESET = Preset(
    name="bitbucket",
    title="Bitbucket",
    authorize_url="https://bitbucket.org/site/oauth2/authorize",
    token_url="https://bitbucket.org/site/oauth2/access_token",
    api_base_url="https://api.bitbucket.org/2.0/",
    # Bitbucket takes the scopes from the OAuth consumer's permissions, not from
    # the request, and documents no PKCE.
    pkce=False,
    id_token_algorithms=(),
    profile=_profile,
    notes="Plain OAuth 2: the profile comes from /user and the primary confirmed "
    "email from /user/emails. Create an OAuth consumer under Workspace settings > "
    "OAuth consumers with the callback URL and the Account: Read and Email "
    "permissions; the scope is set there, not in register().",
)
