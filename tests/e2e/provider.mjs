// A real, certified OpenID provider (panva/oidc-provider, pinned in package.json) on
// loopback, for the browser tests in this folder. tests/e2e/conftest.py starts it on
// a free port; by hand:
//
//   cd tests/e2e && npm ci && OP_PORT=9090 node provider.mjs
//
// It prints "READY <issuer>" once it listens, and one "event ..." line per token
// event (issued, refreshed, consumed, revoked) so a failing test's log tells what the
// provider saw. It stops on SIGTERM or SIGINT.
//
// Env:
//   OP_HOST              bind address            (default 127.0.0.1; keep it loopback)
//   OP_PORT              port                    (default 9090)
//   OP_ISSUER            issuer URL              (default http://OP_HOST:OP_PORT)
//   OP_CLIENT_ID         confidential client id  (default e2e-client)
//   OP_CLIENT_SECRET     its secret              (default e2e-secret; keep it [A-Za-z0-9-_])
//   OP_REDIRECT_URIS     space-separated redirect URIs of the client
//                        (default http://127.0.0.1:5000/login/dev/authorized)
//   OP_ACCESS_TOKEN_TTL  seconds                 (default 3: short, so refresh is tested)
//   OP_CLOCK_TOLERANCE   seconds an expired token is still accepted
//                        (default 0; the library's default, 15, hides expiry)
//   OP_USERINFO_PATH     path of the userinfo endpoint (default /me, the library's)
//   OP_EXTRA_CLIENTS     a JSON array of more clients' metadata (default none), e.g.
//                        a form_post-only client ({"response_modes": ["form_post"]})
//                        or a private_key_jwt one ({"token_endpoint_auth_method":
//                        "private_key_jwt", "jwks": {"keys": [<public JWK>]}});
//                        grant and response types default to the first client's
//   OP_EXTRA_SCOPES      space-separated scopes offered besides openid, profile,
//                        email and offline_access (default none)
//
// Gotchas this configuration handles (see shared/e2e/RECIPE.md):
// - a refresh token is issued only when offline_access is granted, which needs
//   prompt=consent on the authorization request (the example app sends it);
// - rotateRefreshToken: true, else a confidential client gets the same refresh token
//   back; presenting a consumed refresh token then revokes the whole grant;
// - Node 18 crashes at startup (URL.parse); 20 works with a warning, 22 is supported.
import Provider from 'oidc-provider';

const HOST = process.env.OP_HOST || '127.0.0.1';
const PORT = Number(process.env.OP_PORT || 9090);
const ISSUER = process.env.OP_ISSUER || `http://${HOST}:${PORT}`;
const CLIENT_ID = process.env.OP_CLIENT_ID || 'e2e-client';
const CLIENT_SECRET = process.env.OP_CLIENT_SECRET || 'e2e-secret';
const REDIRECT_URIS = (process.env.OP_REDIRECT_URIS
  || 'http://127.0.0.1:5000/login/dev/authorized').split(/\s+/).filter(Boolean);
const AT_TTL = Number(process.env.OP_ACCESS_TOKEN_TTL || 3);
const CLOCK_TOLERANCE = Number(process.env.OP_CLOCK_TOLERANCE || 0);
const USERINFO_PATH = process.env.OP_USERINFO_PATH || '/me';
const EXTRA_CLIENTS = JSON.parse(process.env.OP_EXTRA_CLIENTS || '[]');
const EXTRA_SCOPES = (process.env.OP_EXTRA_SCOPES || '').split(/\s+/).filter(Boolean);

// The dev login page accepts any login name; the claims are derived from it.
function claimsFor(sub) {
  return {
    sub,
    name: `Test User ${sub}`,
    given_name: 'Test',
    family_name: `User ${sub}`,
    preferred_username: sub,
    email: `${sub}@example.test`,
    email_verified: true,
  };
}

const configuration = {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: REDIRECT_URIS,
    post_logout_redirect_uris: REDIRECT_URIS.map((u) => new URL('/', u).href),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic', // client_secret_post works too
  }, ...EXTRA_CLIENTS.map((client) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    post_logout_redirect_uris: (client.redirect_uris || []).map((u) => new URL('/', u).href),
    ...client,
  }))],
  scopes: ['openid', 'profile', 'email', 'offline_access', ...EXTRA_SCOPES],
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() { return claimsFor(sub); }, // filtered by the granted scope
    };
  },
  pkce: { required: () => true }, // S256 only
  ttl: {
    AccessToken: AT_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 24 * 3600,
    Grant: 24 * 3600,
    Session: 24 * 3600,
    Interaction: 3600,
  },
  clockTolerance: CLOCK_TOLERANCE,
  rotateRefreshToken: true,
  features: {
    devInteractions: { enabled: true }, // built-in login ("any login") and consent pages
    revocation: { enabled: true }, // RFC 7009, /token/revocation
    introspection: { enabled: true }, // RFC 7662, /token/introspection
    rpInitiatedLogout: { enabled: true }, // /session/end
  },
  routes: { userinfo: USERINFO_PATH },
  cookies: { keys: ['flask-oauthclient-e2e-cookie-key'] },
  // jwks left out: the library's dev RSA key signs RS256 ID tokens, published at /jwks.
};

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const EVENTS = [
  'grant.success', 'grant.error', 'grant.revoked',
  'refresh_token.saved', 'refresh_token.consumed', 'refresh_token.destroyed',
  'revocation.error', 'introspection.error',
];
for (const ev of EVENTS) {
  provider.on(ev, (...args) => {
    const err = args.find((a) => a instanceof Error);
    console.log('event', ev, err ? `${err.name}: ${err.message}` : '');
  });
}

const server = provider.listen(PORT, HOST, () => {
  console.log(`READY ${ISSUER}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref(); // keep-alive sockets: don't wait
  });
}
