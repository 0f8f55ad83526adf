"""Microsoft Entra ID, work, school and personal Microsoft accounts (OpenID Connect,
v2.0 endpoints)."""

from __future__ import annotations

from . import Preset

PRESET = Preset(
    name="microsoft",
    title="Microsoft",
    # The "common" tenant takes work, school and personal accounts. Its discovery
    # document names the issuer as a template; each ID token carries the issuer of
    # the user's own tenant, matched against the template with the token's tid.
    server_metadata_url=(
        "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
    ),
    issuer="https://login.microsoftonline.com/{tenantid}/v2.0",
    tenant_placeholder="{tenantid}",
    scope=("openid", "email", "profile", "offline_access"),
    api_base_url="https://graph.microsoft.com/v1.0/",
    token_endpoint_auth_method="client_secret_post",
    console_url=(
        "https://entra.microsoft.com/"
        "#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade"
    ),
    notes="Signs in any tenant's users through the 'common' tenant; restrict tenants "
    "in on_login with the tid claim, or pass the server_metadata_url and issuer of "
    "one tenant. Microsoft does not say whether the email claim is verified: never "
    "link accounts by it.",
)
