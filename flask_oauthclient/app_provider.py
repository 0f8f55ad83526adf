"""A provider as configured for one app: credentials, endpoints (explicit or
discovered), the connection pool, and the protocol steps of a login (authorization
URL, code exchange, identity checks), revocation and ID-token checks."""

from __future__ import annotations

import itertools
import logging
import types
import typing as t
from urllib.parse import urlencode
from urllib.parse import urlsplit

import requests
from oauthlib.common import add_params_to_uri
from oauthlib.oauth2 import OAuth2Error

from .client_auth import check_supported
from .client_auth import ClientAuth
from .client_auth import JWT_METHODS
from .errors import CallbackError
from .errors import ConfigurationError
from .errors import InsecureTransportError
from .errors import InvalidIDToken
from .errors import ProviderError
from .errors import refusal_description
from .provider_config import display_title
from .provider_config import ProviderConfig
from .tokens import Identity
from .tokens import Token
from .transport import body_cap
from .transport import capped
from .transport import check_token_response
from .transport import Environment
from .transport import make_adapter
from .transport import MAX_TOKEN_RESPONSE_BYTES
from .transport import MAX_USERINFO_RESPONSE_BYTES
from .transport import PooledOAuth2Session
from .transport import translate_http_error

if t.TYPE_CHECKING:
    from . import oidc
    from .flow import PendingLogin
    from .provider_config import CallbackClaims
    from .provider_config import ProfileMapper
    from .settings import Settings

log = logging.getLogger("flask_oauthclient")

S = t.TypeVar("S", bound=PooledOAuth2Session)

_serials = itertools.count()

#: The claims whose absence from the ID token makes an ``"auto"`` login read the
#: userinfo endpoint, per requested scope (OpenID Connect Core §5.4).
_SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "email": ("email", "email_verified"),
    "profile": ("name",),
    "phone": ("phone_number",),
    "address": ("address",),
}

_ENDPOINT_KEYS = {
    "authorize_url": "authorization_endpoint",
    "token_url": "token_endpoint",
    "userinfo_url": "userinfo_endpoint",
    "jwks_uri": "jwks_uri",
    "issuer": "issuer",
    "revocation_url": "revocation_endpoint",
    "end_session_url": "end_session_endpoint",
}


