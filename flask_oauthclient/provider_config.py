"""The schema of a provider's configuration: every ``register`` keyword, its default
and its meaning, declared once in :class:`ProviderConfig`. ``register()`` checks its
keywords against it, a preset supplies defaults for the fields it shares with it,
and the per-app provider reads it.
"""

from __future__ import annotations

import types
import typing as t
from dataclasses import dataclass
from dataclasses import fields

if t.TYPE_CHECKING:
    import requests

    from .client_auth import SecretSigner
    from .tokens import Token

#: ``client_private_key``: a PEM private key (text or bytes) or a private JWK, or a
#: list of them (the first signs).
ClientKeys = t.Union[
    str,
    bytes,
    t.Mapping[str, t.Any],
    t.Sequence[t.Union[str, bytes, t.Mapping[str, t.Any]]],
]

#: Reads claims from the authorization response's parameters (Apple's ``user``).
CallbackClaims = t.Callable[[t.Mapping[str, str]], t.Mapping[str, t.Any]]

#: Maps a plain OAuth 2 provider's profile to OpenID Connect claim names. It is called
#: with the provider's per-request session (the token is set), the API base URL and
#: the request timeout, and returns at least ``sub``.
ProfileMapper = t.Callable[["requests.Session", str, float], dict[str, t.Any]]


@dataclass(frozen=True)
class ProviderConfig:
    """A registered provider's configuration: the ``register`` keywords merged over
    its preset's defaults. See :doc:`/providers`.

    .. versionadded:: 0.1
    """

    client_id: str | None = None
    client_secret: str | None = None
    #: The OpenID discovery document (or RFC 8414 metadata) URL.
    server_metadata_url: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    jwks_uri: str | None = None
    issuer: str | None = None
    revocation_url: str | None = None
    end_session_url: str | None = None
    #: The scopes asked for at login (a list, or one space-separated string).
    scope: t.Sequence[str] | str | None = None
    #: The scopes that may be asked for later, on top of ``scope``, with
    #: ``request_scopes`` (incremental authorization, see :doc:`/scopes`); no
    #: other scope can be.
    #:
    #: .. versionadded:: 0.1
    optional_scopes: t.Sequence[str] | str | None = None
    #: Extra parameters of the authorization request of a scope request: the
    #: provider's own flag for keeping the scopes granted before (Google's
    #: ``{"include_granted_scopes": "true"}``).
    #:
    #: .. versionadded:: 0.1
    scope_request_params: t.Mapping[str, str] | None = None
    #: What relative API URLs are joined to.
    api_base_url: str | None = None
    #: Extra parameters of the authorization request.
    authorize_params: t.Mapping[str, str] | None = None
    #: How the provider delivers the authorization response: ``None`` (its
    #: default, the query string of a ``GET``), ``"query"``, or ``"form_post"``
    #: (a ``POST`` of a form, OAuth 2.0 Form Post Response Mode; see
    #: :ref:`form-post`).
    #:
    #: .. versionadded:: 0.1
    response_mode: str | None = None
    #: How the app authenticates at the token endpoint (and for revocation):
    #: ``"client_secret_basic"`` (the RFC 6749 default), ``"client_secret_post"``,
    #: or a signed JWT assertion (RFC 7523): ``"private_key_jwt"`` (with
    #: ``client_private_key``) or ``"client_secret_jwt"`` (HS256 with the client
    #: secret). See :ref:`client-authentication`.
    token_endpoint_auth_method: str = "client_secret_basic"
    #: The app's private key for ``private_key_jwt`` (or for a preset that signs
    #: its client secret, Apple's): PEM text or bytes, or a private JWK dict; or a
    #: list of them, whose first key signs and whose others are published with it
    #: for a key rotation.
    #:
    #: .. versionadded:: 0.1
    client_private_key: ClientKeys | None = None
    #: The ``kid`` of ``client_private_key``'s (first) key, as the provider knows
    #: it; by default the JWK's own ``kid``, or none.
    #:
    #: .. versionadded:: 0.1
    client_key_id: str | None = None
    #: Apple: the team id, the issuer of the client secret the app signs with
    #: ``client_private_key`` (see ``client_secret_signer``).
    #:
    #: .. versionadded:: 0.1
    team_id: str | None = None
    #: A preset's maker of the client secret, a JWT signed with
    #: ``client_private_key`` (Apple's); the secret is made again shortly before it
    #: expires. ``None``: ``client_secret`` is used as it is.
    #:
    #: .. versionadded:: 0.1
    client_secret_signer: SecretSigner | None = None
    #: A preset's reader of extra claims in the authorization response (Apple
    #: posts the user's name, on the first login only, in its ``user`` field).
    #: Called with the callback's parameters; of what it returns, only the name
    #: claims (``name``, ``given_name``, ``family_name``, ``middle_name``,
    #: ``nickname``) reach ``on_login``, and only where the verified claims have
    #: none: the browser posts them, nobody signed them.
    #:
    #: .. versionadded:: 0.1
    callback_claims: CallbackClaims | None = None
    #: How the scope list is joined in the authorization request.
    scope_separator: str = " "
    #: Whether PKCE (RFC 7636, S256) is used.
    pkce: bool = True
    #: Whether a token response without ``token_type`` is refused at login
    #: (RFC 6749 §5.1 requires it); ``False`` only for a provider known to leave it
    #: out.
    token_type_required: bool = True
    #: Signing algorithms accepted for ID tokens.
    id_token_algorithms: t.Sequence[str] = ("RS256",)
    #: OpenID Connect: whether a login reads the userinfo endpoint on top of the
    #: ID token: ``"auto"`` when the ID token lacks a claim of the requested
    #: scopes (``email`` → ``email``, ``email_verified``; ``profile`` → ``name``;
    #: ``phone``, ``address``), ``"always"`` or ``"never"``.
    userinfo: str = "auto"
    #: For plain OAuth 2 providers: builds the OpenID Connect claims.
    profile: ProfileMapper | None = None
    #: The name shown to users; by default made from the provider's name.
    title: str | None = None
    #: ``False``: an expired token raises ``TokenExpiredError`` (see :doc:`/refresh`).
    auto_refresh: bool = True
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
    headers: t.Mapping[str, str] | None = None
    #: ``...``: refreshed tokens are saved by the storage (the default); a callable:
    #: also called with each one after it was saved; ``None``: nothing is saved and
    #: ``TokenUpdated`` is raised with it, as requests-oauthlib does.
    token_updater: t.Callable[[Token], None] | None | types.EllipsisType = ...

    @classmethod
    def keywords(cls) -> frozenset[str]:
        """The names ``register`` accepts."""
        return frozenset(f.name for f in fields(cls))


