"""What a token is and whose it is: :class:`Token` and :class:`Identity`; when it
is due for a refresh (:func:`is_expiring`); and how a stored token that is
encrypted looks (:func:`is_encrypted`)."""

from __future__ import annotations

import time
import typing as t

#: The only key of a stored encrypted token: ``{"enc": "<Fernet token>"}``.
ENCRYPTED_KEY = "enc"


class Token(dict[str, t.Any]):
    """A token as the extension hands it out (:attr:`Provider.token
    <flask_oauthclient.Provider.token>`, the storages, ``on_login``): a plain
    :class:`dict` of what the provider issued, equal to one and JSON-serializable
    like one, whose ``repr`` (and ``str``) masks the secret values (access, refresh
    and ID tokens), so that printing or logging it leaks nothing.

    .. versionadded:: 0.1
    """

    __slots__ = ()

    def __repr__(self) -> str:
        # Imported here: init_app loads it (it filters the logs), importing the
        # package need not.
        from .redaction import mask_secrets

        return f"Token({mask_secrets(self)!r})"

    def copy(self) -> Token:
        return Token(self)


class Identity:
    """Who a token belongs to at the provider: ``(issuer, subject)``. For OpenID
    Connect the ID token's ``iss`` and ``sub``; for plain OAuth 2 providers the
    provider's ``issuer`` if configured, else the origin of its authorization URL
    (``https://github.com``), and its user id. Equal when both are."""

    # Written out rather than a dataclass: every worker imports it, and making a
    # dataclass costs more than the rest of this module.
    __slots__ = ("issuer", "subject")

    def __init__(self, issuer: str, subject: str) -> None:
        self.issuer = issuer
        self.subject = subject

    def __repr__(self) -> str:
        return f"Identity(issuer={self.issuer!r}, subject={self.subject!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return (self.issuer, self.subject) == (other.issuer, other.subject)

    __hash__ = None  # type: ignore[assignment]


def is_expiring(token: t.Mapping[str, t.Any], leeway: float) -> bool:
    """Whether ``token`` expires within the leeway: ``leeway`` seconds, but at most
    half the token's lifetime (``expires_in``), so that a token of a few seconds is
    used before it is refreshed. A token without ``expires_at`` never looks expired
    (it is refreshed on a 401 instead)."""
    expires_at = token.get("expires_at")
    if not _is_number(expires_at):
        return False
    lifetime = token.get("expires_in")
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)
    if _is_number(lifetime) and lifetime > 0:
        leeway = min(leeway, float(lifetime) / 2)
    return float(expires_at) - leeway <= time.time()


def _is_number(value: t.Any) -> t.TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_encrypted(stored: t.Any) -> bool:
    """Whether ``stored`` (a stored token as read back) is an encrypted token."""
    return (
        isinstance(stored, t.Mapping)
        and len(stored) == 1
        and isinstance(stored.get(ENCRYPTED_KEY), str)
    )
