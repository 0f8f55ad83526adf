"""The exceptions raised by Flask-OAuthClient.

Every error derives from :class:`OAuthClientError`. Errors that can reach a view carry
the HTTP ``status_code`` the extension answers with and a ``description`` that is safe
to show to the user (it never contains a token, a secret or unescaped provider text).
"""

from __future__ import annotations

import re


class OAuthClientError(Exception):
    """Base class of every error raised by Flask-OAuthClient."""

    #: The HTTP status the extension's error handler answers with.
    status_code: int = 500
    #: A short text that is safe to show to the end user.
    description: str = "The login could not be completed."
    #: The title of the error page.
    title: str = "Login failed"
    #: The name of the provider the error concerns, when known.
    provider: str | None = None
    #: Whether the app's side failed (its configuration, its storage, a provider
    #: it depends on) rather than the user's input: logged at WARNING or ERROR
    #: with its cause, where what a user did (cancel, a replayed link) is INFO.
    app_side: bool = False
    #: Whether the error page offers to log in with the provider again.
    retry_login: bool = True

    @property
    def code(self) -> str:
        """The stable snake_case name of the error in JSON answers (``"error"``):
        the class name, ``CSRFError`` → ``csrf_error``, unless the error carries a
        more precise ``reason``."""
        reason = getattr(self, "reason", None)
        if isinstance(reason, str) and reason:
            return reason
        # A private subclass (refresh.GrantRevoked) answers as its public parent.
        public = next(c for c in type(self).__mro__ if c.__module__ == __name__)
        return _snake(public.__name__)

    def __init__(self, message: str | None = None, *, description: str | None = None):
        super().__init__(message or self.description)
        if description is not None:
            self.description = description


class ConfigurationError(OAuthClientError, RuntimeError):
    """The extension or a provider is configured wrongly. The message says how to fix
    it; these are raised at start-up or on first use, never because of user input."""

    title = "Configuration error"
    app_side = True
    description = "The login provider is not configured correctly."


class InsecureTransportError(ConfigurationError):
    """A provider endpoint or the callback uses plain ``http://`` while
    ``OAUTHCLIENT_INSECURE_TRANSPORT`` is not enabled."""


class UnknownProviderError(OAuthClientError, AttributeError, KeyError):
    """No provider is registered under that name."""

    status_code = 404
    title = "Unknown login provider"
    description = "Unknown login provider."

    def __str__(self) -> str:
        # KeyError quotes its message; keep the message readable.
        return str(self.args[0]) if self.args else self.description


class CallbackError(OAuthClientError):
    """The authorization callback carried bad, forged, replayed or expired input.

    :attr:`reason` is a stable machine-readable code (``"missing_state"``,
    ``"unknown_state"``, ``"expired_state"`` ...), useful in tests and logs.
    """

    status_code = 400
    description = "The login request was invalid or has expired. Please try again."

    def __init__(
        self, reason: str, message: str | None = None, *, description: str | None = None
    ):
        self.reason = reason
        super().__init__(
            message or f"Invalid callback: {reason}", description=description
        )


class AuthorizationDenied(CallbackError):
    """The provider answered the callback with ``error=`` (most often, the user
    declined). :attr:`error` holds the OAuth error code; :attr:`scope_request` is
    true when a logged-in user declined the extra scopes of
    :meth:`Provider.request_scopes <flask_oauthclient.Provider.request_scopes>`
    (they stay logged in), false for a login.
    """

    status_code = 403
    title = "Login refused"
    description = "The login was cancelled or refused by the provider."

    def __init__(
        self,
        error: str,
        error_description: str | None = None,
        *,
        scope_request: bool = False,
    ):
        self.error = error
        self.error_description = error_description
        self.scope_request = scope_request
        if not scope_request:
            super().__init__(
                "provider_error", f"The provider refused the login: {error}"
            )
            return
        # Logging in again is not what the user wants: the page that needs the
        # scopes asks for them again.
        self.title = "Permission not granted"
        self.retry_login = False
        super().__init__(
            "provider_error",
            f"The provider refused the scope request: {error}",
            description=(
                "The permission this page needs was not granted. You are still "
                "logged in."
            ),
        )


