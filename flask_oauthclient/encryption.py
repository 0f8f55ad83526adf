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

import json
import logging
import re
import typing as t

from flask import current_app
from flask import has_app_context

from .errors import ConfigurationError
from .storage.base import Token

if t.TYPE_CHECKING:
    from cryptography.fernet import Fernet

__all__ = [
    "ENCRYPTED_KEY",
    "TokenCipher",
    "cipher_from_config",
    "current_cipher",
    "is_encrypted",
    "seal",
    "unseal",
]

log = logging.getLogger(__name__)

#: The only key of a stored encrypted token: ``{"enc": "<Fernet token>"}``.
ENCRYPTED_KEY = "enc"

#: What :meth:`TokenCipher.rotate` did to a stored token.
RotateStatus = t.Literal["current", "rotated", "encrypted"]


def is_encrypted(stored: t.Any) -> bool:
    """Whether ``stored`` (a stored token as read back) is an encrypted token."""
    return (
        isinstance(stored, t.Mapping)
        and len(stored) == 1
        and isinstance(stored.get(ENCRYPTED_KEY), str)
    )


class UndecryptableToken(ValueError):
    """No key decrypts a stored token, or it was tampered with."""


class TokenCipher:
    """Encrypts and decrypts stored tokens with a list of Fernet keys.

    :param keys: Fernet keys (44 URL-safe base64 characters, as made by
        ``Fernet.generate_key()``), newest first. The first encrypts; all decrypt.
    :raises ConfigurationError: no key, or a key that is not a Fernet key.

    .. versionadded:: 0.1
    """

    def __init__(self, keys: t.Sequence[str | bytes]) -> None:
        if not keys:
            raise ConfigurationError(
                "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS is empty: give at least one key."
            )
        # cryptography is imported only by apps that encrypt: it costs start-up time.
        from cryptography.fernet import Fernet
        from cryptography.fernet import MultiFernet

        fernets: list[Fernet] = []
        for position, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                # Never quote the key: it is a secret, and this ends up in logs.
                raise ConfigurationError(
                    f"Key {position} of OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS is not a "
                    "Fernet key (32 bytes, URL-safe base64). Make one with: python "
                    '-c "from cryptography.fernet import Fernet; '
                    'print(Fernet.generate_key().decode())"'
                ) from None
        self._newest = fernets[0]
        self._all = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "<TokenCipher>"

    def encrypt(self, token: t.Mapping[str, t.Any]) -> dict[str, str]:
        """``{"enc": "<Fernet token>"}`` for ``token``, with the newest key."""
        data = json.dumps(dict(token), separators=(",", ":")).encode("utf-8")
        return {ENCRYPTED_KEY: self._newest.encrypt(data).decode("ascii")}

    def decrypt(self, stored: t.Mapping[str, t.Any]) -> Token:
        """The token inside an encrypted stored token.

        :raises UndecryptableToken: no key decrypts it, or it was tampered with.
        """
        from cryptography.fernet import InvalidToken

        try:
            data = self._all.decrypt(str(stored[ENCRYPTED_KEY]).encode("ascii"))
            token = json.loads(data)
        except (InvalidToken, ValueError):
            raise UndecryptableToken("The stored token can't be decrypted.") from None
        if not isinstance(token, dict):
            raise UndecryptableToken("The stored token is not a token.")
        return Token(token)

    def rotate(
        self, stored: t.Mapping[str, t.Any]
    ) -> tuple[RotateStatus, dict[str, t.Any] | None]:
        """Bring a stored token under the newest key.

        :return: ``("current", None)`` when it is encrypted with the newest key
            already, ``("rotated", new)`` when it was encrypted with an older key,
            ``("encrypted", new)`` when it was stored in plain text.
        :raises UndecryptableToken: no key decrypts it.
        """
        from cryptography.fernet import InvalidToken

        if not is_encrypted(stored):
            return "encrypted", self.encrypt(stored)
        ciphertext = str(stored[ENCRYPTED_KEY]).encode("ascii")
        try:
            self._newest.decrypt(ciphertext)
            return "current", None
        except InvalidToken:
            pass
        try:
            rotated = self._all.rotate(ciphertext)
        except InvalidToken:
            raise UndecryptableToken("The stored token can't be decrypted.") from None
        return "rotated", {ENCRYPTED_KEY: rotated.decode("ascii")}


def cipher_from_config(value: t.Any) -> TokenCipher | None:
    """The :class:`TokenCipher` for ``OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS``: a list of
    keys, or one string of keys separated by commas or white space (handy in an
    environment variable); ``None`` or empty turns encryption off."""
    if not value:
        return None
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        keys: list[str | bytes] = [k for k in re.split(r"[\s,]+", text) if k]
    elif isinstance(value, (list, tuple)):
        keys = list(value)
    else:
        raise ConfigurationError(
            "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS must be a list of Fernet keys, newest "
            "first."
        )
    return TokenCipher(keys)


def current_cipher() -> TokenCipher | None:
    """The cipher of the current app, or ``None`` when it does not encrypt tokens
    (or there is no app, or the extension is not set up on it)."""
    if not has_app_context():
        return None
    state = current_app.extensions.get("oauthclient")
    return t.cast("TokenCipher | None", getattr(state, "cipher", None))


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
    except ValueError:
        log.error(
            "A stored token can't be decrypted with any key of "
            "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS (was its key removed before running "
            "'flask oauth reencrypt'?): it is ignored until the user logs in again."
        )
        return None
