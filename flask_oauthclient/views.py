"""The per-provider blueprint: ``/login/<name>``, its callback, and linking
(``/login/<name>/link``, ``/login/<name>/unlink``)."""

from __future__ import annotations

import logging
import re
import secrets
import typing as t
from urllib.parse import urljoin

from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import Response
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from . import flow
from . import signals
from .errors import AuthorizationDenied
from .errors import CallbackError
from .errors import ConfigurationError
from .errors import CSRFError
from .errors import IdentityInUse
from .errors import LoginRefused
from .errors import OAuthClientError
from .errors import StorageError
from .errors import TokenError
from .errors import UserRequired
from .storage.base import CURRENT_USER
from .storage.base import Identity

if t.TYPE_CHECKING:
    from .extension import _State
    from .provider import Provider

log = logging.getLogger("flask_oauthclient")

_CSRF_KEY = "_oauthclient_csrf"

#: Longest ``code`` accepted from the provider.
_MAX_CODE_LENGTH = 2048
#: What a ``code`` is made of (RFC 6749 appendix A.11: 1*VSCHAR); anything else
#: (control characters, bytes that were not UTF-8) is refused before the token
#: request.
_VSCHARS = re.compile(r"[\x20-\x7e]+")
_NOT_VSCHAR = re.compile(r"[^\x20-\x7e]")


def make_blueprint(provider: Provider, url_prefix: str) -> Blueprint:
    """The blueprint of one provider, named after it."""
    bp = Blueprint(
        provider.name,
        __name__,
        url_prefix=f"{url_prefix}/{provider.name}",
        template_folder="templates",
    )

    def login() -> ResponseReturnValue:
        return _login(provider)

    def authorized() -> ResponseReturnValue:
        return _authorized(provider)

    def link() -> ResponseReturnValue:
        return _link(provider)

    def unlink() -> ResponseReturnValue:
        return _unlink(provider)

    bp.add_url_rule("", "login", login, methods=["GET", "POST"])
    bp.add_url_rule("/authorized", "authorized", authorized, methods=["GET"])
    bp.add_url_rule("/link", "link", link, methods=["POST"])
    bp.add_url_rule("/unlink", "unlink", unlink, methods=["POST"])
    return bp


def make_site_blueprint(state: _State) -> Blueprint:
    """The blueprint of what is not one provider's: the logout view."""
    bp = Blueprint("oauthclient", __name__, template_folder="templates")
    if state.logout_url:
        bp.add_url_rule(state.logout_url, "logout", _logout, methods=["POST"])
    return bp


