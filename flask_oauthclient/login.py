"""A login from start to end: :func:`start` sends the user to the provider,
:func:`complete` handles the callback (state, the provider's answer, the RFC 9207
``iss``, the code exchange, the identity checks, ``on_login``, the token save and
Flask-Login), for a login or for linking an account."""

from __future__ import annotations

import logging
import re
import typing as t

from flask import current_app
from flask import redirect
from flask import request
from flask import Response
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from . import flow
from . import form_post
from . import scopes
from . import signals
from .errors import AuthorizationDenied
from .errors import CallbackError
from .errors import ConfigurationError
from .errors import LoginRefused
from .errors import OAuthClientError
from .errors import StorageError
from .linking import check_link
from .linking import current_user
from .linking import current_user_id
from .oauth_session import forget
from .storage import session as session_storage
from .storage.base import CURRENT_USER

if t.TYPE_CHECKING:
    from .app_provider import AppProvider
    from .provider import Provider
    from .state import AppState
    from .tokens import Identity
    from .tokens import Token

log = logging.getLogger("flask_oauthclient")

#: Longest callback query string accepted: a real one is a few KB at most.
MAX_QUERY_BYTES = 8192
#: Longest ``code`` accepted from the provider.
_MAX_CODE_LENGTH = 2048
#: What a ``code`` is made of (RFC 6749 appendix A.11: 1*VSCHAR); anything else
#: (control characters, bytes that were not UTF-8) is refused before the token
#: request.
_VSCHARS = re.compile(r"[\x20-\x7e]+")
_NOT_VSCHAR = re.compile(r"[^\x20-\x7e]")
#: The claims a preset's ``callback_claims`` may add (unverified: names only).
_CALLBACK_CLAIMS = frozenset(
    {"name", "given_name", "family_name", "middle_name", "nickname"}
)


def start(
    state: AppState, provider: Provider, link_user: str | None = None
) -> ResponseReturnValue:
    """Begin a login (or, with ``link_user``, the linking of an account to that
    user): remember it in the session and redirect to the provider."""
    if not current_app.secret_key:
        raise ConfigurationError(
            "SECRET_KEY is not set: Flask-OAuthClient keeps each pending login in "
            "the signed session. Set app.config['SECRET_KEY'] to a long random "
            "value (e.g. secrets.token_hex()) and keep it secret."
        )
    settings = state.settings
    ap = state.provider(provider.name)
    next_url = flow.safe_next(
        query_args().get("next") or request.form.get("next"), settings.login_redirect
    )
    scope_request = None
    scope_param = query_args().getlist("scope") or request.form.getlist("scope")
    if scope_param:
        # Incremental authorization: more scopes for the user's own token.
        scope_request = scopes.begin(state, provider, scope_param)
        link_user = current_user_id()
    pending = flow.begin(
        provider.name,
        next_url,
        pkce=ap.pkce,
        nonce=ap.nonce,
        ttl=settings.state_ttl,
        max_pending=settings.max_pending,
        link_user=link_user,
        scopes=scope_request.scopes if scope_request else None,
        identity=scope_request.identity if scope_request else None,
    )
    return redirect(ap.authorization_url(pending, _redirect_uri(provider)))


def complete(state: AppState, provider: Provider) -> ResponseReturnValue:
    """Handle the provider's callback. Anything wrong with it raises an
    :class:`~flask_oauthclient.errors.OAuthClientError` (a 4xx or 5xx page), and
    then nothing is stored and nobody is logged in.

    A provider registered with ``response_mode="form_post"`` answers by ``POST``,
    in two steps (see :mod:`.form_post`): the provider's cross-site ``POST`` gets
    a page that posts the answer again from this site, without the session being
    touched; that second ``POST`` is completed as a ``GET`` callback is."""
    ap = state.provider(provider.name)
    try:
        args, first_post = _callback_args(ap)
        if first_post:
            # The provider's own POST: no session cookie came with it.
            return form_post.resubmit_page(args, _callback_path(provider))
        pending = flow.complete(provider.name, args.getlist("state"))
        if pending.link_user is not None and current_user_id() != pending.link_user:
            raise CallbackError(
                "link_user_changed",
                "The user who started linking this account is no longer logged in.",
            )
        if "error" in args:
            raise AuthorizationDenied(
                _printable(args.get("error", ""), 64),
                args.get("error_description"),
                scope_request=pending.scopes is not None,
            )
        code = _code(args)
        _check_issuer(ap, args)
        token = ap.fetch_token(code, pending, _redirect_uri(provider))
        identity, userinfo = ap.identify(token, pending.nonce)
        userinfo = _add_callback_claims(ap, userinfo, args)
        if pending.scopes is not None:
            # A scope request: the same user and identity, a wider token.
            scopes.check_identity(state, provider.name, identity, pending.identity)
            token = scopes.with_scope(token, pending.scopes)
        if pending.link_user is not None or pending.scopes is not None:
            if pending.scopes is None:
                check_link(state, provider.name, identity)
            _save_token(state, provider, token, identity, None)
            signals.oauth_authorized.send(
                provider, token=token, userinfo=userinfo, user=current_user()
            )
            return redirect(pending.next_url)
        result = _on_login(state, provider, token, userinfo)
        if isinstance(result, (Response, HTTPException)) or (
            isinstance(result, tuple) and result
        ):
            return current_app.make_response(result)
        if result is None:
            raise LoginRefused("The on_login handler refused the login.")
        user = None if result is ... else result
        _save_token(state, provider, token, identity, user)
        if user is not None:
            _log_in(user)
    except OAuthClientError as e:
        signals.oauth_error.send(provider, error=e)
        raise
    signals.oauth_authorized.send(provider, token=token, userinfo=userinfo, user=user)
    return redirect(pending.next_url)


