"""Dropbox (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    # An RPC endpoint without arguments: POST with no body (and no Content-Type).
    account = p.fetch_object(
        http, api_base_url, "users/get_current_account", timeout, method="POST"
    )
    return p.claims(
        sub=p.subject(account.get("account_id")),
        name=p.text(p.dig(account, "name", "display_name")),
        given_name=p.text(p.dig(account, "name", "given_name")),
        family_name=p.text(p.dig(account, "name", "surname")),
        picture=p.url(account.get("profile_photo_url")),
        email=p.text(account.get("email")),
        email_verified=account.get("email_verified"),
    )


PRESET = Preset(
    name="dropbox",
    title="Dropbox",
    authorize_url="https://www.dropbox.com/oauth2/authorize",
    token_url="https://api.dropboxapi.com/oauth2/token",
    api_base_url="https://api.dropboxapi.com/2/",
    # Without token_access_type=offline Dropbox issues no refresh token.
    authorize_params={"token_access_type": "offline"},
    id_token_algorithms=(),
    profile=_profile,
    console_url="https://www.dropbox.com/developers/apps",
    notes="Plain OAuth 2: the profile comes from users/get_current_account "
    "(account_info.read). No scope is sent, so the token gets every scope enabled "
    "on the app's Permissions tab; pass scope= to ask for fewer. Refresh tokens "
    "come with token_access_type=offline.",
)
