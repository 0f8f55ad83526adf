"""Secrets kept out of log lines and reprs.

requests-oauthlib logs whole token responses, request headers (with the client's
Basic credentials) and request bodies (with the authorization code, the PKCE verifier
and the client secret) at ``DEBUG``. :func:`install`, called by
:meth:`~flask_oauthclient.OAuth.init_app`, puts a :class:`RedactingFilter` on the
``flask_oauthclient``, ``requests_oauthlib`` and ``oauthlib`` loggers, which replaces
every secret in a record by :data:`MASK` before any handler sees it:

- the values of secret keys (``access_token``, ``refresh_token``, ``id_token``,
  ``client_secret``, ``code``, ``code_verifier``, ``token``, ``password``, ...) in
  Python reprs (``{'access_token': '...'}``), JSON (``"access_token": "..."``) and
  form or query strings (``access_token=...``);
- ``Authorization`` header values, and ``Bearer``/``Basic`` credentials anywhere;
- JWT-shaped strings (ID tokens, JWT access tokens);
- the registered providers' client secrets, wherever they appear.

The message is formatted with its arguments first and the result redacted, so a
secret passed as an argument (a token dict, a headers mapping, a request body) is
caught as well as one written into the message; line breaks in it are escaped, so
that text from a provider or a query string can't forge log lines. Tracebacks
attached to the record are formatted and redacted the same way.

:class:`~flask_oauthclient.storage.Token`, the dict the extension hands tokens out
in, uses :func:`mask_secrets` for its ``repr``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
import re
import threading
import typing as t

__all__ = [
    "MASK",
    "SECRET_KEYS",
    "RedactingFilter",
    "install",
    "is_secret_key",
    "mask_secrets",
    "redact",
    "register_secret",
]

#: What a secret is replaced with.
MASK = "<redacted>"

#: Keys whose values are secrets, in token responses, request bodies and headers.
SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "id_token_hint",
        "token",
        "client_secret",
        "code",
        "code_verifier",
        "device_code",
        "password",
        "assertion",
        "client_assertion",
        "subject_token",
        "actor_token",
        "oauth_token_secret",
        "authorization",
        "proxy-authorization",
    }
)

#: The loggers :func:`install` filters, and every logger below them.
LOGGERS = (
    "flask_oauthclient",
    # Loggers of modules imported on first use, after init_app installed the
    # filter: named here so that they exist and get it too.
    "flask_oauthclient.oidc",
    "flask_oauthclient.transport",
    "flask_oauthclient.encryption",
    "requests_oauthlib",
    "oauthlib",
)

# The patterns, compiled on first use (:func:`_compiled_rules`): compiling them costs
# more than the rest of the module's import, and most processes never log a secret.

# 'key': 'value' (Python reprs, also b'value') and "key": "value" (JSON).
_QUOTED_PAIR = (
    r"""(?P<pre>(?P<kq>['"])(?:{keys})(?P=kq)\s*:\s*b?)"""
    r"""(?P<vq>['"])(?:\\.|(?!(?P=vq)).)*(?P=vq)"""
)
# key=value in form bodies and query strings.
_FORM_PAIR = r"(?P<pre>(?<![\w.-])(?:{keys})=)[^&\s'\"<>;,)}}\]]+"
# Authorization: Bearer abc / Authorization=Basic abc (unquoted header dumps).
_AUTH_HEADER = (
    r"(?P<pre>(?<![\w-])(?:proxy-)?authorization\s*[:=]\s*"
    r"(?:[A-Za-z][\w.-]*\s+)?)[^\s'\",;}}\]]+"
)
# Credentials after an authentication scheme, wherever they appear; a credential
# has a digit or a base64 symbol, which tells it from an English word ("token
# completed").
_SCHEME_CREDENTIALS = (
    r"(?P<pre>\b(?:Bearer|Basic|Digest|DPoP)\s+)"
    r"(?=[A-Za-z.~-]*[0-9_+/=])[A-Za-z0-9._~+/=-]{{8,}}"
)
# "refresh token <value>", "token <value>" in prose (oauthlib's server side logs
# so); longer, so that "token HTTP/1.1" stays.
_NAMED_TOKEN = (
    r"(?P<pre>\btoken:?\s+)(?=[A-Za-z.~-]*[0-9_+/=])[A-Za-z0-9._~+/=-]{{16,}}"
)
# JWS (three parts) and JWE (five parts) compact serializations: the header is a JSON
# object, so base64url-encoded it starts with "eyJ".
_JWT = r"\beyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){{2,4}}"


#: ``(pattern, replacement)`` in the order :func:`redact` applies them; filled on
#: first use.
_rules: list[tuple[re.Pattern[str], str]] = []


def _compiled_rules() -> list[tuple[re.Pattern[str], str]]:
    """The patterns of :func:`redact` and their replacements, compiled once."""
    if not _rules:
        keys = "|".join(
            sorted((re.escape(k) for k in SECRET_KEYS), key=len, reverse=True)
        )

        def pattern(source: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
            return re.compile(source.format(keys=keys), flags)

        masked = rf"\g<pre>{MASK}"
        rules = [
            (pattern(_JWT, 0), MASK),
            (
                pattern(_QUOTED_PAIR, re.IGNORECASE | re.DOTALL),
                rf"\g<pre>\g<vq>{MASK}\g<vq>",
            ),
            (pattern(_FORM_PAIR), masked),
            (pattern(_AUTH_HEADER), masked),
            (pattern(_SCHEME_CREDENTIALS), masked),
            (pattern(_NAMED_TOKEN), masked),
        ]
        # Threads that get here at once compile the same rules; one list wins.
        _rules[:] = rules
    return _rules


_secrets_lock = threading.Lock()
_secrets: set[str] = set()
#: Client secrets shorter than this are not searched for: they would mask too much.
_MIN_SECRET_LENGTH = 6


def is_secret_key(name: str) -> bool:
    """Whether values under the key ``name`` are secrets: one of
    :data:`SECRET_KEYS`, or a name ending in ``_token`` or ``secret``, or containing
    ``password``."""
    lowered = name.lower()
    return (
        lowered in SECRET_KEYS
        or lowered.endswith(("_token", "secret"))
        or "password" in lowered
    )


def mask_secrets(value: t.Any) -> t.Any:
    """A copy of ``value`` (a mapping, list or scalar) in which the values of secret
    keys (see :func:`is_secret_key`) are replaced by :data:`MASK`, at any depth."""
    if isinstance(value, t.Mapping):
        return {
            k: (
                MASK
                if isinstance(k, str) and is_secret_key(k) and v is not None
                else mask_secrets(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(mask_secrets(v) for v in value)
    if isinstance(value, str):
        return redact(value)
    return value


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears in a filtered log record. ``init_app``
    registers each provider's client secret."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every secret it shows replaced by :data:`MASK`."""
    for pattern, replacement in _compiled_rules():
        text = pattern.sub(replacement, text)
    # Known secrets last: replaced first, a short one could break up a key the
    # patterns above look for ("client_secret" with the secret "secret").
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A :class:`logging.Filter` that redacts secrets from every record it sees (it
    never drops one). On a logger it sees that logger's own records; on a handler,
    every record the handler emits, from any library.

    .. code-block:: python

        handler.addFilter(RedactingFilter())  # e.g. to cover urllib3 and werkzeug

    .. versionadded:: 0.1
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # The arguments don't fit the message: keep both for the error report
            # logging will print, redacted.
            message = f"{record.msg} {record.args!r}"
        # One record, one line: text from a provider or a query string can't
        # forge log lines of its own.
        record.msg = redact(message).replace("\r", "\\r").replace("\n", "\\n")
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
_FILTER = RedactingFilter()
_install_lock = threading.Lock()


def install(names: t.Iterable[str] = LOGGERS) -> None:
    """Put the process's one :class:`RedactingFilter` on the loggers ``names`` and
    on every logger that exists below them. Idempotent: a logger never gets it
    twice. A filter on a logger only sees that logger's records, not those of its
    children, hence the walk; call it again after importing a library whose loggers
    should be covered too.

    .. versionadded:: 0.1
    """
    prefixes = tuple(names)
    children = tuple(f"{name}." for name in prefixes)
    with _install_lock:
        loggers = [logging.getLogger(name) for name in prefixes]
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger) and name.startswith(children):
                loggers.append(logger)
        for logger in loggers:
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
