"""One registered provider: its settings, its endpoints, and API calls through the
request's session."""

from __future__ import annotations

import itertools
import logging
import types
import typing as t
from urllib.parse import quote
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
from flask import current_app
from flask import g
from flask import has_app_context
from flask import has_request_context
from flask import request
from flask import url_for
from oauthlib.oauth2 import OAuth2Error
from oauthlib.oauth2 import TokenExpiredError
from requests.auth import HTTPBasicAuth
from requests_oauthlib.oauth2_session import TokenUpdated

from . import refresh
from . import signals
from .errors import CallbackError
from .errors import ConfigurationError
from .errors import InsecureTransportError
from .errors import InvalidIDToken
from .errors import OAuthClientError
from .errors import ProviderError
from .errors import ReauthorizationRequired
from .errors import TokenMissing
from .errors import UnlinkRefused
from .flow import code_challenge
from .flow import PendingLogin
from .oauth_session import body_cap
from .oauth_session import capped
from .oauth_session import check_token_response
from .oauth_session import Environment
from .oauth_session import make_adapter
from .oauth_session import MAX_TOKEN_RESPONSE_BYTES
from .oauth_session import MAX_USERINFO_RESPONSE_BYTES
from .oauth_session import PooledOAuth2Session
from .oauth_session import translate_http_error
from .storage.base import BaseStorage
from .storage.base import Identity
from .storage.base import Token

if t.TYPE_CHECKING:
    from . import oidc
    from .extension import _State
    from .extension import OAuth
    from .providers import ProfileMapper

log = logging.getLogger("flask_oauthclient")

_serials = itertools.count()

