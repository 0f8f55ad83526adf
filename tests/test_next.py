from __future__ import annotations

import pytest

from flask_oauthclient.flow import safe_next

DEFAULT = "/home"


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/profile",
        "/profile?tab=2&x=%2Fy",
        "/a/b/c#frag",
        "/caf%C3%A9",
    ],
)
def test_local_paths_are_kept(target: str) -> None:
    assert safe_next(target, DEFAULT) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        42,
        "profile",
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "http:/evil.example",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "/%2F%2Fevil.example",
        "/%252F%252Fevil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "/\tevil",
        "/ok\r\nSet-Cookie: x=1",
        "/%0d%0aSet-Cookie:x",
        "/ok\x00",
        "/\u2028",
        "/" + "a" * 5000,
        " /profile",
    ],
)
def test_anything_else_falls_back(target: object) -> None:
    assert safe_next(target, DEFAULT) == DEFAULT
