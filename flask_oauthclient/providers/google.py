"""Google (OpenID Connect)."""

from __future__ import annotations

from . import Preset

PRESET = Preset(
    name="google",
    title="Google",
    server_metadata_url="https://accounts.google.com/.well-known/openid-configuration",
    scope=("openid", "email", "profile"),
    api_base_url="https://www.googleapis.com/",
    # Google issues a refresh token only with access_type=offline, and again after the
    # first consent only with prompt=consent.
    authorize_params={"access_type": "offline", "prompt": "consent"},
    # Incremental authorization: the new token keeps the scopes granted before.
    scope_request_params={"include_granted_scopes": "true"},
    console_url="https://console.cloud.google.com/apis/credentials",
    notes="A refresh token is requested with access_type=offline and prompt=consent.",
)