#: ``register`` keywords and their defaults.
REGISTER_DEFAULTS: dict[str, t.Any] = {
    "client_id": None,
    "client_secret": None,
    "server_metadata_url": None,
    "authorize_url": None,
    "token_url": None,
    "userinfo_url": None,
    "jwks_uri": None,
    "issuer": None,
    "revocation_url": None,
    "end_session_url": None,
    "scope": None,
    "api_base_url": None,
    "authorize_params": None,
    "token_endpoint_auth_method": "client_secret_basic",
    "scope_separator": " ",
    "pkce": True,
    "id_token_algorithms": ["RS256"],
    "profile": None,
    "title": None,
    "auto_refresh": True,
    "nonce": True,
    "tenant_placeholder": None,
    "headers": None,
    "token_updater": ...,
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


class _Request:
    """What one request knows about one provider, kept on ``g``."""

    __slots__ = ("token", "token_loaded", "session")

    def __init__(self) -> None:
        self.token: Token | None = None
        self.token_loaded = False
        self.session: ProviderSession | None = None


class AppProvider:
    """A provider as configured for one app: credentials, resolved endpoints,
    connection pool and caches. Created by ``init_app``; reached through
    ``current_app``."""

    def __init__(self, name: str, config: dict[str, t.Any], state: _State) -> None:
        self.name = name
        self.state = state
        app_config = state.config
        prefix = f"OAUTHCLIENT_{name.upper()}_"
        self.client_id: str | None = config["client_id"] or app_config.get(
            prefix + "CLIENT_ID"
        )
        self.client_secret: str | None = config["client_secret"] or app_config.get(
            prefix + "CLIENT_SECRET"
        )
        if not self.client_id:
            raise ConfigurationError(
                f"Provider {name!r} has no client_id: pass client_id= to "
                f"oauth.register() or set {prefix}CLIENT_ID in the app config."
            )
        self.title: str = config["title"] or name.replace("_", " ").title()
        scope = config["scope"]
        if isinstance(scope, str):
            scope = scope.split()
        self.scope: list[str] = list(scope or [])
        self.scope_separator: str = config["scope_separator"]
        self.authorize_params: dict[str, str] = dict(config["authorize_params"] or {})
        self.api_base_url: str | None = config["api_base_url"]
        self.auth_method: str = config["token_endpoint_auth_method"]
        if self.auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ConfigurationError(
                f"Provider {name!r}: token_endpoint_auth_method must be "
                "'client_secret_basic' or 'client_secret_post'."
            )
        self.pkce: bool = bool(config["pkce"])
        self.id_token_algorithms: list[str] = list(config["id_token_algorithms"] or [])
        self.profile: ProfileMapper | None = config["profile"]
        self.auto_refresh: bool = bool(config["auto_refresh"])
        #: ``...``: the refreshed token is saved by the storage (the default);
        #: a callable: also called with it; ``None``: nothing is saved and
        #: ``TokenUpdated`` is raised with it, as requests-oauthlib does.
        self.token_updater: t.Callable[[Token], None] | None | types.EllipsisType = (
            config["token_updater"]
        )
        self.is_oidc = "openid" in self.scope
        #: Whether a nonce is sent (LinkedIn's ID tokens leave it out).
        self.nonce: bool = self.is_oidc and bool(config["nonce"])
        self.tenant_placeholder: str | None = config["tenant_placeholder"]
        self.headers: dict[str, str] = dict(config["headers"] or {})
        self.explicit = {
            key: config[key] for key in _ENDPOINT_KEYS if config[key] is not None
        }
        self.adapter = make_adapter(state.pool_maxsize)
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
        self.metadata_url: str | None = config["server_metadata_url"]
        self._expected_issuer: str | None = config["issuer"]
        self._metadata: oidc.ServerMetadata | None = None
        self._jwks: oidc.JWKSCache | None = None
        for url in self.explicit.values():
            if url is not self.explicit.get("issuer"):
                self.check_transport(url)
        if config["server_metadata_url"]:
            self.check_transport(config["server_metadata_url"])
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
            and not self.state.insecure_transport
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
                ttl=self.state.metadata_ttl,
                expected_issuer=self._expected_issuer,
            )
        return self._metadata

    def endpoints(self) -> dict[str, t.Any]:
        """The provider's endpoints: discovery merged with the explicit ones (which
        win). Discovery is fetched on first use and cached."""
        found: dict[str, t.Any] = {}
        if self.metadata is not None:
            document = self.metadata.get(self.http, timeout=self.state.timeout)
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
        return found

    def endpoint(self, key: str) -> str:
        url = self.endpoints().get(key)
        if not url:
            raise ConfigurationError(f"Provider {self.name!r} has no {key}.")
        return t.cast(str, url)

    def jwks(self) -> oidc.JWKSCache:
        from . import oidc

        if self._jwks is None:
            self._jwks = oidc.JWKSCache(
                self.endpoint("jwks_uri"), ttl=self.state.metadata_ttl
            )
        return self._jwks

    # -- sessions and the login flow ------------------------------------------------

    def new_session(
        self, token: Token | None = None, **kwargs: t.Any
    ) -> ProviderSession:
        session = ProviderSession(
            self,
            self.client_id,
            token=token,
            adapter=self.adapter,
            timeout=self.state.timeout,
            environment=self.environment,
            **kwargs,
        )
        if self.headers:
            session.headers.update(self.headers)
        return session

    def authorization_url(self, pending: PendingLogin, redirect_uri: str) -> str:
        """The URL that sends the user to the provider for ``pending``."""
        self.check_transport(redirect_uri)
        params: dict[str, t.Any] = dict(self.authorize_params)
        if pending.code_verifier is not None:
            params["code_challenge"] = code_challenge(pending.code_verifier)
            params["code_challenge_method"] = "S256"
        if pending.nonce is not None:
            params["nonce"] = pending.nonce
        session = self.new_session(
            redirect_uri=redirect_uri,
            scope=self.scope_separator.join(self.scope) or None,
        )
        url, _ = session.authorization_url(
            self.endpoint("authorize_url"), state=pending.state, **params
        )
        return t.cast(str, url)

    def client_auth(self) -> dict[str, t.Any]:
        """The keyword arguments that authenticate this client at the token
        endpoint (RFC 6749 §2.3.1)."""
        if self.auth_method == "client_secret_post":
            return {
                "include_client_id": True,
                "client_secret": self.client_secret,
            }
        return {
            "auth": HTTPBasicAuth(
                quote(self.client_id or "", safe=""),
                quote(self.client_secret or "", safe=""),
            )
        }

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
                "client id and secret."
            ) from None
        except ValueError:
            raise ProviderError("The token endpoint sent an invalid answer.") from None
        return Token(token)

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

    def revoke(self, token: Token) -> bool:
        """Send RFC 7009 revocation requests for ``token``'s refresh and access
        tokens. Failures are logged, never raised: revocation is best effort."""
        url = self.endpoints().get("revocation_url")
        if not url:
            return False
        auth = self.client_auth()
        data: dict[str, t.Any] = {}
        if "include_client_id" in auth:
            data = {"client_id": self.client_id, "client_secret": self.client_secret}
            auth = {}
        confirmed = True
        for hint in ("refresh_token", "access_token"):
            value = token.get(hint)
            if not value:
                continue
            try:
                response = self.http.post(
                    url,
                    data={"token": value, "token_type_hint": hint, **data},
                    timeout=self.state.timeout,
                    # The body is never read: a hostile answer can't be large.
                    stream=True,
                    **auth,
                )
                response.close()
            except requests.RequestException as e:
                log.warning("Revoking the %s %s failed: %s", self.name, hint, type(e))
                confirmed = False
                continue
            if response.status_code != 200:
                log.warning(
                    "The %s revocation endpoint answered HTTP %s for the %s.",
                    self.name,
                    response.status_code,
                    hint,
                )
                confirmed = False
        return confirmed

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

    def fetch_profile(self, session: ProviderSession) -> dict[str, t.Any] | None:
        """The user's claims from the provider, through ``session``: the preset's
        profile mapping (plain OAuth 2) or the userinfo endpoint (OpenID Connect);
        ``None`` when the provider has neither."""
        timeout = self.state.timeout
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
            timeout=self.state.timeout,
            issuer=issuer,
            client_id=t.cast(str, self.client_id),
            jwks=self.jwks() if self.endpoints().get("jwks_uri") else None,
            algorithms=self.id_token_algorithms or ["RS256"],
            client_secret=self.client_secret,
            nonce=nonce,
            nonce_required=nonce_required,
            access_token=access_token,
            leeway=self.state.id_token_leeway,
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


