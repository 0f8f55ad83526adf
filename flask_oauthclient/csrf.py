"""The CSRF token of the extension's own POST views (logout, link, unlink)."""

from __future__ import annotations

import secrets

from flask import request
from flask import session

from .errors import CSRFError

_KEY = "_oauthclient_csrf"


def csrf_token() -> str:
    """The session's CSRF token for the extension's POST views (logout). Put it in
    a form field named ``csrf_token`` or an ``X-CSRF-Token`` header. In templates it
    is ``oauthclient_csrf_token()``."""
    token = session.get(_KEY)
    if not isinstance(token, str):
        token = session[_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a state-changing request without the session's CSRF token.

    :raises CSRFError: the token is missing or wrong.
    """
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get(_KEY)
    if not isinstance(expected, str) or not secrets.compare_digest(
        sent.encode("utf-8", "replace"), expected.encode("utf-8")
    ):
        raise CSRFError("The CSRF token is missing or wrong.")
