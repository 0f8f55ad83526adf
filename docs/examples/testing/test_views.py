from __future__ import annotations

import time

from flask_oauthclient.testing.pytest_plugin import make_token

TOKEN_URL = "https://github.com/login/oauth/access_token"


def test_repos(client, user, oauth_login, oauth_mock_api):
    oauth_login(client, user, "github")
    oauth_mock_api("github", "GET", "user/repos", json=[{"full_name": "octo/hello"}])
    assert client.get("/repos").json == ["octo/hello"]


def test_anonymous_users_are_refused(client):
    assert client.get("/repos").status_code == 401


def test_github_failing(client, user, oauth_login, oauth_mock_api):
    oauth_login(client, user, "github")
    oauth_mock_api("github", "GET", "user/repos", status=503, body="down")
    assert client.get("/repos").status_code == 502


def test_an_expired_token_is_refreshed(client, user, oauth_login, oauth_mock_api):
    oauth_login(client, user, "github", token=make_token(expires_at=time.time() - 5))
    refresh = oauth_mock_api(
        "github",
        "POST",
        TOKEN_URL,
        json={"access_token": "new", "token_type": "bearer", "expires_in": 28800},
    )
    api = oauth_mock_api("github", "GET", "user/repos", json=[])
    assert client.get("/repos").json == []
    assert len(refresh.calls) == 1
    assert api.calls[0].headers["Authorization"] == "Bearer new"


def test_a_refused_refresh_sends_the_user_to_login(
    client, user, oauth_login, oauth_mock_api
):
    oauth_login(client, user, "github", token=make_token(expires_at=time.time() - 5))
    oauth_mock_api(
        "github", "POST", TOKEN_URL, status=400, json={"error": "invalid_grant"}
    )
    response = client.get("/repos")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login/github?next=/repos"
