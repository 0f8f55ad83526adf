"""Sign in with Slack (OpenID Connect)."""

from __future__ import annotations

from . import Preset

PRESET = Preset(
    name="slack",
    title="Slack",
    server_metadata_url="https://slack.com/.well-known/openid-configuration",
    scope=("openid", "email", "profile"),
    api_base_url="https://slack.com/api/",
    # Slack's openid.connect.token method takes the client credentials as
    # parameters, and fails when PKCE is combined with a client secret.
    token_endpoint_auth_method="client_secret_post",
    pkce=False,
    console_url="https://api.slack.com/apps",
    notes="Add the callback URL under OAuth & Permissions > Redirect URLs (Slack "
    "requires https) and the user scopes openid, email and profile. The token only "
    "reads the user's identity; tokens expire only with token rotation enabled.",
)
