"""Okta (OpenID Connect). Each Okta organization has its own domain: pass its
discovery URL as ``server_metadata_url``."""

from __future__ import annotations

from . import Preset

PRESET = Preset(
    name="okta",
    title="Okta",
    scope=("openid", "email", "profile"),
    notes="Pass server_metadata_url='https://{yourOktaDomain}/oauth2/default/"
    ".well-known/openid-configuration' (the 'default' custom authorization server) "
    "or 'https://{yourOktaDomain}/.well-known/openid-configuration' (the org "
    "authorization server). For refresh tokens, allow the Refresh Token grant in "
    "the app integration and add 'offline_access' to the scope.",
)
