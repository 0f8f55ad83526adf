"""The Fernet cipher of tokens at rest (:class:`TokenCipher`), loaded by the apps
that set ``OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS``. How and when tokens are encrypted:
:mod:`.encryption`."""

from __future__ import annotations

import json
import re
import typing as t

from .errors import ConfigurationError
from .tokens import ENCRYPTED_KEY
from .tokens import is_encrypted
from .tokens import Token

if t.TYPE_CHECKING:
    from cryptography.fernet import Fernet

#: What :meth:`TokenCipher.rotate` did to a stored token.
RotateStatus = t.Literal["current", "rotated", "encrypted"]


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
