"""Sign In with LinkedIn using OpenID Connect."""

from __future__ import annotations

from . import Preset

PRESET = Preset(
    name="linkedin",
    title="LinkedIn",
    server_metadata_url="https://www.linkedin.com/oauth/.well-known/openid-configuration",
    scope=("openid", "profile", "email"),
    api_base_url="https://api.linkedin.com/v2/",
    # LinkedIn takes the client credentials in the body only, refuses PKCE for web
    # apps, and leaves the nonce out of its ID tokens.
    token_endpoint_auth_method="client_secret_post",
    pkce=False,
    nonce=False,
    console_url="https://www.linkedin.com/developers/apps",
    notes="Add the 'Sign In with LinkedIn using OpenID Connect' product to the app. "
    "LinkedIn issues no refresh tokens to most apps; access tokens last 60 days.",
)