class InvalidIDToken(CallbackError):
    """The ID token (or the userinfo response) failed an OpenID Connect check."""

    description = "The identity provider's answer could not be verified."

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(reason, message or f"Invalid ID token: {reason}")


class LoginRefused(OAuthClientError):
    """The app's ``on_login`` handler returned ``None``: the user is not logged in."""

    status_code = 403
    title = "Login refused"
    description = "This account may not log in to this site."


class ProviderError(OAuthClientError):
    """The provider failed: an error status, a malformed answer or no answer at all."""

    status_code = 502
    title = "Provider error"
    app_side = True
    description = (
        "The login provider returned an invalid answer. Please try again later."
    )
    #: The description when the provider refused the app's own request (its client
    #: credentials, a grant the client may not use): the app's side, not the user's.
    refused_description = (
        "The login provider refused this site's request. Please try again later."
    )


class ProviderUnavailable(ProviderError):
    """The provider could not be reached (connection refused, DNS, TLS)."""

    status_code = 503
    title = "Provider unavailable"
    description = "The login provider is not reachable. Please try again later."


class ProviderTimeout(ProviderError):
    """The provider did not answer within ``OAUTHCLIENT_TIMEOUT``."""

    status_code = 504
    title = "Provider timeout"
    description = "The login provider did not answer in time. Please try again later."


class TokenError(OAuthClientError):
    """Base class of errors about the current user's stored token."""

    status_code = 401
    title = "Please log in again"
    #: Whose token, when it is not the current user's (a
    #: :meth:`~flask_oauthclient.Provider.for_user` call in a view): the error page
    #: then answers 401 rather than sending the browser to log in, which would store
    #: the browser's token, not that user's.
    user: str | None = None
    description = "You need to log in again."


class TokenMissing(TokenError):
    """No token is stored for the current user and this provider."""


class ReauthorizationRequired(TokenError):
    """The provider refused the stored refresh token (``invalid_grant``); the token was
    removed and the user must go through the login again."""


class StorageError(OAuthClientError):
    """The token storage failed (the database is down); nothing was written."""

    status_code = 503
    title = "Service unavailable"
    app_side = True
    description = "The service is temporarily unavailable. Please try again later."


class CSRFError(OAuthClientError):
    """A state-changing request (logout, linking) came without the session's CSRF
    token: most likely another site tried to make the browser send it."""

    status_code = 400
    title = "Request not verified"
    description = "The request could not be verified. Please go back and try again."


class UserRequired(TokenError):
    """A token was to be stored, but no user is logged in (or the ``user`` given is
    anonymous). Nothing was written.

    .. versionadded:: 0.1
    """

    description = "You need to log in first."


class IdentityInUse(OAuthClientError):
    """The provider identity ``(issuer, subject)`` of the token is already linked to
    another user of this app. Nothing was written.

    .. versionadded:: 0.1
    """

    status_code = 409
    title = "Account already linked"
    description = "This account is already linked to another user."


class UnlinkRefused(OAuthClientError):
    """Unlinking the provider would leave the user no way to log in: no other
    provider is linked to them, and the app's
    :meth:`~flask_oauthclient.OAuth.has_other_login` handler (if any) does not say
    they have another (a password, a passkey). Nothing was changed.

    .. versionadded:: 0.1
    """

    status_code = 409
    title = "Cannot unlink"
    description = (
        "This is your only way to log in: link another account before removing it."
    )


#: The token endpoint's errors (RFC 6749 §5.2) that refuse the app's own request,
#: not the user's grant: its client credentials or what the client may ask for.
_CLIENT_REFUSALS = frozenset(
    {"invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope"}
)


def refusal_description(error: str) -> str | None:
    """The user-facing description of a :class:`ProviderError` for the token
    endpoint's ``error``: :attr:`ProviderError.refused_description` when it refused
    the app's own request, else ``None`` (the class's own description)."""
    return ProviderError.refused_description if error in _CLIENT_REFUSALS else None


def _snake(name: str) -> str:
    """``CSRFError`` → ``csrf_error``, ``InvalidIDToken`` → ``invalid_id_token``."""
    name = name.replace("OAuth", "Oauth")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
