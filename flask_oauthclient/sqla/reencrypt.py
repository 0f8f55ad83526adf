"""Re-encrypting the stored tokens under the newest key, in batches: the work of
:meth:`.SQLAlchemyStorage.reencrypt` (and ``flask oauth reencrypt``)."""

from __future__ import annotations

import functools
import typing as t

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ..encryption import TokenCipher
from ..errors import ConfigurationError
from ..errors import StorageError

__all__ = ["reencrypt_tokens"]

#: How :func:`reencrypt_tokens` runs one batch: in a transaction of its own,
#: committed when it returns.
InTransaction = t.Callable[
    [t.Callable[[sa.Connection], tuple[t.Any, dict[str, int]]]],
    tuple[t.Any, dict[str, int]],
]


def reencrypt_tokens(
    table: sa.Table,
    cipher: TokenCipher | None,
    batch_size: int,
    in_transaction: InTransaction,
) -> dict[str, int]:
    """Bring every token of ``table`` under the newest key of ``cipher``, a batch of
    ``batch_size`` rows per transaction (each locking its rows).

    :return: the counts described in :meth:`.SQLAlchemyStorage.reencrypt`.
    :raise ConfigurationError: ``cipher`` is ``None``, or ``table`` has no
        one-column primary key.
    :raise ~flask_oauthclient.errors.StorageError: the database failed; the
        batches before were committed.
    """
    if cipher is None:
        raise ConfigurationError(
            "Tokens can't be re-encrypted: OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS is "
            "not set."
        )
    primary_key = list(table.primary_key.columns)
    if len(primary_key) != 1:
        raise ConfigurationError(
            f"Re-encrypting needs a one-column primary key on {table.name}."
        )
    counts = dict.fromkeys(("rotated", "encrypted", "current", "unreadable"), 0)
    after: t.Any = None
    while True:
        work = functools.partial(
            _reencrypt_batch, table, cipher, primary_key[0], after, batch_size
        )
        try:
            last, done = in_transaction(work)
        except (sa_exc.StatementError, sa_exc.TimeoutError) as exc:
            cause = getattr(exc, "orig", None) or exc
            raise StorageError(
                f"Re-encrypting the tokens failed ({type(cause).__name__}); the"
                f" {sum(counts.values())} handled before were committed. Run it"
                " again: tokens under the newest key are skipped."
            ) from None
        for status, number in done.items():
            counts[status] += number
        if last is None:
            return counts
        after = last


def _reencrypt_batch(
    table: sa.Table,
    cipher: TokenCipher,
    primary_key: sa.Column[t.Any],
    after: t.Any,
    batch_size: int,
    conn: sa.Connection,
) -> tuple[t.Any, dict[str, int]]:
    """One batch of :func:`reencrypt_tokens`: the last key seen (``None`` at the
    end) and the counts."""
    column = table.c.token
    stmt = (
        sa.select(primary_key, column)
        .where(column.is_not(None))
        .order_by(primary_key)
        .limit(batch_size)
        .with_for_update()
    )
    if after is not None:
        stmt = stmt.where(primary_key > after)
    rows = conn.execute(stmt).all()
    done = dict.fromkeys(("rotated", "encrypted", "current", "unreadable"), 0)
    for key, stored in rows:
        if not isinstance(stored, dict) or not stored:
            continue
        try:
            status, new = cipher.rotate(stored)
        except ValueError:
            done["unreadable"] += 1
            continue
        done[status] += 1
        if new is not None:
            conn.execute(
                sa.update(table).where(primary_key == key).values({column.key: new})
            )
    last = rows[-1][0] if len(rows) == batch_size else None
    return last, done