def merge(
    defaults: t.Mapping[str, t.Any], keywords: t.Mapping[str, t.Any]
) -> dict[str, t.Any]:
    """The ``register`` keywords over a preset's ``defaults`` (see
    :func:`preset_defaults`) over the schema's.

    :raises TypeError: a keyword is not a field of :class:`ProviderConfig`.
    """
    unknown = set(keywords) - ProviderConfig.keywords()
    if unknown:
        raise TypeError(
            f"register() got unknown keywords: {', '.join(sorted(unknown))}."
        )
    merged = {f.name: f.default for f in fields(ProviderConfig)}
    merged.update(defaults)
    merged.update(keywords)
    return merged


def preset_defaults(preset: t.Any) -> dict[str, t.Any]:
    """The ``register`` keywords a preset (a dataclass whose fields share names with
    :class:`ProviderConfig`) supplies: those set, sequences as lists and mappings as
    dicts, so that each provider gets its own copy."""
    names = ProviderConfig.keywords()
    out: dict[str, t.Any] = {}
    for f in fields(preset):
        value = getattr(preset, f.name)
        if f.name not in names or value is None:
            continue
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, t.Mapping):
            value = dict(value)
        out[f.name] = value
    return out


def display_title(name: str, title: str | None) -> str:
    """The name shown to users: ``title``, or ``my_corp`` → ``My Corp``."""
    return title or name.replace("_", " ").title()
