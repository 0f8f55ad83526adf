"""The runner's HTTP client: plain :mod:`http.client` on keep-alive connections, so
that the client adds as little as possible to what is measured, and a login that
follows the redirects (and fills in the provider's sign-in form) by hand, like a
browser with its own cookies."""

from __future__ import annotations

import html
import http.client
import re
import typing as t
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

ACCEPT_JSON = {"Accept": "application/json"}


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Connection:
    """A keep-alive connection to one origin that reconnects when the server closed
    it between requests."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
        return self._conn

    def request(
        self,
        method: str,
        path: str,
        headers: t.Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        for attempt in (0, 1):
            conn = self._connect()
            try:
                conn.request(method, path, body=body, headers=dict(headers or {}))
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
                continue
            if response.will_close:
                self.close()
            return Reply(response.status, response.headers, data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Browser:
    """A browser tab: cookies for the app and for the provider.

    With ``username``, the provider's sign-in form is filled in as that user (the
    provider runs without ``auto_login``); without, the provider signs its
    ``auto_login`` user in at once.
    """

    app: Connection
    provider: Connection
    username: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    provider_cookies: dict[str, str] = field(default_factory=dict)

    def cookie_header(self) -> dict[str, str]:
        return _cookie_header(self.cookies)

    def get_app(self, path: str, headers: t.Mapping[str, str] | None = None) -> Reply:
        reply = self.app.request(
            "GET", path, {**self.cookie_header(), **(headers or {})}
        )
        _keep_cookies(self.cookies, reply)
        return reply

    def post_app(self, path: str) -> Reply:
        reply = self.app.request("POST", path, {**self.cookie_header(), **ACCEPT_JSON})
        _keep_cookies(self.cookies, reply)
        return reply

    def login(self, login_path: str = "/login/dev") -> None:
        """A full login: the app's login view, the provider's authorize endpoint
        (and its sign-in form, with a ``username``), the app's callback (code
        exchange, token, user row). Raises :exc:`LoginFailed` unless the callback
        logs the user in and redirects to the app's front page."""
        self.cookies.clear()
        start = self.get_app(login_path)
        authorize = urlsplit(_location(start, "login view"))
        answer = self.provider.request(
            "GET",
            f"{authorize.path}?{authorize.query}",
            _cookie_header(self.provider_cookies),
        )
        _keep_cookies(self.provider_cookies, answer)
        if answer.status == 200 and self.username:
            answer = self._sign_in(authorize.path, authorize.query, answer.body)
        callback = urlsplit(_location(answer, "authorize endpoint"))
        done = self.get_app(f"{callback.path}?{callback.query}")
        target = urlsplit(urljoin(callback.geturl(), _location(done, "callback")))
        if target.path != "/":
            raise LoginFailed(f"the callback redirected to {target.path}")

    def _sign_in(self, path: str, query: str, page: bytes) -> Reply:
        """Submit the provider's sign-in form as :attr:`username`."""
        match = _CSRF.search(page)
        if match is None:
            raise LoginFailed("the provider's sign-in page has no form")
        fields = [
            *parse_qsl(query, keep_blank_values=True),
            ("csrf_token", html.unescape(match.group(1).decode())),
            ("username", self.username or ""),
            ("action", "login"),
        ]
        reply = self.provider.request(
            "POST",
            path,
            {
                **_cookie_header(self.provider_cookies),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            urlencode(fields).encode(),
        )
        _keep_cookies(self.provider_cookies, reply)
        return reply


def _text(body: bytes) -> str:
    """The readable part of an error page, for the run's report."""
    text = body.decode("utf-8", "replace")
    text = re.sub(r"(?s)<(style|script|head)\b.*?</\1>", " ", text)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return " ".join(text.split())[:300]


_CSRF = re.compile(rb'name="csrf_token" value="([^"]*)"')


def _cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    if not cookies:
        return {}
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def _keep_cookies(cookies: dict[str, str], reply: Reply) -> None:
    for value in reply.headers.get_all("Set-Cookie") or ():
        pair = value.split(";", 1)[0]
        name, _, val = pair.partition("=")
        name = name.strip()
        if "expires=Thu, 01 Jan 1970" in value or "Max-Age=0" in value:
            cookies.pop(name, None)
        else:
            cookies[name] = val


class LoginFailed(Exception):
    pass


def _location(reply: Reply, what: str) -> str:
    location = reply.header("Location")
    if reply.status not in (301, 302, 303, 307) or not location:
        raise LoginFailed(f"the {what} answered {reply.status}: {_text(reply.body)}")
    return location