class ProviderSession(PooledOAuth2Session):
    """The session of one request and provider: the current user's token, refreshed
    by itself before it expires and once on a 401, through the single-flight
    refresh."""

    # The property inherited from OAuth2Session; declared for the type checker only.
    token: t.Any

    def __init__(
        self,
        app_provider: AppProvider,
        *args: t.Any,
        auto_refresh: bool = False,
        **kwargs: t.Any,
    ) -> None:
        self.app_provider = app_provider
        self._auto_refresh = auto_refresh
        self._auto_refresh_url: str | None = None
        super().__init__(*args, **kwargs)

    @property
    def auto_refresh_url(self) -> str | None:
        """Where requests-oauthlib's own refresh goes. With ``auto_refresh`` the
        token endpoint is looked up only when a refresh happens, so that an API
        call with a valid token never waits for (or fails on) discovery."""
        if self._auto_refresh_url is not None:
            return self._auto_refresh_url
        if self._auto_refresh:
            return self.app_provider.endpoint("token_url")
        return None

    @auto_refresh_url.setter
    def auto_refresh_url(self, value: str | None) -> None:
        self._auto_refresh_url = value

    def request(
        self,
        method: str,
        url: str,
        data: t.Any = None,
        headers: t.Any = None,
        withhold_token: bool = False,
        **kwargs: t.Any,
    ) -> requests.Response:
        ap = self.app_provider
        if withhold_token or not self.token or not ap.auto_refresh:
            return super().request(
                method,
                url,
                data=data,
                headers=headers,
                withhold_token=withhold_token,
                **kwargs,
            )
        if refresh.is_expiring(self.token, ap.state.refresh_leeway):
            if ap.token_updater is None:
                # requests-oauthlib's third style: refresh, save nothing, and hand
                # the new token to the caller in TokenUpdated.
                if not self.token.get("refresh_token"):
                    raise TokenExpiredError()
                try:
                    self.token = self.refresh_at_provider(
                        self.token, ap.endpoint("token_url")
                    )
                except OAuth2Error:  # only invalid_grant gets here
                    raise ReauthorizationRequired(
                        "The provider refused the refresh token (invalid_grant)."
                    ) from None
                raise TokenUpdated(Token(self.token))
            self.refresh_token()
        used = self.token
        response = super().request(method, url, data=data, headers=headers, **kwargs)
        if (
            response.status_code == 401
            and ap.token_updater is not None
            and used.get("refresh_token")
            and (data is None or isinstance(data, (bytes, str, dict, list, tuple)))
        ):
            # The token looked valid but was refused (revoked early, clock skew):
            # refresh once and retry once.
            response.close()
            self.refresh_token()
            response = super().request(
                method, url, data=data, headers=headers, **kwargs
            )
        return response

    def refresh_token(
        self,
        token_url: str | None = None,
        refresh_token: str | None = None,
        **kwargs: t.Any,
    ) -> Token:
        """Refresh the token through the single-flight refresh and save it.

        Unless another caller refreshed it meanwhile (the stored access token
        changed), the provider is asked; the arguments of requests-oauthlib's
        signature are accepted and the provider's settings used instead.
        """
        ap = self.app_provider
        stale = Token(self.token or {})
        if refresh_token:
            stale["refresh_token"] = refresh_token
        url = token_url or ap.endpoint("token_url")

        provider = ap.state.ext.providers[ap.name]
        token = refresh.single_flight(
            scope=ap.refresh_scope,
            provider=ap.name,
            storage=ap.state.storage,
            stale=stale,
            call_provider=lambda current: self.refresh_at_provider(current, url),
            on_refreshed=lambda tok: self._refreshed(provider, tok),
            on_revoked=lambda: _send(
                signals.token_revoked, provider, reason="invalid_grant"
            ),
            is_invalid_grant=lambda e: (
                isinstance(e, OAuth2Error) and e.error == "invalid_grant"
            ),
        )
        self.token = token
        request_state = _request_state(ap.name)
        if request_state is not None:
            request_state.token = Token(token)
            request_state.token_loaded = True
        return token

    def refresh_at_provider(self, current: Token, token_url: str) -> Token:
        """Send one refresh request for ``current`` and return the new token, merged
        with ``current`` where the answer is silent. Nothing is saved."""
        ap = self.app_provider
        hooks = self.compliance_hook["refresh_token_response"]
        if check_token_response not in hooks:
            self.register_compliance_hook(
                "refresh_token_response", check_token_response
            )
        try:
            with capped(self, MAX_TOKEN_RESPONSE_BYTES):
                new = super().refresh_token(
                    token_url,
                    refresh_token=current["refresh_token"],
                    headers={"Accept": "application/json"},
                    **_refresh_auth(ap),
                )
        except requests.RequestException as e:
            raise translate_http_error(e) from None
        except OAuth2Error as e:
            if e.error == "invalid_grant":
                raise
            # invalid_client (a rotated secret), unauthorized_client, ...: our side
            # or the provider's, not the user's; the stored token stays.
            raise ProviderError(
                f"The token endpoint refused the refresh: {e.error}."
            ) from None
        except ValueError:
            raise ProviderError("The token endpoint sent an invalid answer.") from None
        merged = Token(new)
        # RFC 6749 §6: the provider may keep the refresh token; keep ours then.
        merged.setdefault("refresh_token", current["refresh_token"])
        if "id_token" in merged:
            ap.check_refreshed_id_token(current, merged)
        elif "id_token" in current:
            merged["id_token"] = current["id_token"]
        return merged

    def _refreshed(self, provider: Provider, token: Token) -> None:
        _send(signals.token_refreshed, provider, token=token)
        updater = self.app_provider.token_updater
        if callable(updater):
            updater(token)


