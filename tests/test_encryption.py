"""Tokens never shown, and optionally encrypted at rest: the masked ``Token`` dict
the extension hands out, Fernet encryption in SQLAlchemyStorage (SQLite and
PostgreSQL) and SessionStorage, key rotation and ``flask oauth reencrypt``."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import pprint
import sys
import typing as t
import uuid

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask
from flask import jsonify
from helpers.hardening import log_in
from helpers.hardening import make_site
from helpers.hardening import Site
from test_sqla import add_users
from test_sqla import created
from test_sqla import Env
from test_sqla import logged_in
from test_sqla import make_env
from test_sqla import rows

from flask_oauthclient import ConfigurationError
from flask_oauthclient import OAuth
from flask_oauthclient import Token
from flask_oauthclient.encryption import cipher_from_config
from flask_oauthclient.encryption import TokenCipher
from flask_oauthclient.signals import oauth_authorized
from flask_oauthclient.storage import SessionStorage

SECRETS = {
    "access_token": "AT-3f9a1c-never-shown",
    "refresh_token": "RT-77b2e0-never-shown",
    "id_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
}
PLAIN = {
    **SECRETS,
    "token_type": "Bearer",
    "expires_at": 1_900_000_000.5,
    "scope": ["openid", "email"],
}
KEY_OLD = Fernet.generate_key().decode()
KEY_NEW = Fernet.generate_key().decode()


def assert_no_secret(text: str) -> None:
    for value in SECRETS.values():
        assert value not in text


# -- the Token dict -------------------------------------------------------------------


def test_token_repr_masks_secrets(caplog: pytest.LogCaptureFixture) -> None:
    token = Token(PLAIN, nested={"refresh_token": "RT-nested", "ok": 1})
    shown = [repr(token), str(token), f"{token}", f"{[token]}"]
    if sys.version_info >= (3, 10):
        # Python 3.9's pprint prints any long dict subclass item by item, ignoring
        # its __repr__ (documented in docs/security.rst).
        shown.append(pprint.pformat(token))
    with caplog.at_level(logging.INFO, logger="app"):
        logging.getLogger("app").info("token %s %r", token, token)
    shown.append(caplog.text)
    for text in shown:
        assert_no_secret(text)
        assert "RT-nested" not in text
        assert "Bearer" in text and "openid" in text and "1900000000.5" in text


def test_token_is_a_plain_dict_to_everyone_else(app: Flask) -> None:
    token = Token(PLAIN)
    assert token == PLAIN and PLAIN == token
    assert isinstance(token, dict)
    assert json.loads(json.dumps(token)) == PLAIN
    assert token["access_token"] == SECRETS["access_token"]
    for clone in (token.copy(), copy.copy(token), pickle.loads(pickle.dumps(token))):
        assert clone == PLAIN and isinstance(clone, Token)
    # Flask's session serializer and JSON responses.
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer.loads(serializer.dumps({"t": token})) == {"t": PLAIN}
    with app.test_request_context():
        assert jsonify(token).json == PLAIN


@pytest.fixture
def site() -> Site:
    return make_site()


def test_every_token_handed_out_is_masked(site: Site) -> None:
    client = site.client()
    signalled: list[t.Any] = []
    with oauth_authorized.connected_to(lambda s, **kw: signalled.append(kw["token"])):
        assert log_in(site, client).status_code == 302
    on_login_token = site.logins[0][0]
    stored = site.storage.get("corp", user="user-1")
    with site.app.test_request_context():
        from flask_login import login_user

        login_user(site.users["user-1"])
        provider_token = site.oauth.corp.token
    for token in (on_login_token, stored, provider_token, signalled[0]):
        assert isinstance(token, Token)
        assert token["access_token"] == "access-1"
        assert "access-1" not in repr(token)


# -- encryption at rest: SQLAlchemyStorage --------------------------------------------


def encrypted_env(url: str, keys: t.Any) -> Env:
    env = make_env(url, uuid.uuid4().hex[:12])
    env.app.config["OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS"] = keys
    OAuth().init_app(env.app, storage=env.storage)
    return env


def rekey(target: Env | Site, keys: t.Any) -> None:
    """The same tokens, as an app configured with other keys would see them."""
    target.app.extensions["oauthclient"].cipher = cipher_from_config(keys)


def test_sqlalchemy_tokens_are_encrypted_at_rest(database_url: str) -> None:
    with created(encrypted_env(database_url, [KEY_NEW])) as env:
        (alice,) = add_users(env, "alice")
        with logged_in(env, alice):
            env.storage.set("corp", PLAIN)
            token = env.storage.get("corp")
            assert token == PLAIN and isinstance(token, Token)
        [row] = rows(env)
        assert set(row["token"]) == {"enc"}
        assert_no_secret(json.dumps(row["token"]))
        # What isn't secret stays queryable.
        assert row["expires_at"] is not None and row["provider"] == "corp"
        # Refreshes write through the lock: encrypted too.
        with logged_in(env, alice), env.storage.lock("corp") as locked:
            assert locked.token == PLAIN
            locked.save({**PLAIN, "access_token": "AT-refreshed-never-shown"})
        [row] = rows(env)
        assert set(row["token"]) == {"enc"}
        assert "AT-refreshed" not in json.dumps(row["token"])


def test_plain_tokens_stay_readable_when_encryption_is_switched_on(
    database_url: str,
) -> None:
    with created(encrypted_env(database_url, None)) as env:
        (alice,) = add_users(env, "alice")
        env.storage.set("corp", Token(PLAIN), user=alice)
        assert rows(env)[0]["token"] == PLAIN  # no keys: stored as it is
        rekey(env, [KEY_NEW])
        assert env.storage.get("corp", user=alice) == PLAIN
        env.storage.set("corp", PLAIN, user=alice)  # the next write encrypts
        assert set(rows(env)[0]["token"]) == {"enc"}


def test_key_rotation_and_reencrypt_command(database_url: str) -> None:
    with created(encrypted_env(database_url, [KEY_OLD])) as env:
        alice, bob, carol, dave = add_users(env, "alice", "bob", "carol", "dave")
        env.storage.set("corp", PLAIN, user=alice)
        env.storage.set("corp", {**PLAIN, "access_token": "AT-bob"}, user=bob)
        env.storage.set("other", PLAIN, user=bob)
        env.storage.delete("other", user=bob)  # an identity link: no token
        rekey(env, None)
        env.storage.set("corp", {"access_token": "AT-carol"}, user=carol)  # plain
        rekey(env, [Fernet.generate_key().decode()])
        env.storage.set("corp", {"access_token": "AT-dave"}, user=dave)  # lost key
        before = {r["user_id"]: r["token"] for r in rows(env) if r["token"]}

        # A new key first, the old one still there: everything reads.
        env.app.config["OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS"] = f"{KEY_NEW}, {KEY_OLD}"
        rekey(env, env.app.config["OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS"])
        assert env.storage.get("corp", user=alice) == PLAIN
        assert env.storage.get("corp", user=dave) is None  # no key fits: absent

        runner = env.app.test_cli_runner()
        result = runner.invoke(args=["oauth", "reencrypt", "--batch-size", "2"])
        assert result.exit_code == 1, result.output  # dave's token is unreadable
        assert "re-encrypted under the newest key: 2" in result.output
        assert "encrypted (were plain text):      1" in result.output
        assert "unreadable (no key decrypts):     1" in result.output
        assert_no_secret(result.output)
        assert "AT-" not in result.output
        after = {r["user_id"]: r["token"] for r in rows(env) if r["token"]}
        assert after[dave.id] == before[dave.id]  # left as it was
        assert set(after[carol.id]) == {"enc"}

        # The old key can go now.
        rekey(env, [KEY_NEW])
        assert env.storage.get("corp", user=alice) == PLAIN
        assert env.storage.get("corp", user=bob)["access_token"] == "AT-bob"  # type: ignore[index]
        assert env.storage.get("corp", user=carol) == {"access_token": "AT-carol"}
        # Running it again changes nothing.
        counts = env.storage.reencrypt(batch_size=2)
        assert counts == {"rotated": 0, "encrypted": 0, "current": 3, "unreadable": 1}


def test_undecryptable_token_counts_as_absent_and_is_logged(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with created(encrypted_env(database_url, [KEY_OLD])) as env:
        (alice,) = add_users(env, "alice")
        env.storage.set("corp", PLAIN, user=alice)
        rekey(env, [KEY_NEW])  # the old key was removed too early
        with caplog.at_level(logging.ERROR, logger="flask_oauthclient"):
            assert env.storage.get("corp", user=alice) is None
        assert "reencrypt" in caplog.text
        # A tampered ciphertext is refused as well.
        rekey(env, [KEY_OLD])
        table = env.OAuthToken.__table__
        with env.db.engine.begin() as conn:
            stored = conn.execute(sa.select(table.c.token)).scalar_one()
            forged = {"enc": stored["enc"][:-8] + "AAAAAAAA"}
            conn.execute(sa.update(table).values(token=forged))
        assert env.storage.get("corp", user=alice) is None
        # The next login stores a new token over it.
        env.storage.set("corp", PLAIN, user=alice)
        assert env.storage.get("corp", user=alice) == PLAIN


def test_encrypted_tokens_without_keys_count_as_absent(database_url: str) -> None:
    with created(encrypted_env(database_url, [KEY_OLD])) as env:
        (alice,) = add_users(env, "alice")
        env.storage.set("corp", PLAIN, user=alice)
        rekey(env, None)
        assert env.storage.get("corp", user=alice) is None


# -- encryption at rest: SessionStorage -----------------------------------------------


def test_session_tokens_are_encrypted_in_the_cookie() -> None:
    site = make_site(
        storage=SessionStorage(), OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS=[KEY_NEW]
    )
    client = site.client()
    assert log_in(site, client).status_code == 302
    cookie = client.get_cookie("session", domain="app.example")
    assert cookie is not None
    serializer = site.app.session_interface.get_signing_serializer(site.app)  # type: ignore[attr-defined]
    payload = serializer.loads(cookie.value)  # what the user can read
    stored = payload["_oauthclient_tokens"]["corp"]
    assert set(stored) == {"enc"}
    assert "access-1" not in json.dumps(payload)
    assert "refresh-1" not in json.dumps(payload)
    r = client.get("/api", base_url="https://app.example")
    assert r.json == {"token": "access-1"}


def test_session_tokens_under_a_removed_key_count_as_absent() -> None:
    site = make_site(
        storage=SessionStorage(), OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS=[KEY_OLD]
    )
    client = site.client()
    log_in(site, client)
    rekey(site, [KEY_NEW])
    r = client.get(
        "/api", base_url="https://app.example", headers={"Accept": "application/json"}
    )
    assert r.status_code == 401 and r.json["error"] == "token_missing"  # type: ignore[index]


# -- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [[], ["not-a-key"], [KEY_NEW, "short"], [b"\x00" * 44], "", 42],
    ids=["empty", "bad", "second-bad", "bytes", "empty-string", "int"],
)
def test_bad_keys_are_a_configuration_error(keys: t.Any) -> None:
    if keys in ([], ""):
        assert cipher_from_config(keys) is None
        return
    with pytest.raises(ConfigurationError) as info:
        cipher_from_config(keys)
    assert "generate_key" in str(info.value) or "list of Fernet keys" in str(info.value)
    assert "short" not in str(info.value) and "not-a-key" not in str(info.value)


def test_bad_keys_fail_init_app() -> None:
    app = Flask("bad_keys")
    app.config["OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS"] = ["nope"]
    with pytest.raises(ConfigurationError):
        OAuth().init_app(app)


def test_keys_from_one_string() -> None:
    cipher = cipher_from_config(f" {KEY_NEW},{KEY_OLD}\n")
    assert isinstance(cipher, TokenCipher)
    old = TokenCipher([KEY_OLD]).encrypt(PLAIN)
    assert cipher.decrypt(old) == PLAIN
    assert cipher.rotate(old)[0] == "rotated"
    assert "KEY" not in repr(cipher) and KEY_NEW not in repr(cipher)


@pytest.mark.parametrize("storage", ["session", "memory", "none"])
def test_reencrypt_command_without_a_database(storage: str) -> None:
    from flask_oauthclient import MemoryStorage

    app = Flask("reencrypt")
    if storage != "none":
        app.config["OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS"] = [KEY_NEW]
    OAuth().init_app(
        app, storage=MemoryStorage() if storage == "memory" else SessionStorage()
    )
    result = app.test_cli_runner().invoke(args=["oauth", "reencrypt"])
    if storage == "none":
        assert result.exit_code == 1
        assert "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS is not set" in result.output
    else:
        assert result.exit_code == 0
        assert ("cookie" if storage == "session" else "nothing") in result.output
