"""Facebook Login (plain OAuth 2; the profile is mapped to OpenID Connect claims)."""

from __future__ import annotations

import typing as t

from . import _profile as p
from . import Preset

if t.TYPE_CHECKING:
    import requests


def _profile(
    http: requests.Session, api_base_url: str, timeout: float
) -> dict[str, t.Any]:
    user = p.fetch_object(
        http,
        api_base_url,
        "me",
        timeout,
        params={"fields": "id,name,first_name,last_name,email,picture"},
    )
    picture = p.dig(user, "picture", "data")
    return p.claims(
        sub=p.subject(user.get("id")),
        name=p.text(user.get("name")),
        given_name=p.text(user.get("first_name")),
        family_name=p.text(user.get("last_name")),
        picture=None
        if p.dig(picture, "is_silhouette") is True
        else p.url(p.dig(picture, "url")),
        # Facebook does not say whether the address was confirmed.
        email=p.text(user.get("email")),
    )


PRESET = Preset(
    name="facebook",
    title="Facebook",
    # Unversioned URLs: a pinned Graph API version expires after two years.
    authorize_url="https://www.facebook.com/dialog/oauth",
    token_url="https://graph.facebook.com/oauth/access_token",
    api_base_url="https://graph.facebook.com/",
    scope=("public_profile", "email"),
    scope_separator=",",
    token_endpoint_auth_method="client_secret_post",
    id_token_algorithms=(),
    profile=_profile,
    console_url="https://developers.facebook.com/apps/",
    notes="Plain OAuth 2: the profile comes from /me. Facebook issues no refresh "
    "tokens (user tokens last about 60 days) and does not say whether the email is "
    "verified. Add the callback URL under Facebook Login > Settings > Valid OAuth "
    "Redirect URIs.",
)
