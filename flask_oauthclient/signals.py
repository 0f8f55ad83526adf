"""Blinker signals sent by Flask-OAuthClient. Connect to them to observe logins,
refreshes and failures; they are sent with the :class:`~flask_oauthclient.Provider`
as sender and never carry a token to a receiver that did not ask for one.

.. code-block:: python

    from flask_oauthclient.signals import token_refreshed

    @token_refreshed.connect
    def count_refresh(provider, **extra):
        metrics.increment(f"oauth.refresh.{provider.name}")
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: Sent after a successful callback, before the user is redirected.
#: Keyword arguments: ``token``, ``userinfo``, ``user`` (``None`` without Flask-Login).
oauth_authorized = _signals.signal("oauth-authorized")

#: Sent when a login fails at the callback. Keyword arguments: ``error`` (the
#: :class:`~flask_oauthclient.errors.OAuthClientError`).
oauth_error = _signals.signal("oauth-error")

#: Sent after a token was refreshed and saved. Keyword arguments: ``token``.
token_refreshed = _signals.signal("token-refreshed")

#: Sent after a token was removed because the provider refused it or the user logged
#: out. Keyword arguments: ``reason`` (``"invalid_grant"``, ``"logout"``, ...).
token_revoked = _signals.signal("token-revoked")
