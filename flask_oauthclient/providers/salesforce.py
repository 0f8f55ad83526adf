"""Salesforce (OpenID Connect)."""

from __future__ import annotations

from . import Preset

PRESET = Preset(
    name="salesforce",
    title="Salesforce",
    server_metadata_url="https://login.salesforce.com/.well-known/openid-configuration",
    scope=("openid", "profile", "email", "refresh_token"),
    token_endpoint_auth_method="client_secret_post",
    notes="Register under Setup > App Manager (a connected app) or External Client "
    "App Manager. It must allow the OAuth scopes openid, "
    "'Access the identity URL service' (profile, email) and 'Perform "
    "requests at any time' (refresh_token). For a sandbox pass server_metadata_url="
    "'https://test.salesforce.com/.well-known/openid-configuration'. The REST API "
    "lives at the token's instance_url, so no api_base_url is set: call it with "
    "full URLs.",
)
