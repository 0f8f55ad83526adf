"""Helpers for the profile mappers of plain OAuth 2 presets.

A mapper turns a provider's own profile into OpenID Connect claims. Whatever the
provider leaves out, or sends in an unexpected shape, is left out of the claims: only
the user id is required. An email address is only ever marked verified when the
provider says so.
"""

from __future__ import annotations

import typing as t
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests


def fetch(
    http: requests.Session,
    api_base_url: str,
    path: str,
    timeout: float,
    *,
    method: str = "GET",
    **kwargs: t.Any,
) -> t.Any:
    """Call ``path`` (relative to ``api_base_url``) and return its JSON body.

    :raises requests.HTTPError: the provider answered with an error status.
    :raises ValueError: the body is not JSON.
    """
    headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
    response = http.request(
        method,
        urljoin(api_base_url, path),
        timeout=timeout,
        headers=headers,
        **kwargs,
    )
    response.raise_for_status()
    return response.json()


def fetch_object(
    http: requests.Session,
    api_base_url: str,
    path: str,
    timeout: float,
    **kwargs: t.Any,
) -> dict[str, t.Any]:
    """:func:`fetch` a JSON object.

    :raises ValueError: the body is not a JSON object.
    """
    data = fetch(http, api_base_url, path, timeout, **kwargs)
    if not isinstance(data, dict):
        raise ValueError(f"{path} did not answer with a JSON object.")
    return data


def try_fetch(
    http: requests.Session,
    api_base_url: str,
    path: str,
    timeout: float,
    **kwargs: t.Any,
) -> t.Any:
    """:func:`fetch` an optional document: None when the provider refuses it (a
    scope the user did not grant) or sends something that is not JSON. Network
    failures still raise."""
    try:
        return fetch(http, api_base_url, path, timeout, **kwargs)
    except (requests.HTTPError, ValueError):
        return None


def subject(value: object) -> str:
    """The ``sub`` claim: the provider's user id, which must be present.

    :raises ValueError: the id is missing or not a string or an integer.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("The profile has no user id.")
    sub = str(value)
    if not sub:
        raise ValueError("The profile has an empty user id.")
    return sub


def text(value: object) -> str | None:
    """A non-empty string, or None."""
    return value if isinstance(value, str) and value else None


def url(value: object) -> str | None:
    """An absolute ``https://`` or ``http://`` URL, or None (some providers send a
    relative placeholder path when the user has no picture)."""
    if not isinstance(value, str) or not value:
        return None
    if urlsplit(value).scheme.lower() not in ("https", "http"):
        return None
    return value


def dig(data: object, *keys: str | int) -> object:
    """``data[k1][k2]...``, or None where a level is missing or of another type."""
    for key in keys:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return None
            data = data[key]
        elif isinstance(data, dict):
            data = data.get(key)
        else:
            return None
    return data


def primary_email(
    entries: object, *, primary: str, verified: str
) -> tuple[str | None, object]:
    """The address of the entry whose ``primary`` key is ``True`` in a list of
    email entries, and its ``verified`` value; ``(None, None)`` without one."""
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and entry.get(primary) is True:
            return text(entry.get("email")), entry.get(verified)
    return None, None


def claims(**values: t.Any) -> dict[str, t.Any]:
    """The claims that have a value. ``email_verified`` goes with an ``email`` only,
    and is True only when it was given as exactly True."""
    out = {k: v for k, v in values.items() if v is not None and v != ""}
    out.pop("email_verified", None)
    if "email" in out:
        out["email_verified"] = values.get("email_verified") is True
    return out
