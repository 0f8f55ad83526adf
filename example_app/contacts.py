"""A page that needs more than the login asked for: incremental authorization.

The login asks the development provider for ``openid email profile
offline_access``; the contacts page also needs ``contacts.read``. It is declared
with ``optional_scopes`` when the provider is registered, and
``@oauth.dev.scopes_required`` sends a user whose token lacks it to the provider
to grant it, then back to the page, with the token stored for the same user and
its scope recorded. See ``docs/scopes.rst``.

This module is imported by :func:`example_app.create_app` once the providers are
registered: ``scopes_required`` checks, when it decorates, that the scope was
declared.
"""

from __future__ import annotations

from flask import Blueprint
from flask import render_template
from flask_login import login_required

from . import CONTACTS_SCOPE
from . import oauth

contacts = Blueprint("contacts", __name__)


@contacts.get("/contacts")
@login_required
@oauth.dev.scopes_required(CONTACTS_SCOPE)
def index() -> str:
    # The development provider's /api/<path> answers with who called and the
    # scope of the token used; a real provider would list the contacts.
    answer = oauth.dev.get("api/contacts")
    answer.raise_for_status()
    return render_template("contacts.html", answer=answer.json())