def csrf_token() -> str:
    """The session's CSRF token for the extension's POST views (logout). Put it in
    a form field named ``csrf_token`` or an ``X-CSRF-Token`` header. In templates it
    is ``oauthclient_csrf_token()``."""
    token = session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = session[_CSRF_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a state-changing request without the session's CSRF token."""
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get(_CSRF_KEY)
    if not isinstance(expected, str) or not secrets.compare_digest(
        sent.encode("utf-8", "replace"), expected.encode("utf-8")
    ):
        raise CSRFError("The CSRF token is missing or wrong.")


def _logout() -> ResponseReturnValue:
    state = _state()
    check_csrf()
    next_url = flow.safe_next(request.form.get("next"), state.logout_redirect)
    end_session = request.form.get("end_session")
    target = state.ext.logout(
        end_session=end_session,
        post_logout_redirect_uri=urljoin(request.host_url, next_url),
    )
    return redirect(target or next_url)


def _state() -> _State:
    return t.cast("_State", current_app.extensions["oauthclient"])


def _login(provider: Provider, link_user: str | None = None) -> ResponseReturnValue:
    state = _state()
    ap = state.providers[provider.name]
    next_url = flow.safe_next(
        _query_args().get("next") or request.form.get("next"), state.login_redirect
    )
    pending = flow.begin(
        provider.name,
        next_url,
        pkce=ap.pkce,
        nonce=ap.nonce,
        ttl=state.state_ttl,
        max_pending=state.max_pending,
        link_user=link_user,
    )
    redirect_uri = url_for(f"{provider.name}.authorized", _external=True)
    return redirect(ap.authorization_url(pending, redirect_uri))


def _authorized(provider: Provider) -> ResponseReturnValue:
    state = _state()
    ap = state.providers[provider.name]
    try:
        args = _query_args()
        pending = flow.complete(provider.name, args.getlist("state"))
        if pending.link_user is not None and _current_user_id() != pending.link_user:
            raise CallbackError(
                "link_user_changed",
                "The user who started linking this account is no longer logged in.",
            )
        if "error" in args:
            raise AuthorizationDenied(
                _printable(args.get("error", ""), 64), args.get("error_description")
            )
        codes = args.getlist("code")
        if (
            len(codes) != 1
            or len(codes[0]) > _MAX_CODE_LENGTH
            or not _VSCHARS.fullmatch(codes[0])
        ):
            raise CallbackError(
                "invalid_code", "The callback needs exactly one authorization code."
            )
        endpoints = ap.endpoints()
        issuers = args.getlist("iss")
        if len(issuers) > 1:
            raise CallbackError("duplicate_iss", "The callback repeats iss.")
        # A multi-tenant issuer is a template: the ID token's iss is checked
        # against the token's tenant instead.
        if endpoints.get("issuer") and not ap.is_tenant_template(endpoints["issuer"]):
            from .oidc import check_authorization_response_iss

            check_authorization_response_iss(
                issuers[0] if issuers else None,
                issuer=endpoints["issuer"],
                required=bool(endpoints.get("iss_parameter_supported")),
            )
        redirect_uri = url_for(f"{provider.name}.authorized", _external=True)
        token = ap.fetch_token(codes[0], pending, redirect_uri)
        identity, userinfo = ap.identify(token, pending.nonce)
        if pending.link_user is not None:
            user = _link_token(state, provider, token, identity)
            signals.oauth_authorized.send(
                provider, token=token, userinfo=userinfo, user=user
            )
            return redirect(pending.next_url)
        result = state.ext.handle_login(provider, token, userinfo)
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


def _printable(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, with anything but printable ASCII
    replaced: an OAuth error code is made of those (RFC 6749 §4.1.2.1), and it goes
    into log lines."""
    return _NOT_VSCHAR.sub("?", value[:limit])


def _query_args() -> MultiDict[str, str]:
    """``request.args``; a query string that is not UTF-8 (raw bytes a browser
    never sends) is a 400, where werkzeug would raise."""
    try:
        return request.args
    except UnicodeDecodeError:
        raise CallbackError(
            "malformed_query", "The query string is not valid UTF-8."
        ) from None


def _current_user_id() -> str | None:
    """The Flask-Login id of the logged-in user, or ``None``."""
    if not hasattr(current_app, "login_manager"):
        return None
    from flask_login import current_user

    if not current_user.is_authenticated:
        return None
    user_id = current_user.get_id()
    return str(user_id) if user_id is not None else None


def _link(provider: Provider) -> ResponseReturnValue:
    """``POST /login/<name>/link``: link this provider to the logged-in user."""
    check_csrf()
    user_id = _current_user_id()
    if user_id is None:
        raise UserRequired("Linking an account needs a logged-in user.")
    return _login(provider, link_user=user_id)


def _link_token(
    state: _State, provider: Provider, token: dict[str, t.Any], identity: Identity
) -> t.Any:
    """Store the token of a link for the current user, unless the provider
    identity belongs to another user. Returns the current user."""
    from flask_login import current_user

    storage = state.storage
    try:
        owner = storage.find_user(provider.name, identity)
    except OAuthClientError:
        raise
    except Exception:
        log.exception("Looking up the owner of the %s identity failed.", provider.name)
        raise StorageError("The account could not be linked.") from None
    if owner is not None and storage.user_key(owner) != storage.user_key(CURRENT_USER):
        raise IdentityInUse(
            f"The {provider.name!r} identity is linked to another user; nothing was"
            " stored."
        )
    _save_token(state, provider, token, identity, None)
    return current_user._get_current_object()


def _unlink(provider: Provider) -> ResponseReturnValue:
    """``POST /login/<name>/unlink``: unlink this provider from the logged-in
    user, unless it is their last way to log in."""
    state = _state()
    check_csrf()
    if _current_user_id() is None:
        raise UserRequired("Unlinking an account needs a logged-in user.")
    provider.unlink()
    return redirect(flow.safe_next(request.form.get("next"), state.login_redirect))


def _save_token(
    state: _State,
    provider: Provider,
    token: dict[str, t.Any],
    identity: t.Any,
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
    provider._forget()


def _log_in(user: t.Any) -> None:
    """Log ``user`` in with Flask-Login on a fresh session (no session fixation):
    everything but the other tabs' pending logins is dropped."""
    from flask_login import login_user

    if not hasattr(current_app, "login_manager"):
        raise ConfigurationError(
            "on_login returned a user, but Flask-Login's LoginManager is not set up "
            "on this app: call login_manager.init_app(app)."
        )
    pending = flow.keep_pending()
    tokens = session.get("_oauthclient_tokens")
    session.clear()
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if callable(regenerate):
        regenerate(session)
    if pending:
        session["_oauthclient_pending"] = pending
    if tokens:
        session["_oauthclient_tokens"] = tokens
    if not login_user(user):
        raise LoginRefused("Flask-Login refused to log the user in (inactive user).")


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" or request.is_json


def render_error(error: OAuthClientError) -> t.Any:
    """The app-wide handler of :class:`OAuthClientError`: a clear page (or JSON for
    API clients) with the error's status, never a traceback or provider text.

    A token error in a browser request sends the user back through the login of
    that provider, with ``next`` set to the current page.
    """
    if isinstance(error, ConfigurationError):
        raise error
    provider_name = _provider_of(error)
    if (
        isinstance(error, TokenError)
        and provider_name
        and request.method == "GET"
        and not _wants_json()
        and not request.path.startswith(_state().url_prefix + "/")
    ):
        return redirect(url_for(f"{provider_name}.login", next=_current_path()))
    log.info("OAuth error %s: %s", type(error).__name__, error)
    body = {
        "error": getattr(error, "reason", None) or _snake(type(error).__name__),
        "error_description": error.description,
    }
    if _wants_json():
        return jsonify(body), error.status_code
    retry = url_for(f"{provider_name}.login") if provider_name else None
    return (
        render_template(
            "oauthclient/error.html",
            error=error,
            title=_TITLES.get(error.status_code, "Login failed"),
            description=error.description,
            retry_url=retry,
        ),
        error.status_code,
    )


_TITLES = {
    400: "Login failed",
    401: "Please log in again",
    403: "Login refused",
    404: "Unknown login provider",
    502: "Provider error",
    503: "Provider unavailable",
    504: "Provider timeout",
}


def _provider_of(error: OAuthClientError) -> str | None:
    name = getattr(error, "provider", None)
    if name:
        return str(name)
    bp = request.blueprints[0] if request.blueprints else None
    state = _state()
    return bp if bp in state.providers else None


def _current_path() -> str:
    path = request.full_path if request.query_string else request.path
    return path


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return out.lstrip("_")
