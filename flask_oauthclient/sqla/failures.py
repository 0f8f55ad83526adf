"""Database failures as :exc:`~flask_oauthclient.errors.StorageError`, without the
token: SQLAlchemy's messages quote the statement's parameters."""

from __future__ import annotations

import typing as t
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from ..errors import StorageError

__all__ = ["database_errors", "storage_error"]


@contextmanager
def database_errors(
    action: str, provider: str, *, integrity: bool = True
) -> t.Iterator[None]:
    """Turn database failures into :exc:`StorageError`.

    :param integrity: whether integrity errors are turned too; when false, the
        caller handles them (an identity linked to another user, say).
    """
    try:
        yield
    except sa_exc.IntegrityError as exc:
        if not integrity:
            raise
        raise storage_error(action, provider, exc) from None
    except (sa_exc.StatementError, sa_exc.TimeoutError) as exc:
        # ``from None``: SQLAlchemy's message quotes the statement's parameters,
        # the token among them, and tracebacks end up in logs.
        raise storage_error(action, provider, exc) from None


def storage_error(action: str, provider: str, exc: Exception) -> StorageError:
    """A :exc:`StorageError` naming the failure without quoting the statement's
    parameters (SQLAlchemy's message does, with the token in them)."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(exc, sa_exc.StatementError) and cause is exc:
        detail = type(exc).__name__
    else:
        lines = str(cause).strip().splitlines()
        detail = f"{type(cause).__name__}: {lines[0][:200]}" if lines else ""
        detail = detail or type(cause).__name__
    what = "nothing was written" if action != "read" else "nothing was read"
    return StorageError(
        f"Could not {action} the {provider!r} token, {what}: the database failed"
        f" ({detail})."
    )
