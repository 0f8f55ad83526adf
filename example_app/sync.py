"""Acting for users who are not the one logged in: keep every user's profile in sync
with their provider, from a command (run it nightly from cron) and from a webhook
(the provider says a user's profile changed).

.. code-block:: sh

    flask --app example_app users sync
    curl -X POST http://127.0.0.1:5000/webhooks/dev \\
        -H "X-Webhook-Secret: $WEBHOOK_SECRET" -H "Content-Type: application/json" \\
        -d '{"sub": "alice"}'

Both call the provider's API with ``oauth.<name>.for_user(user)``: that user's token,
refreshed (and saved for them) when it is about to expire.
"""

from __future__ import annotations

import hmac
import typing as t

import click
import sqlalchemy as sa
from flask import abort
from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request
from flask.cli import AppGroup
from flask.typing import ResponseReturnValue

from flask_oauthclient import ProviderError
from flask_oauthclient import ReauthorizationRequired
from flask_oauthclient import TokenMissing

from . import db
from . import oauth
from . import OAuthToken
from . import User

users_cli = AppGroup("users", help="Work with the users' provider accounts.")
webhooks = Blueprint("webhooks", __name__)


def users_with_token(provider: str) -> list[User]:
    """The users with a stored token of ``provider``."""
    return list(
        db.session.scalars(
            sa.select(User)
            .join(OAuthToken)
            .where(OAuthToken.provider == provider, OAuthToken.token.is_not(None))
            .order_by(User.id)
        )
    )


def sync_profile(provider: str, user: User) -> None:
    """Read the user's profile from the provider with their token and keep it.

    :raises TokenError: the user has no token, or must log in again.
    :raises ProviderError: the provider failed.
    """
    claims = oauth[provider].for_user(user).userinfo()
    user.name = claims.get("name") or user.name
    user.email = claims.get("email") if claims.get("email_verified") else None
    user.picture = claims.get("picture")
    db.session.commit()


@users_cli.command("sync")
@click.option("--provider", default="dev", show_default=True)
def sync_command(provider: str) -> None:
    """Refresh every user's profile from PROVIDER, with that user's token."""
    if provider not in oauth:
        raise click.BadParameter(
            f"no provider named {provider!r}", param_hint="--provider"
        )
    synced = relogin = failed = 0
    for user in users_with_token(provider):
        try:
            sync_profile(provider, user)
        except (ReauthorizationRequired, TokenMissing):
            # The user revoked the app at the provider: their token is gone.
            click.echo(f"user {user.id}: must log in again")
            relogin += 1
        except ProviderError as e:
            click.echo(f"user {user.id}: provider error ({e.description})")
            failed += 1
        else:
            click.echo(f"user {user.id}: synced {user.name} <{user.email or '-'}>")
            synced += 1
    click.echo(f"{synced} synced, {relogin} must log in again, {failed} failed")
    if failed:
        raise SystemExit(1)


@webhooks.post("/webhooks/<provider>")
def profile_changed(provider: str) -> ResponseReturnValue:
    """The provider says the profile of its user ``{"sub": ...}`` changed: read it
    again with that user's token. Whoever is logged in (usually nobody: the
    provider calls) plays no part. The request must carry the shared secret
    ``WEBHOOK_SECRET`` in ``X-Webhook-Secret``."""
    secret = current_app.config.get("WEBHOOK_SECRET") or ""
    given = request.headers.get("X-Webhook-Secret", "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        abort(403)
    if provider not in oauth:
        abort(404)
    payload: t.Any = request.get_json(silent=True)
    subject = payload.get("sub") if isinstance(payload, dict) else None
    if not isinstance(subject, str):
        abort(400)
    user = db.session.scalars(
        sa.select(User)
        .join(OAuthToken)
        .where(OAuthToken.provider == provider, OAuthToken.subject == subject)
    ).first()
    if user is None:
        return jsonify(status="unknown user"), 404
    try:
        sync_profile(provider, user)
    except (ReauthorizationRequired, TokenMissing):
        # Acknowledged: there is nothing to retry until the user logs in again.
        return jsonify(status="must log in again", user=user.id), 202
    return jsonify(status="synced", user=user.id)