def _send(signal: t.Any, sender: t.Any, **kwargs: t.Any) -> None:
    signal.send(sender, **kwargs)


def _saved_already(token: Token) -> None:
    """The session's ``token_updater``: the single-flight refresh saved it."""


def _refresh_auth(ap: AppProvider) -> dict[str, t.Any]:
    auth = ap.client_auth()
    if "include_client_id" in auth:
        # refresh_token() puts extra keywords in the body.
        return {"client_id": ap.client_id, "client_secret": ap.client_secret}
    return auth


def _request_states(create: bool = True) -> dict[str, _Request] | None:
    """This request's per-provider state, on ``g``.

    ``g`` belongs to the app context, which a test harness (pytest-flask) may keep
    across several requests: the state is tied to the request object too, so that a
    test switching users never reuses the previous request's token.
    """
    if not has_app_context():
        return None
    owner = request._get_current_object() if has_request_context() else None  # type: ignore[attr-defined]
    held: tuple[t.Any, dict[str, _Request]] | None = g.get("_oauthclient_requests")
    if held is None or held[0] is not owner:
        if not create:
            return None
        held = g._oauthclient_requests = (owner, {})
    return held[1]


def _request_state(name: str) -> _Request | None:
    states = _request_states(create=False)
    return states.get(name) if states is not None else None


