"""GitLab.com or a self-managed GitLab (OpenID Connect)."""

from __future__ import annotations

from . import Preset

PRESET = Preset(
    name="gitlab",
    title="GitLab",
    server_metadata_url="https://gitlab.com/.well-known/openid-configuration",
    scope=("openid", "profile", "email"),
    api_base_url="https://gitlab.com/api/v4/",
    console_url="https://gitlab.com/-/user_settings/applications",
    notes="For a self-managed GitLab pass server_metadata_url="
    "'https://gitlab.example.com/.well-known/openid-configuration' and "
    "api_base_url='https://gitlab.example.com/api/v4/'. Add the read_user or api "
    "scope to call the API.",
)
