"""Provider presets: what is known about a provider, as data.

Each preset lives in its own module, ``flask_oauthclient.providers.<name>``, and
defines ``PRESET``. ``oauth.register("google", client_id=..., client_secret=...)``
loads the preset of that name; any keyword given to ``register`` overrides it.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing as t
from dataclasses import dataclass
from dataclasses import field

from ..provider_config import preset_defaults
from ..provider_config import ProfileMapper


@dataclass(frozen=True)
class Preset:
    """Everything a preset knows about a provider. The fields that are also
    ``register`` keywords supply that keyword's default.

    .. versionadded:: 0.1
    """

    #: The name the preset is registered under (``"google"``).
    name: str
    #: The name shown to users (``"Google"``).
    title: str
    server_metadata_url: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    jwks_uri: str | None = None
    issuer: str | None = None
    revocation_url: str | None = None
    end_session_url: str | None = None
    scope: tuple[str, ...] = ()
    api_base_url: str | None = None
    authorize_params: t.Mapping[str, str] = field(default_factory=dict)
    #: ``"client_secret_basic"`` (the RFC 6749 default) or ``"client_secret_post"``.
    token_endpoint_auth_method: str = "client_secret_basic"
    #: How the scope list is joined in the authorization request.
    scope_separator: str = " "
    #: Whether the provider supports PKCE (RFC 7636); S256 is always used when so.
    pkce: bool = True
    #: Whether the provider's token responses carry ``token_type`` (RFC 6749 §5.1);
    #: ``False`` for a provider documented to leave it out.
    token_type_required: bool = True
    #: Signing algorithms accepted for ID tokens.
    id_token_algorithms: tuple[str, ...] = ("RS256",)
    #: Whether the provider puts the OpenID Connect ``nonce`` into the ID token. With
    #: False (LinkedIn) no nonce is sent and none is expected; the ID token is still
    #: checked otherwise.
    nonce: bool = True
    #: For a multi-tenant issuer: the part of the issuer that stands for the tenant
    #: (Microsoft's ``https://login.microsoftonline.com/{tenantid}/v2.0``). An ID
    #: token is accepted when its ``iss`` equals the issuer with this placeholder
    #: replaced by the token's ``tid`` claim (see
    #: :func:`flask_oauthclient.oidc.tenant_issuer_matcher`). Ignored when the
    #: configured issuer does not contain the placeholder (a single tenant).
    tenant_placeholder: str | None = None
    #: HTTP headers sent with every request to the provider: the token requests,
    #: the profile and the API calls (Reddit refuses the default ``User-Agent``).
    headers: t.Mapping[str, str] = field(default_factory=dict)
    #: For plain OAuth 2 providers: builds the OpenID Connect claims.
    profile: ProfileMapper | None = None
    #: Where a developer registers the app and its callback URL.
    console_url: str | None = None
    #: Extra notes for the docs and ``flask oauth providers``.
    notes: str = ""

    def register_defaults(self) -> dict[str, t.Any]:
        """The ``register`` keywords this preset supplies."""
        return preset_defaults(self)


def get_preset(name: str) -> Preset | None:
    """Return the preset called ``name``, or ``None`` if there is none."""
    if not name.isidentifier() or name.startswith("_"):
        return None
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{name}":
            return None
        raise
    return t.cast(Preset, module.PRESET)


def preset_names() -> list[str]:
    """The names of all presets shipped with the package."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
    )
