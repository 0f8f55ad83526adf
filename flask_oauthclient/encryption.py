"""Tokens encrypted at rest, with the Fernet keys of
``OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS``.

When keys are configured, :class:`~flask_oauthclient.sqla.SQLAlchemyStorage` and
:class:`~flask_oauthclient.storage.SessionStorage` store each token as
``{"enc": "<Fernet token>"}`` in place of the token itself: the same JSON column (or
session key) holds encrypted and plain tokens, so one model works with and without
encryption, and switching it on needs no migration. The Fernet token (AES-128-CBC
with an HMAC-SHA256, from ``cryptography``) holds the whole token as JSON; the other
columns (provider, issuer, subject, ``expires_at``) stay readable for queries.

Keys are listed newest first: tokens are encrypted with the first key and decrypted
with whichever key fits (:class:`cryptography.fernet.MultiFernet`). To rotate, put a
new key first, run ``flask oauth reencrypt``, then remove the old key.

A stored token that no configured key decrypts (its key was removed too early) is
treated as absent and logged as an error: the user is sent through the login again,
which stores a new token over it. Tokens stored in plain text before encryption was
switched on are read as they are, and encrypted when next written or by
``flask oauth reencrypt``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
import typing as t

from .state import current_cipher
from .tokens import ENCRYPTED_KEY
from .tokens import is_encrypted
from .tokens import Token

if t.TYPE_CHECKING:
    from .cipher import cipher_from_config
    from .cipher import TokenCipher
    from .cipher import UndecryptableToken

__all__ = [
    "ENCRYPTED_KEY",
    "TokenCipher",
    "UndecryptableToken",
    "cipher_from_config",
    "current_cipher",
    "is_encrypted",
    "seal",
    "unseal",
]

log = logging.getLogger(__name__)

#: What :mod:`.cipher` gives this module's users, imported on first use: an app
#: that does not encrypt its tokens never needs it.
_FROM_CIPHER = frozenset({"TokenCipher", "UndecryptableToken", "cipher_from_config"})


if not t.TYPE_CHECKING:  # mypy reads the imports above; a typo stays an error

    def __getattr__(name: str) -> t.Any:
        if name in _FROM_CIPHER:
            from . import cipher

            return getattr(cipher, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM_CIPHER})


def seal(
    token: t.Mapping[str, t.Any], cipher: TokenCipher | None = None
) -> dict[str, t.Any]:
    """What to store for ``token``: encrypted with ``cipher`` (by default the current
    app's), or a plain copy when there is none."""
    cipher = cipher or current_cipher()
    if cipher is None:
        return dict(token)
    return cipher.encrypt(token)


def unseal(stored: t.Any, cipher: TokenCipher | None = None) -> Token | None:
    """The token a stored value holds: decrypted when it is encrypted, as it is
    otherwise. An encrypted token that can't be decrypted counts as absent (and is
    logged), so that the user logs in again and a new token replaces it."""
    if not isinstance(stored, t.Mapping) or not stored:
        return None
    if not is_encrypted(stored):
        return Token(stored)
    cipher = cipher or current_cipher()
    if cipher is None:
        log.error(
            "A stored token is encrypted, but OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS is "
            "not set: the token is ignored. Configure the keys it was encrypted with."
        )
        return None
    try:
        return cipher.decrypt(stored)
    except ValueError:  # UndecryptableToken
        log.error(
            "A stored token can't be decrypted with any key of "
            "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS (was its key removed before running "
            "'flask oauth reencrypt'?): it is ignored until the user logs in again."
        )
        return None
