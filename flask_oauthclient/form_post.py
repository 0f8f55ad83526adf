"""The callback of a provider registered with ``response_mode="form_post"`` (OAuth
2.0 Form Post Response Mode): the provider's page makes the browser POST the
authorization response to ``/login/<name>/authorized``.

That POST comes from the provider's site, so a ``SameSite=Lax`` session cookie
(the browsers' default) is not sent with it, and the pending login it completes is
out of reach. The callback therefore answers it in two steps:

1. The cross-site POST (:func:`is_resubmitted` false): the session is not touched
   (no cookie was sent, and setting one would replace the user's session), the
   form is read with a size cap, and :func:`resubmit_page` answers with a small
   page that posts the authorization response's fields (and only those) again,
   to the same URL, from this site.
2. That same-site POST carries the session cookie, and the callback is completed
   exactly as a ``GET`` callback is: state, PKCE verifier, nonce, ``iss``.

A forged POST gains nothing from step 1: step 2 completes only a login that the
same browser started (its state is in that browser's session), as for ``GET``.
The fields are written into the page escaped, with a ``Content-Security-Policy``
that runs only the page's own script and lets the form post only to this site,
``Cache-Control: no-store`` and no ``Referer``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl

from flask import current_app
from flask import request
from flask import Response
from werkzeug.datastructures import MultiDict

from .errors import CallbackError

#: The form field the page of step 1 adds: this POST is the second step.
RESUBMITTED = "oauthclient_resubmitted"
#: The fields of an authorization response that are posted again (RFC 6749
#: §4.1.2 and §4.1.2.1, RFC 9207's ``iss``, Apple's ``user``); others are dropped.
RESPONSE_FIELDS = frozenset(
    {"state", "code", "iss", "error", "error_description", "error_uri", "user"}
)
#: A form with more fields than this is refused.
_MAX_FIELDS = 32
_FORM_TYPE = "application/x-www-form-urlencoded"


def read(max_bytes: int) -> MultiDict[str, str]:
    """The POSTed form, read with a cap of ``max_bytes`` (the callback's query
    string cap): the body is read here, never by werkzeug's unbounded form
    parser.

    :raises CallbackError: not a URL-encoded form (``malformed_form``), longer
        than ``max_bytes`` (``form_too_long``), or not UTF-8.
    """
    if request.mimetype != _FORM_TYPE:
        raise CallbackError("malformed_form", "The callback's body is not a form.")
    length = request.content_length
    if length is not None and length > max_bytes:
        raise CallbackError("form_too_long", "The callback's form is too long.")
    body = request.stream.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise CallbackError("form_too_long", "The callback's form is too long.")
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise CallbackError(
            "malformed_form", "The callback's form is not a valid UTF-8 form."
        ) from None
    return MultiDict(pairs)


def is_resubmitted(form: MultiDict[str, str]) -> bool:
    """Whether ``form`` comes from the page of :func:`resubmit_page` (step 2).

    :raises CallbackError: it claims to, but the browser says that another site
        sent it (``Sec-Fetch-Site``): that page posts only to its own origin.
    """
    if RESUBMITTED not in form:
        return False
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        raise CallbackError(
            "cross_site_form_post", "The callback's form came from another site."
        )
    return True


def response_fields(form: MultiDict[str, str]) -> MultiDict[str, str]:
    """The authorization response's fields of ``form``, every value of each (so
    that a repeated ``state`` or ``code`` is still refused)."""
    return MultiDict(
        [
            (name, value)
            for name, value in form.items(multi=True)
            if name in RESPONSE_FIELDS
        ]
    )


def resubmit_page(form: MultiDict[str, str], action: str) -> Response:
    """Step 1's answer: a page that posts the authorization response's fields of
    ``form`` to ``action`` (the callback's path) from this site.

    The template is ``oauthclient/form_post.html``: it receives ``action``,
    ``fields`` (``(name, value)`` pairs, autoescaped) and ``nonce``, which its
    ``<script>`` must carry to run under the page's ``Content-Security-Policy``.
    """
    nonce = secrets.token_urlsafe(16)
    fields = [*response_fields(form).items(multi=True), (RESUBMITTED, "1")]
    # Rendered without the app's context processors, which may touch the
    # session (Flask-Login's marks it not fresh): a cookie set on this answer to a
    # cookieless POST would replace the user's session.
    template = current_app.jinja_env.get_template("oauthclient/form_post.html")
    html = template.render(action=action, fields=fields, nonce=nonce)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
