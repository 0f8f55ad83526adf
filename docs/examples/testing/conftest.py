from __future__ import annotations

import typing as t

import pytest
from flask import Flask
from myapp import create_app
from myapp import db
from myapp import User


@pytest.fixture
def app(tmp_path: t.Any) -> t.Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.sqlite'}",
            "OAUTHCLIENT_GITHUB_CLIENT_ID": "test-client-id",
            "OAUTHCLIENT_GITHUB_CLIENT_SECRET": "test-client-secret",
        }
    )
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def user(app: Flask) -> User:
    with app.app_context():
        user = User(name="Octocat")
        db.session.add(user)
        db.session.commit()  # the token row refers to the user: commit first
        db.session.refresh(user)
        db.session.expunge(user)
        return user
