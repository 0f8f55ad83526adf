"""Keycloak (OpenID Connect). Each realm is an issuer of its own: pass its discovery
URL as ``server_metadata_url``."""

from __future__ import annotations

from . import Preset

PRESET = Preset(
    name="keycloak",
    title="Keycloak",
    scope=("openid", "email", "profile"),
    notes="Pass server_metadata_url='https://{host}/realms/{realm}/.well-known/"
    "openid-configuration' (Keycloak 17 and later; older versions have an /auth "
    "prefix). Create a confidential OpenID Connect client with the Standard flow "
    "and add the callback URL to its Valid redirect URIs.",
)