def _callback_args(ap: AppProvider) -> tuple[MultiDict[str, str], bool]:
    """The authorization response's parameters: the query string of a ``GET``,
    or the form of a ``form_post`` provider's ``POST``; and whether that is the
    first, cross-site ``POST``, to be posted again from this site.

    :raises CallbackError: the answer came in another way than the provider was
        registered for, or is too long.
    """
    by_post = ap.response_mode == "form_post"
    if (request.method == "POST") is not by_post:
        raise CallbackError(
            "response_mode_mismatch",
            f"The callback came by {request.method}, but the provider is registered "
            f"to answer by {'POST' if by_post else 'GET'} (response_mode).",
        )
    if not by_post:
        if len(request.query_string) > MAX_QUERY_BYTES:
            raise CallbackError(
                "query_too_long", "The callback's query string is too long."
            )
        return query_args(), False
    form = form_post.read(MAX_QUERY_BYTES)
    if form_post.is_resubmitted(form):
        return form_post.response_fields(form), False
    return form, True


def _callback_path(provider: Provider) -> str:
    return url_for(f"{provider.name}.authorized")


def query_args() -> MultiDict[str, str]:
    """``request.args``; a query string that is not UTF-8 (raw bytes a browser
    never sends) is a 400, where werkzeug would raise."""
    try:
        return request.args
    except UnicodeDecodeError:
        raise CallbackError(
            "malformed_query", "The query string is not valid UTF-8."
        ) from None


def _redirect_uri(provider: Provider) -> str:
    return url_for(f"{provider.name}.authorized", _external=True)


def _code(args: MultiDict[str, str]) -> str:
    """The callback's one authorization code."""
    codes = args.getlist("code")
    if (
        len(codes) != 1
        or len(codes[0]) > _MAX_CODE_LENGTH
        or not _VSCHARS.fullmatch(codes[0])
    ):
        raise CallbackError(
            "invalid_code", "The callback needs exactly one authorization code."
        )
    return codes[0]


def _check_issuer(ap: AppProvider, args: MultiDict[str, str]) -> None:
    """RFC 9207: the callback's ``iss`` names the provider the login began with."""
    issuers = args.getlist("iss")
    if len(issuers) > 1:
        raise CallbackError("duplicate_iss", "The callback repeats iss.")
    endpoints = ap.endpoints()
    # A multi-tenant issuer is a template: the ID token's iss is checked against
    # the token's tenant instead.
    if endpoints.get("issuer") and not ap.is_tenant_template(endpoints["issuer"]):
        from .oidc import check_authorization_response_iss

        check_authorization_response_iss(
            issuers[0] if issuers else None,
            issuer=endpoints["issuer"],
            required=bool(endpoints.get("iss_parameter_supported")),
        )


def _add_callback_claims(
    ap: AppProvider, claims: dict[str, t.Any], params: t.Mapping[str, str]
) -> dict[str, t.Any]:
    """``claims`` with the name claims the preset reads from the authorization
    response (``callback_claims``: Apple's ``user``) where ``claims`` has none:
    they are the browser's word, so they never replace a verified claim."""
    if ap.callback_claims is None:
        return claims
    try:
        extra = dict(ap.callback_claims(params))
    except (ValueError, TypeError, KeyError, AttributeError):
        return claims
    added = {
        name: value
        for name, value in extra.items()
        if name in _CALLBACK_CLAIMS and isinstance(value, str) and value
    }
    return {**added, **claims}


def _on_login(
    state: AppState, provider: Provider, token: Token, userinfo: dict[str, t.Any]
) -> t.Any:
    """The ``on_login`` handler's answer; without one, ``...`` (just keep the
    token)."""
    handler = state.hooks.on_login
    if handler is None:
        return ...
    return handler(provider, token, userinfo)


def _printable(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, with anything but printable ASCII
    replaced: an OAuth error code is made of those (RFC 6749 §4.1.2.1), and it goes
    into log lines."""
    return _NOT_VSCHAR.sub("?", value[:limit])


def _save_token(
    state: AppState,
    provider: Provider,
    token: Token,
    identity: Identity,
    user: t.Any,
) -> None:
    try:
        state.storage.set(
            provider.name,
            token,
            user=CURRENT_USER if user is None else user,
            identity=identity,
        )
    except OAuthClientError:
        raise
    except Exception:
        log.exception("Saving the %s token failed.", provider.name)
        raise StorageError("The token could not be saved.") from None
    forget(provider.name)


def _log_in(user: t.Any) -> None:
    """Log ``user`` in with Flask-Login on a fresh session (no session fixation):
    everything but the other tabs' pending logins and the session's tokens is
    dropped."""
    from flask_login import login_user

    if not hasattr(current_app, "login_manager"):
        raise ConfigurationError(
            "on_login returned a user, but Flask-Login's LoginManager is not set up "
            "on this app: call login_manager.init_app(app)."
        )
    restore_pending = flow.carry_over()
    restore_tokens = session_storage.carry_over()
    session.clear()
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if callable(regenerate):
        regenerate(session)
    restore_pending()
    restore_tokens()
    if not login_user(user):
        raise LoginRefused("Flask-Login refused to log the user in (inactive user).")
