"""What a token is and whose it is: :class:`Token` and :class:`Identity`."""

from __future__ import annotations

import typing as t


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
