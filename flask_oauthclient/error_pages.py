"""The app-wide error handler of :class:`~flask_oauthclient.errors.OAuthClientError`:
a clear page, or JSON for API clients, never a traceback or provider text."""

from __future__ import annotations

import logging
import typing as t

from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from .errors import ConfigurationError
from .errors import OAuthClientError
from .errors import TokenError
from .state import get_state

log = logging.getLogger("flask_oauthclient")


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
        and error.user is None
        and provider_name
        and request.method == "GET"
        and not _wants_json()
        and not request.path.startswith(get_state().settings.url_prefix + "/")
    ):
        return redirect(url_for(f"{provider_name}.login", next=_current_path()))
    _log(error, provider_name)
    body = {"error": error.code, "error_description": error.description}
    if _wants_json():
        return jsonify(body), error.status_code
    retry = (
        url_for(f"{provider_name}.login")
        if provider_name and error.retry_login
        else None
    )
    return (
        render_template(
            "oauthclient/error.html",
            error=error,
            title=error.title,
            description=error.description,
            retry_url=retry,
        ),
        error.status_code,
    )


def _log(error: OAuthClientError, provider: str | None) -> None:
    """What the user did (cancel, a replayed or forged link) is INFO; the app's
    side failing (configuration, storage, the provider: every 5xx) is WARNING, with
    its cause and a hint, so that it shows at the default log level."""
    where = f" ({provider})" if provider else ""
    if error.app_side or error.status_code >= 500:
        cause = error.__cause__ or error.__context__
        log.warning(
            "%s%s: %s%s [%s %s]",
            type(error).__name__,
            where,
            error,
            f" (caused by {type(cause).__name__}: {cause})" if cause else "",
            request.method,
            request.path,
        )
    else:
        log.info("OAuth error %s%s: %s", type(error).__name__, where, error)


def _provider_of(error: OAuthClientError) -> str | None:
    name = getattr(error, "provider", None)
    if name:
        return str(name)
    bp = request.blueprints[0] if request.blueprints else None
    return bp if bp in get_state().providers else None


def _current_path() -> str:
    path = request.full_path if request.query_string else request.path
    return path