class AppProvider:
    """A provider as configured for one app: credentials, resolved endpoints,
    connection pool and caches. Created by ``init_app``; reached through
    ``current_app``."""

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        settings: Settings,
        app_config: t.Mapping[str, t.Any],
    ) -> None:
        self.name = name
        self.settings = settings
        prefix = f"OAUTHCLIENT_{name.upper()}_"
        self.client_id: str | None = config.client_id or app_config.get(
            prefix + "CLIENT_ID"
        )
        if not self.client_id:
            raise ConfigurationError(
                f"Provider {name!r} has no client_id: pass client_id= to "
                f"oauth.register() or set {prefix}CLIENT_ID in the app config."
            )
        #: How this client authenticates at the token and revocation endpoints.
        self.auth = ClientAuth(
            name,
            config.token_endpoint_auth_method,
            client_id=self.client_id,
            client_secret=config.client_secret
            or app_config.get(prefix + "CLIENT_SECRET"),
            private_key=config.client_private_key
            or app_config.get(prefix + "CLIENT_PRIVATE_KEY"),
            key_id=config.client_key_id or app_config.get(prefix + "CLIENT_KEY_ID"),
            team_id=config.team_id or app_config.get(prefix + "TEAM_ID"),
            secret_signer=config.client_secret_signer,
        )
        self.callback_claims: CallbackClaims | None = config.callback_claims
        self.title = display_title(name, config.title)
        scope = config.scope
        if isinstance(scope, str):
            scope = scope.split()
        self.scope: list[str] = list(scope or [])
        optional = config.optional_scopes
        if isinstance(optional, str):
            optional = optional.split()
        #: The scopes a scope request may add (:mod:`.scopes`).
        self.optional_scopes: list[str] = list(optional or [])
        self.scope_request_params: dict[str, str] = dict(
            config.scope_request_params or {}
        )
        self.scope_separator: str = config.scope_separator
        self.authorize_params: dict[str, str] = dict(config.authorize_params or {})
        self.api_base_url: str | None = config.api_base_url
        self.auth_method: str = config.token_endpoint_auth_method
        if config.response_mode not in (None, "query", "form_post"):
            raise ConfigurationError(
                f"Provider {name!r}: response_mode must be 'query' or 'form_post'."
            )
        #: ``"form_post"``: the callback takes the provider's answer by ``POST``.
        self.response_mode: str | None = config.response_mode
        self.pkce: bool = bool(config.pkce)
        self.token_type_required: bool = bool(config.token_type_required)
        if config.userinfo not in ("auto", "always", "never"):
            raise ConfigurationError(
                f"Provider {name!r}: userinfo must be 'auto', 'always' or 'never'."
            )
        self.userinfo_mode: str = config.userinfo
        self.id_token_algorithms: list[str] = list(config.id_token_algorithms or [])
        self.profile: ProfileMapper | None = config.profile
        self.auto_refresh: bool = bool(config.auto_refresh)
        #: ``...``: the refreshed token is saved by the storage (the default);
        #: a callable: also called with it; ``None``: nothing is saved and
        #: ``TokenUpdated`` is raised with it, as requests-oauthlib does.
        self.token_updater: t.Callable[[Token], None] | None | types.EllipsisType = (
            config.token_updater
        )
        self.is_oidc = "openid" in self.scope
        #: Whether a nonce is sent (LinkedIn's ID tokens leave it out).
        self.nonce: bool = self.is_oidc and bool(config.nonce)
        self.tenant_placeholder: str | None = config.tenant_placeholder
        self.headers: dict[str, str] = dict(config.headers or {})
        self.explicit = {
            key: getattr(config, key)
            for key in _ENDPOINT_KEYS
            if getattr(config, key) is not None
        }
        self.adapter = make_adapter(settings.pool_maxsize)
        self.environment = Environment()
        #: Keys this provider's refreshes in the process-wide refresh cache; never
        #: reused, unlike ``id(self)`` once an app is gone (tests build many).
        self.refresh_scope = (next(_serials), name)
        self.http = requests.Session()
        self.http.headers.update(self.headers)
        # Discovery, JWKS and revocation answers: read with a cap and a deadline.
        self.http.hooks["response"].append(body_cap(MAX_USERINFO_RESPONSE_BYTES))
        self.http.mount("https://", self.adapter)
        self.http.mount("http://", self.adapter)
        self.metadata_url: str | None = config.server_metadata_url
        self._expected_issuer: str | None = config.issuer
        self._metadata: oidc.ServerMetadata | None = None
        # endpoints(), with the discovery document and explicit endpoints it was
        # merged from.
        self._endpoints: (
            tuple[object, object, types.MappingProxyType[str, t.Any]] | None
        ) = None
        self._jwks: oidc.JWKSCache | None = None
        #: The RFC 8414 metadata's revocation endpoint: "" when looked up and absent.
        self._oauth_revocation_url: str | None = None
        self._warned_no_revocation = False
        for url in self.explicit.values():
            if url is not self.explicit.get("issuer"):
                self.check_transport(url)
        if config.server_metadata_url:
            self.check_transport(config.server_metadata_url)
        if self.metadata_url is None:
            for key in ("authorize_url", "token_url"):
                if key not in self.explicit:
                    raise ConfigurationError(
                        f"Provider {name!r} needs server_metadata_url or both "
                        "authorize_url and token_url."
                    )

    # -- endpoints ---------------------------------------------------------------

    def check_transport(self, url: str) -> None:
        """Refuse plain ``http://`` unless ``OAUTHCLIENT_INSECURE_TRANSPORT``."""
        if (
            urlsplit(url).scheme.lower() != "https"
            and not self.settings.insecure_transport
        ):
            raise InsecureTransportError(
                f"Provider {self.name!r}: {url!r} is not https. Plain http is only "
                "allowed for local development and tests, with "
                "OAUTHCLIENT_INSECURE_TRANSPORT = True in the app config."
            )

    @property
    def metadata(self) -> oidc.ServerMetadata | None:
        """The discovery document's cache, or ``None`` without
        ``server_metadata_url``. Made on first use: the OpenID Connect machinery
        (PyJWT, cryptography) is imported only by apps that use it."""
        if self._metadata is None and self.metadata_url is not None:
            from . import oidc

            self._metadata = oidc.ServerMetadata(
                self.metadata_url,
                ttl=self.settings.metadata_ttl,
                expected_issuer=self._expected_issuer,
            )
        return self._metadata

    def endpoints(self) -> t.Mapping[str, t.Any]:
        """The provider's endpoints: discovery merged with the explicit ones (which
        win). Discovery is fetched on first use and cached; the merge is made once
        per discovery document."""
        document = None
        if self.metadata is not None:
            document = self.metadata.cached(self.http, timeout=self.settings.timeout)
        cached = self._endpoints
        if cached is not None and cached[0] is document and cached[1] is self.explicit:
            return cached[2]
        found: dict[str, t.Any] = {}
        if document is not None:
            for key, field in _ENDPOINT_KEYS.items():
                if document.get(field):
                    found[key] = document[field]
            found["iss_parameter_supported"] = bool(
                document.get("authorization_response_iss_parameter_supported")
            )
        found.update(self.explicit)
        for key in ("authorize_url", "token_url", "userinfo_url", "jwks_uri"):
            if found.get(key):
                self.check_transport(found[key])
        merged = types.MappingProxyType(found)
        self._endpoints = (document, self.explicit, merged)
        return merged

    def endpoint(self, key: str) -> str:
        url = self.endpoints().get(key)
        if not url:
            raise ConfigurationError(f"Provider {self.name!r} has no {key}.")
        return t.cast(str, url)

    def _check_supported(self, field: str, value: str, setting: str) -> None:
        """See :func:`.client_auth.check_supported`; without discovery, nothing."""
        if self.metadata is not None:
            document = self.metadata.get(self.http, timeout=self.settings.timeout)
            check_supported(document, field, value, setting=setting, name=self.name)

    def jwks(self) -> oidc.JWKSCache:
        from . import oidc

        if self._jwks is None:
            self._jwks = oidc.JWKSCache(
                self.endpoint("jwks_uri"), ttl=self.settings.metadata_ttl
            )
        return self._jwks

    # -- sessions and the login flow ------------------------------------------------

    @t.overload
    def new_session(
        self, token: Token | None = None, *, session_class: type[S], **kwargs: t.Any
    ) -> S: ...

    @t.overload
    def new_session(
        self, token: Token | None = None, **kwargs: t.Any
    ) -> PooledOAuth2Session: ...

    def new_session(
        self,
        token: Token | None = None,
        *,
        session_class: type[PooledOAuth2Session] = PooledOAuth2Session,
        **kwargs: t.Any,
    ) -> PooledOAuth2Session:
        """A session of this provider: its connection pool, timeout and headers.
        Protocol steps (the code exchange, the callback's profile request) use a
        plain one; API calls a :class:`~.oauth_session.ProviderSession`."""
        session = session_class(
            self.client_id,
            token=token,
            adapter=self.adapter,
            timeout=self.settings.timeout,
            environment=self.environment,
            **kwargs,
        )
        if self.headers:
            session.headers.update(self.headers)
        return session

    def authorization_url(self, pending: PendingLogin, redirect_uri: str) -> str:
        """The URL that sends the user to the provider for ``pending``."""
        from .flow import code_challenge

        self.check_transport(redirect_uri)
        params: dict[str, t.Any] = dict(self.authorize_params)
        if pending.code_verifier is not None:
            params["code_challenge"] = code_challenge(pending.code_verifier)
            params["code_challenge_method"] = "S256"
        if pending.nonce is not None:
            params["nonce"] = pending.nonce
        if self.response_mode is not None:
            self._check_supported(
                "response_modes_supported",
                self.response_mode,
                f"response_mode={self.response_mode!r}",
            )
            params["response_mode"] = self.response_mode
        if self.is_oidc and "offline_access" in self.scope:
            # OpenID Connect Core §11: strict providers issue a refresh token for
            # offline_access only with prompt=consent.
            params.setdefault("prompt", "consent")
        self.check_client_auth()
        if pending.scopes is not None:
            params.update(self.scope_request_params)
        scope = self.scope if pending.scopes is None else pending.scopes
        # RFC 6749 §4.1.1, as oauthlib's prepare_grant_uri writes it (empty values
        # left out), without a session made for one URL.
        query = [
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", redirect_uri),
            ("scope", self.scope_separator.join(scope)),
            ("state", pending.state),
            *params.items(),
        ]
        url = add_params_to_uri(
            self.endpoint("authorize_url"), [(k, v) for k, v in query if v]
        )
        return t.cast(str, url)

    @property
    def client_secret(self) -> str | None:
        """The client secret: the configured one, or one the app signs (Apple's)."""
        return self.auth.secret()

    def check_client_auth(self) -> None:
        """Refuse a JWT client authentication that the discovery document's
        ``token_endpoint_auth_methods_supported`` (or its signing algorithms)
        leaves out, with a :class:`ConfigurationError` that says so, rather
        than the provider's ``invalid_client``."""
        if self.auth.method in JWT_METHODS:
            self._check_supported(
                "token_endpoint_auth_methods_supported",
                self.auth.method,
                f"token_endpoint_auth_method={self.auth.method!r}",
            )
            alg = t.cast(str, self.auth.alg)
            self._check_supported(
                "token_endpoint_auth_signing_alg_values_supported",
                alg,
                f"{self.auth.method} assertions signed with {alg}",
            )

    def client_auth(self) -> dict[str, t.Any]:
        """The keyword arguments of requests-oauthlib's ``fetch_token`` that
        authenticate this client at the token endpoint (RFC 6749 §2.3.1, RFC 7523
        §2.2): a new assertion each time for the JWT methods."""
        self.check_client_auth()
        return self.auth.token_request(self.endpoint("token_url"))

    def fetch_token(self, code: str, pending: PendingLogin, redirect_uri: str) -> Token:
        """Exchange the authorization ``code`` for a token."""
        session = self.new_session(redirect_uri=redirect_uri)
        # Read the answer with a cap, before requests-oauthlib reads (and logs) it.
        session.hooks["response"].append(body_cap(MAX_TOKEN_RESPONSE_BYTES))
        session.register_compliance_hook("access_token_response", check_token_response)
        kwargs: dict[str, t.Any] = self.client_auth()
        if pending.code_verifier is not None:
            kwargs["code_verifier"] = pending.code_verifier
        try:
            token = session.fetch_token(
                self.endpoint("token_url"),
                code=code,
                headers={"Accept": "application/json"},
                **kwargs,
            )
        except requests.RequestException as e:
            raise translate_http_error(e) from None
        except OAuth2Error as e:
            if e.error in ("invalid_grant", "invalid_request"):
                # The code was forged, replayed or expired, or the verifier is wrong.
                raise CallbackError(
                    "invalid_grant",
                    f"The provider refused the authorization code: {e.error}",
                ) from None
            raise ProviderError(
                f"The token endpoint refused the request: {e.error}. Check the "
                "client's credentials (client id, secret or private key).",
                description=refusal_description(e.error),
            ) from None
        except ValueError:
            raise ProviderError("The token endpoint sent an invalid answer.") from None
        if self.token_type_required and not token.get("token_type"):
            # RFC 6749 §5.1 and OAuth 2.1 require it; a provider that leaves it out
            # is refused unless its preset documents the quirk.
            raise ProviderError(
                "The token endpoint's answer has no token_type (RFC 6749 §5.1)."
            )
        return Token(token)

    def refresh_auth(self) -> dict[str, t.Any]:
        """:meth:`client_auth` for requests-oauthlib's ``refresh_token()``, which
        puts extra keywords in the body."""
        self.check_client_auth()
        return self.auth.refresh_request(self.endpoint("token_url"))

    def identify(
        self, token: Token, nonce: str | None
    ) -> tuple[Identity, dict[str, t.Any]]:
        """Verify who logged in: the ID token (OpenID Connect) and the userinfo
        response, or the preset's profile mapping (plain OAuth 2).

        :return: the identity and the claims given to ``on_login``.
        """
        endpoints = self.endpoints()
        id_claims: dict[str, t.Any] | None = None
        if self.is_oidc:
            id_token = token.get("id_token")
            if not isinstance(id_token, str):
                raise ProviderError(
                    "The provider sent no ID token for an openid login."
                )
            id_claims = self.validate_id_token(
                id_token, nonce=nonce, access_token=token.get("access_token")
            )
        userinfo = None
        if id_claims is None or self._needs_userinfo(id_claims):
            userinfo = self.fetch_profile(self.new_session(token=token))
        if id_claims is not None:
            from . import oidc

            if userinfo is not None:
                oidc.check_userinfo(id_claims, userinfo)
            claims = oidc.merge_claims(id_claims, userinfo)
            return Identity(str(claims["iss"]), str(claims["sub"])), claims
        if not userinfo or not userinfo.get("sub"):
            raise ProviderError(
                "The provider's profile has no user id; configure openid scope, a "
                "userinfo_url or a profile mapping."
            )
        issuer = endpoints.get("issuer") or _origin(self.endpoint("authorize_url"))
        claims = {**userinfo, "iss": issuer, "sub": str(userinfo["sub"])}
        return Identity(issuer, claims["sub"]), claims

    def _needs_userinfo(self, id_claims: t.Mapping[str, t.Any]) -> bool:
        """Whether the login reads the userinfo endpoint on top of the verified ID
        token: always, never, or (``"auto"``) when the ID token lacks a claim the
        requested scopes stand for (OpenID Connect Core §5.4)."""
        if self.userinfo_mode != "auto":
            return self.userinfo_mode == "always"
        return any(
            claim not in id_claims
            for scope in self.scope
            for claim in _SCOPE_CLAIMS.get(scope, ())
        )

    def revoke(self, token: Token) -> bool:
        """Send RFC 7009 revocation requests for ``token``'s refresh and access
        tokens. Failures are logged, never raised: revocation is best effort."""
        url = (
            self.endpoints().get("revocation_url") or self._oauth_metadata_revocation()
        )
        if not url:
            if not self._warned_no_revocation:
                self._warned_no_revocation = True
                log.warning(
                    "Provider %r has no revocation endpoint (neither configured as "
                    "revocation_url nor in its discovery or RFC 8414 metadata): "
                    "logging out deletes its tokens here but cannot revoke them at "
                    "the provider.",
                    self.name,
                )
            return False
        from . import revocation

        self.check_client_auth()
        return revocation.revoke(
            self.http,
            url,
            token,
            self.auth,
            token_url=self.endpoint("token_url"),
            timeout=self.settings.timeout,
            provider=self.name,
        )

    def _oauth_metadata_revocation(self) -> str | None:
        """The ``revocation_endpoint`` of the provider's RFC 8414 metadata, looked
        up once, on the first logout that needs it (see
        :func:`.revocation.oauth_metadata_revocation_url`)."""
        if self._oauth_revocation_url is None:
            self._oauth_revocation_url = ""
            issuer = self.endpoints().get("issuer")
            if self.metadata_url is not None and issuer:
                from . import revocation

                found = revocation.oauth_metadata_revocation_url(
                    self.http,
                    issuer,
                    skip=self.metadata_url,
                    ttl=self.settings.metadata_ttl,
                    timeout=self.settings.timeout,
                )
                if found:
                    self.check_transport(found)
                    self._oauth_revocation_url = found
        return self._oauth_revocation_url or None

    def end_session_url(
        self, token: Token | None, post_logout_redirect_uri: str | None
    ) -> str | None:
        """The OpenID RP-initiated logout URL, or ``None`` without an
        ``end_session_endpoint``."""
        url = self.endpoints().get("end_session_url")
        if not url:
            return None
        params: dict[str, str] = {"client_id": t.cast(str, self.client_id)}
        if token and isinstance(token.get("id_token"), str):
            params["id_token_hint"] = token["id_token"]
        if post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = post_logout_redirect_uri
        separator = "&" if "?" in url else "?"
        return f"{url}{separator}{urlencode(params)}"

    def fetch_profile(self, session: requests.Session) -> dict[str, t.Any] | None:
        """The user's claims from the provider, through ``session``: the preset's
        profile mapping (plain OAuth 2) or the userinfo endpoint (OpenID Connect);
        ``None`` when the provider has neither."""
        timeout = self.settings.timeout
        userinfo_url = self.endpoints().get("userinfo_url")
        try:
            with capped(session, MAX_USERINFO_RESPONSE_BYTES):
                if self.profile is not None:
                    return self.profile(session, self.api_base_url or "", timeout)
                if userinfo_url:
                    from . import oidc

                    return oidc.fetch_json(session, userinfo_url, timeout=timeout)
        except requests.RequestException as e:
            if isinstance(e, requests.HTTPError):
                raise ProviderError(
                    "The provider refused the profile request."
                ) from None
            raise translate_http_error(e) from None
        except (ValueError, KeyError, TypeError):
            raise ProviderError("The provider sent an invalid profile.") from None
        return None

    def validate_id_token(
        self,
        id_token: str,
        *,
        nonce: str | None,
        access_token: str | None,
        nonce_required: bool = True,
    ) -> dict[str, t.Any]:
        """Verify an ID token of this provider (OpenID Connect Core §3.1.3.7)."""
        from . import oidc

        issuer = self.endpoint("issuer")
        placeholder = self.tenant_placeholder
        return oidc.validate_id_token(
            id_token,
            http=self.http,
            timeout=self.settings.timeout,
            issuer=issuer,
            client_id=t.cast(str, self.client_id),
            jwks=self.jwks() if self.endpoints().get("jwks_uri") else None,
            algorithms=self.id_token_algorithms or ["RS256"],
            client_secret=self.client_secret,
            nonce=nonce,
            nonce_required=nonce_required,
            access_token=access_token,
            leeway=self.settings.id_token_leeway,
            issuer_matcher=oidc.tenant_issuer_matcher(issuer, placeholder=placeholder)
            if placeholder and placeholder in issuer
            else None,
        )

    def is_tenant_template(self, issuer: str) -> bool:
        """Whether ``issuer`` is a multi-tenant template (Microsoft's)."""
        return bool(self.tenant_placeholder and self.tenant_placeholder in issuer)

    def check_refreshed_id_token(self, current: Token, new: Token) -> None:
        """OpenID Connect Core §12.2: a refreshed ID token is verified like the first
        and must name the same issuer, subject and audience.

        :raises ProviderError: the refreshed ID token failed a check; the caller keeps
            the stored token.
        """
        import jwt

        from . import oidc

        original_token = current.get("id_token")
        # Verified at login; only its claims are compared here.
        original: dict[str, t.Any] = (
            jwt.decode(original_token, options={"verify_signature": False})
            if isinstance(original_token, str)
            else {}
        )
        try:
            refreshed = self.validate_id_token(
                new["id_token"],
                nonce=original.get("nonce"),
                nonce_required=False,
                access_token=new.get("access_token"),
            )
            if original:
                oidc.validate_refreshed_id_token(original, refreshed)
        except InvalidIDToken as e:
            raise ProviderError(
                f"The refreshed ID token failed verification: {e.reason}"
            ) from None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
