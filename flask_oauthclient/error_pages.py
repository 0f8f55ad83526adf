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
        and provider_name
        and request.method == "GET"
        and not _wants_json()
        and not request.path.startswith(get_state().settings.url_prefix + "/")
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
    return bp if bp in get_state().providers else None


def _current_path() -> str:
    path = request.full_path if request.query_string else request.path
    return path


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return out.lstrip("_")