class Provider:
    """A registered provider, as returned by :meth:`OAuth.register` and reached as
    ``oauth.<name>``. It holds no per-app or per-request state: every method looks up
    the current app's settings and the current request's session.

    .. versionadded:: 0.1
    """

    def __init__(self, ext: OAuth, name: str, config: dict[str, t.Any]) -> None:
        self._ext = ext
        self.name = name
        #: The ``register`` keywords merged with the preset's defaults.
        self.config = config

    def __repr__(self) -> str:
        return f"<Provider {self.name!r}>"

    @property
    def _app_provider(self) -> AppProvider:
        state = self._ext._get_state(current_app)
        try:
            return state.providers[self.name]
        except KeyError:
            raise ConfigurationError(
                f"Provider {self.name!r} was registered after init_app(); register "
                "providers before initializing the app."
            ) from None

    @property
    def title(self) -> str:
        """The name shown to users (``"Google"``)."""
        return t.cast(str, self.config.get("title") or self.name.title())

    @property
    def storage(self) -> BaseStorage:
        """The token storage of the current app."""
        return self._app_provider.state.storage

    def _request(self) -> _Request:
        states = _request_states()
        if states is None:
            raise RuntimeError(
                "Working outside of application context: API calls need an app context "
                "(and a request context to know the current user)."
            )
        state = states.get(self.name)
        if state is None:
            state = states[self.name] = _Request()
        return state

    @property
    def token(self) -> Token | None:
        """The current user's token, read from the storage once per request."""
        state = self._request()
        if not state.token_loaded:
            state.token = self.storage.get(self.name)
            state.token_loaded = True
        return Token(state.token) if state.token is not None else None

    @token.setter
    def token(self, value: t.Mapping[str, t.Any] | None) -> None:
        """Store (or with ``None``, delete) the current user's token."""
        if value is None:
            self.storage.delete(self.name)
        else:
            self.storage.set(self.name, Token(value))
        self._forget()

    def _forget(self) -> None:
        states = _request_states(create=False)
        if states is not None:
            states.pop(self.name, None)

    @property
    def authorized(self) -> bool:
        """Whether the current user has a token for this provider."""
        return self.token is not None

    @property
    def session(self) -> ProviderSession:
        """This request's :class:`~requests_oauthlib.OAuth2Session` with the current
        user's token; built once per request."""
        state = self._request()
        if state.session is None:
            token = self.token
            ap = self._app_provider
            state.session = ap.new_session(
                token=token,
                # requests-oauthlib's own auto refresh, should the token expire
                # between our check and its own, lands in our single-flight
                # refresh_token(); without auto refresh, TokenExpiredError is raised.
                auto_refresh=ap.auto_refresh,
                token_updater=_saved_already if ap.auto_refresh else None,
            )
        return state.session

    def request(self, method: str, url: str, **kwargs: t.Any) -> requests.Response:
        """Call the provider's API as the current user. A relative ``url`` is joined
        to ``api_base_url``. An expiring token is refreshed first.

        :raises TokenMissing: the current user has no token for this provider.
        :raises ReauthorizationRequired: the provider refused the refresh token.
        """
        session = self.session
        if not session.token:
            error = TokenMissing(
                f"No {self.name} token is stored for the current user."
            )
            error.provider = self.name
            raise error
        base = self._app_provider.api_base_url
        if base and not urlsplit(url).scheme:
            url = urljoin(base, url)
        try:
            return session.request(method, url, **kwargs)
        except requests.RequestException as e:
            failure = translate_http_error(e)
            failure.provider = self.name
            raise failure from None
        except OAuthClientError as e:
            e.provider = self.name
            raise

    def get(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``GET`` :meth:`request`."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``POST`` :meth:`request`."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``PUT`` :meth:`request`."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``PATCH`` :meth:`request`."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: t.Any) -> requests.Response:
        """``DELETE`` :meth:`request`."""
        return self.request("DELETE", url, **kwargs)

    def refresh_token(self) -> Token:
        """Refresh the current user's token now, whether it expired or not.

        :raises TokenMissing: the current user has no token for this provider.
        """
        session = self.session
        if not session.token:
            raise TokenMissing(f"No {self.name} token is stored for the current user.")
        return session.refresh_token()

    def userinfo(self) -> dict[str, t.Any]:
        """The current user's claims, fresh from the provider, with OpenID Connect
        names: the userinfo endpoint, or for plain OAuth 2 presets the mapped
        profile. The token is refreshed first if needed.

        :raises TokenMissing: the current user has no token for this provider.
        :raises ProviderError: the provider refused or failed the request.
        """
        session = self.session
        if not session.token:
            raise TokenMissing(f"No {self.name} token is stored for the current user.")
        try:
            claims = self._app_provider.fetch_profile(session)
        except OAuthClientError as e:
            e.provider = self.name
            raise
        if claims is None:
            raise ConfigurationError(
                f"Provider {self.name!r} has no userinfo endpoint or profile mapping."
            )
        return claims

    def find_user(
        self,
        userinfo: t.Mapping[str, t.Any],
        *,
        by_email: t.Callable[[str], t.Any] | None = None,
    ) -> t.Any | None:
        """The user who logged in with this provider identity before, or ``None``.

        Call it from ``on_login`` with the ``userinfo`` it was given: a returning
        user is recognized by the provider's ``(iss, sub)``, never by email.

        Linking by email is off unless the app opts in with
        ``OAUTHCLIENT_LINK_BY_VERIFIED_EMAIL = True`` *and* passes ``by_email``:
        then a user not found by identity is looked up with ``by_email(email)``,
        only when the provider says the email is verified (``email_verified`` is
        ``True``, not a string). The token is then stored for that user, which
        links the identity to them. Only opt in for providers that verify every
        address they assert.

        .. code-block:: python

            def user_with_email(email):
                return db.session.scalars(select(User).filter_by(email=email)).first()

            @oauth.on_login
            def on_login(provider, token, userinfo):
                user = provider.find_user(userinfo, by_email=user_with_email)
                return user or create_user(userinfo)

        :param userinfo: the claims ``on_login`` was given.
        :param by_email: returns the user with this email address, or ``None``.
        """
        identity = Identity(str(userinfo["iss"]), str(userinfo["sub"]))
        user = self.storage.find_user(self.name, identity)
        if user is not None or by_email is None:
            return user
        if not self._app_provider.state.link_by_verified_email:
            return None
        email = userinfo.get("email")
        if userinfo.get("email_verified") is not True or not isinstance(email, str):
            return None
        if not email.strip():
            return None
        return by_email(email)

    @property
    def linked(self) -> bool:
        """Whether this provider is linked to the current user: a token is stored,
        or the provider identity still is (see
        :meth:`~flask_oauthclient.storage.BaseStorage.linked`).

        .. versionadded:: 0.1
        """
        return self.storage.linked(self.name)

    def unlink(self, *, revoke: bool | None = None) -> bool:
        """Unlink this provider from the current user: revoke their token at the
        provider (RFC 7009, best effort), delete it, and forget the provider
        identity, so that logging in with it no longer finds this user.
        ``POST /login/<name>/unlink`` calls it.

        :param revoke: revoke at the provider first; the default is
            ``OAUTHCLIENT_REVOKE_ON_LOGOUT``.
        :return: whether the provider was linked.
        :raises ~flask_oauthclient.errors.UnlinkRefused: it is the user's last way
            to log in (see :meth:`OAuth.can_unlink`); nothing was changed.

        .. versionadded:: 0.1
        """
        if not self.linked:
            return False
        if not self._ext.can_unlink(self):
            error = UnlinkRefused(
                f"Unlinking {self.name!r} would leave the user no way to log in."
            )
            error.provider = self.name
            raise error
        ap = self._app_provider
        token = self.token
        if revoke is None:
            revoke = ap.state.revoke_on_logout
        if token is not None and revoke:
            ap.revoke(token)
        self.storage.unlink(self.name)
        self._forget()
        _send(signals.token_revoked, self, reason="unlink")
        return True

    def login_url(self, next: str | None = None) -> str:
        """The URL of this provider's login view."""
        return url_for(f"{self.name}.login", next=next)

    def revoke_token(self) -> bool:
        """Revoke the current user's token at the provider (RFC 7009) and delete it
        from the storage, whatever the provider answers.

        The refresh token is revoked first (that ends the grant at most providers),
        then the access token.

        :return: whether the provider confirmed every revocation; ``False`` when it
            has no revocation endpoint, failed, or could not be reached.
        """
        token = self.token
        if token is None:
            return False
        ap = self._app_provider
        confirmed = ap.revoke(token)
        self.storage.delete(self.name)
        self._forget()
        _send(signals.token_revoked, self, reason="logout")
        return confirmed
