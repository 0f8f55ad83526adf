"""Auth0 (OpenID Connect). Each Auth0 tenant has its own domain: pass its discovery
URL as ``server_metadata_url``."""

from __future__ import annotations

from . import Preset

PRESET = Preset(
    name="auth0",
    title="Auth0",
    scope=("openid", "email", "profile", "offline_access"),
    # New Regular Web Applications authenticate with "Client Secret (Post)".
    token_endpoint_auth_method="client_secret_post",
    console_url="https://manage.auth0.com/",
    notes="Pass server_metadata_url='https://{yourDomain}/.well-known/"
    "openid-configuration' (the tenant domain, e.g. example.eu.auth0.com, or a "
    "custom domain). Refresh tokens need the Refresh Token grant on the application "
    "(and 'Allow Offline Access' on the API when an audience is requested).",
)
