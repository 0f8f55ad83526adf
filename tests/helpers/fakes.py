"""A provider double that answers through a requests adapter, without a network, and
misbehaves on purpose when told to. The well-behaved flows are tested against the real
development provider over loopback HTTP; this double covers the failures."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
import typing as t
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from requests.adapters import BaseAdapter

ISSUER = "https://idp.example"
CLIENT_ID = "client-1"
CLIENT_SECRET = "secret-1"

Handler = t.Callable[[requests.PreparedRequest], requests.Response]

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def response(
    status: int = 200,
    body: t.Any = None,
    *,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.raw = io.BytesIO(raw if raw is not None else json.dumps(body).encode())
    r.headers["Content-Type"] = content_type
    r.encoding = "utf-8"
    return r


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


class FakeIdP(BaseAdapter):
    """An OpenID provider at :data:`ISSUER`, answering in-process."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.sub = "user-1"
        self.nonces: dict[str, str] = {}
        self.token_handler: Handler | None = None
        self.userinfo_handler: Handler | None = None
        self.id_token_claims: dict[str, t.Any] = {}
        self.refresh_count = 0
        self.issued = 0
        #: Refresh tokens the provider still accepts; each is single use (rotation).
        self.live_refresh_tokens: set[str] = set()
        self.rotate = True
        self.api_handler: Handler | None = None
        self.refresh_delay = 0.0
        self._lock = threading.Lock()

    # -- documents -----------------------------------------------------------------

    def metadata(self) -> dict[str, t.Any]:
        return {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": f"{ISSUER}/token",
            "userinfo_endpoint": f"{ISSUER}/userinfo",
            "jwks_uri": f"{ISSUER}/jwks",
            "revocation_endpoint": f"{ISSUER}/revoke",
            "id_token_signing_alg_values_supported": ["RS256"],
            "authorization_response_iss_parameter_supported": True,
        }

    def jwks(self) -> dict[str, t.Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(_KEY.public_key()))
        jwk.update(kid="k1", use="sig", alg="RS256")
        return {"keys": [jwk]}

    def id_token(self, access_token: str, nonce: str | None, **extra: t.Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": self.sub,
            "aud": CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "at_hash": at_hash(access_token),
        }
        if nonce:
            claims["nonce"] = nonce
        claims.update(self.id_token_claims)
        claims.update(extra)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, _KEY, algorithm="RS256", headers={"kid": "k1"})

    def token_response(self, nonce: str | None = None) -> dict[str, t.Any]:
        with self._lock:
            self.issued += 1
            access = f"access-{self.issued}"
            refresh = f"refresh-{self.issued}"
            self.live_refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": refresh,
            "scope": "openid email profile",
            "id_token": self.id_token(access, nonce),
        }

    # -- requests adapter ----------------------------------------------------------

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: t.Any
    ) -> requests.Response:
        path = urlsplit(request.url or "").path
        self.calls.append(path)
        if path == "/.well-known/openid-configuration":
            r = response(200, self.metadata())
        elif path == "/jwks":
            r = response(200, self.jwks())
        elif path == "/token":
            r = (self.token_handler or self._token)(request)
        elif path == "/userinfo":
            r = (self.userinfo_handler or self._userinfo)(request)
        elif path.startswith("/api/"):
            r = (self.api_handler or self._api)(request)
        else:
            r = response(404, {"error": "not_found"})
        r.request = request
        r.url = request.url or ""
        return r

    def close(self) -> None:
        pass

    def _token(self, request: requests.PreparedRequest) -> requests.Response:
        form = parse_qs(t.cast(str, request.body or ""))
        if form.get("grant_type") == ["refresh_token"]:
            return self._refresh(form.get("refresh_token", [""])[0])
        code = form.get("code", [""])[0]
        if code not in self.nonces:
            return response(400, {"error": "invalid_grant"})
        return response(200, self.token_response(self.nonces.pop(code)))

    def _refresh(self, refresh_token: str) -> requests.Response:
        time.sleep(self.refresh_delay)
        with self._lock:
            self.refresh_count += 1
            if refresh_token not in self.live_refresh_tokens:
                return response(400, {"error": "invalid_grant"})
            if self.rotate:
                self.live_refresh_tokens.discard(refresh_token)
        body = self.token_response()
        if not self.rotate:
            body.pop("refresh_token")
        return response(200, body)

    def _api(self, request: requests.PreparedRequest) -> requests.Response:
        auth = request.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return response(401, {"error": "invalid_token"})
        return response(200, {"token": auth[len("Bearer ") :]})

    def _userinfo(self, request: requests.PreparedRequest) -> requests.Response:
        if not (request.headers.get("Authorization") or "").startswith("Bearer "):
            return response(401, {"error": "invalid_token"})
        return response(
            200,
            {
                "sub": self.sub,
                "email": f"{self.sub}@idp.example",
                "email_verified": True,
            },
        )
