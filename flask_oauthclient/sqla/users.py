"""Users and their ids: the id a token row is stored under, told from a user object
(the app's model, Flask-Login's ``current_user``, anything with an ``id``) or from
the app's ``user_id()``; and the user a token row belongs to."""

from __future__ import annotations

import typing as t

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import orm as sa_orm

from ..errors import ConfigurationError
from ..storage.base import CURRENT_USER

__all__ = ["UserIds"]


class UserIds:
    """Tells the id of a user, as the token model's user column holds it.

    :param mapper: the token model's mapper.
    :param user_column: the token model's column holding the user's id.
    :param user_attr: the token model's attribute mapping ``user_column``.
    :param user: a callable returning the current user; with neither ``user`` nor
        ``user_id``, Flask-Login's ``current_user``.
    :param user_id: instead of ``user``, a callable returning the current user's id.
    """

    def __init__(
        self,
        mapper: sa_orm.Mapper[t.Any],
        user_column: sa.Column[t.Any],
        user_attr: str,
        user: t.Callable[[], t.Any] | None = None,
        user_id: t.Callable[[], t.Any] | None = None,
    ) -> None:
        self._mapper = mapper
        self._user_column = user_column
        self._user = user
        self._user_id = user_id
        self._user_attr = user_attr

    def resolve(self, user: t.Any) -> t.Any | None:
        """The id of ``user`` (or of the current user), ``None`` when anonymous."""
        if user is CURRENT_USER and self._user_id is not None:
            return self._coerce_id(self._user_id())
        user = self.instance(user)
        if user is None or not getattr(user, "is_authenticated", True):
            return None
        state = sa.inspect(user, raiseerr=False)
        if isinstance(state, sa_orm.InstanceState):
            value = self._id_from_instance(state)
        else:
            value = getattr(user, "id", None)
        if value is None:
            raise ConfigurationError(
                f"The user {type(user).__name__} has no id yet: commit it"
                " (db.session.commit()) before storing or reading its tokens."
            )
        return value

    def instance(self, user: t.Any) -> t.Any | None:
        """The user object ``user`` stands for: the current user's for
        ``CURRENT_USER`` (``None`` when the storage was given ``user_id=``, which
        names no object), unwrapped when it is a ``LocalProxy``."""
        if user is CURRENT_USER:
            if self._user_id is not None:
                return None
            user = self._user() if self._user is not None else _flask_login_user()
        unwrap = getattr(user, "_get_current_object", None)
        if callable(unwrap):  # a LocalProxy such as current_user
            user = unwrap()
        return user

    def _id_from_instance(self, state: sa_orm.InstanceState[t.Any]) -> t.Any:
        mapper = state.mapper
        pk = mapper.primary_key
        target: sa.ColumnElement[t.Any] | None
        target = _referenced_column(self._user_column)
        if target is None or (len(pk) == 1 and target is pk[0]):
            if len(pk) != 1:
                raise ConfigurationError(
                    f"Can't tell the id of a {mapper.class_.__name__} user: give"
                    " the token model's user column a ForeignKey to the user's id."
                )
            if state.key is not None:
                # The identity key: no load, hence no autoflush of the view's session.
                return state.key[1][0]
            target = pk[0]
        try:
            prop = mapper.get_property_by_column(target)
        except sa_orm.exc.UnmappedColumnError:
            raise ConfigurationError(
                f"The token model's user column references {target}, which"
                f" {mapper.class_.__name__} doesn't map: is it the user model?"
            ) from None
        return getattr(state.obj(), prop.key)

    def _coerce_id(self, value: t.Any) -> t.Any:
        # Flask-Login's get_id() gives strings; the column may want ints.
        if value is None:
            return None
        try:
            python_type = self._user_column.type.python_type
        except NotImplementedError:
            return value
        if isinstance(value, python_type):
            return value
        try:
            return python_type(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"user_id() returned {type(value).__name__}, not an id for the"
                f" column {self._user_column.name}."
            ) from None

    def user_of(
        self, row: t.Any, session: sa_orm.Session | sa_orm.scoped_session[t.Any]
    ) -> t.Any | None:
        """The user a token row belongs to, through the relationship on the user
        column, or else looked up by the foreign key (through ``session``)."""
        for rel in self._mapper.relationships:
            if self._user_column in rel.local_columns and not rel.uselist:
                return getattr(row, rel.key)
        user_id = getattr(row, self._user_attr)
        target = _referenced_column(self._user_column)
        if target is not None:
            for mapper in self._mapper.registry.mappers:
                if mapper.local_table is target.table:
                    stmt = sa.select(mapper.class_).where(target == user_id)
                    return session.execute(stmt).scalars().first()
        raise ConfigurationError(
            f"Can't find the user of a {self._mapper.class_.__name__}: add a"
            " relationship to the user ('user = db.relationship(User)')."
        )


def _flask_login_user() -> t.Any:
    from flask_login import current_user

    return current_user


def _referenced_column(column: sa.Column[t.Any]) -> sa.Column[t.Any] | None:
    for fk in column.foreign_keys:
        try:
            return fk.column
        except sa_exc.NoReferenceError:
            return None
    return None
