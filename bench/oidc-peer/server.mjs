// The peer that `workgate-loadgen oidc-peer` measures beside Workgate: oidc-provider (panva), the
// certified Node.js OpenID Provider, with its in-memory adapter, one confidential client and one
// RS256 key, on 127.0.0.1.
//
//   node server.mjs [port]        (or PORT=...; default 3000) — prints "listening <port>" when ready
//
// Two routes are added for the benchmark, served by the provider's own Koa app before its router:
//   GET  /bench/health                        200 "ok" without touching the provider (the ceiling)
//   POST /bench/codes?n=N&sessions=S&code_challenge=C
//        mints N authorization codes through the provider's own models, as its authorization
//        endpoint does after a login and consent: S sessions (one per member, accounts m0..m(S-1)),
//        each with a Grant for the client (openid profile phone), then codes round robin over them,
//        bound to the session like a real code (expiresWithSession), with PKCE S256 challenge C.
//        Answers {"client_id", "client_secret", "redirect_uri", "codes": [...]}.
//
// The in-memory adapter is oidc-provider's own MemoryAdapter class; only its store is larger: the
// default store is an LRU of 1,000 entries, which would evict a pool of codes (and the tokens the
// exchanges make) long before they are used.

import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`bad port: ${process.argv[2] ?? process.env.PORT}`);
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const CLIENT_ID = 'loadgen';
const CLIENT_SECRET = 'loadgen-secret-5b0f1c2e9d8a7b6c5d4e3f2a1b0c9d8e';
const REDIRECT_URI = 'https://app.example.com/callback';
const SCOPE = 'openid profile phone';
const DAY = 24 * 60 * 60;

// The ID tokens' algorithm, as the Workgate app of the same run uses: RS256 (default) or ES256.
const ALG = process.argv[3] ?? 'RS256';
const { privateKey } = ALG === 'ES256'
  ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
  : generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `bench-${ALG.toLowerCase()}`, alg: ALG, use: 'sig' };

const store = new LRU({ maxSize: 50_000_000 });

const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store),
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: ALG,
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  claims: { openid: ['sub'], profile: ['name'], phone: ['phone_number'] },
  scopes: ['openid', 'offline_access', 'profile', 'phone'],
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        const i = Number(sub.slice(1)) || 0;
        return { sub, name: `Member ${i}`, phone_number: `+86139${String(i + 1).padStart(8, '0')}` };
      },
    };
  },
  pkce: { required: () => true },
  clientBasedCORS: () => false,
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
    introspection: {
      enabled: true,
      // The client that the token was issued to may introspect it (as Workgate allows).
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 600, // as Workgate's code_ttl_secs in the benchmark
    IdToken: 3600,
    RefreshToken: 14 * DAY,
    Grant: 14 * DAY,
    Session: 14 * DAY,
    Interaction: 3600,
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

let reportedGrantErrors = 0;
provider.on('grant.error', (ctx, err) => {
  if (reportedGrantErrors < 5) {
    reportedGrantErrors += 1;
    console.error('grant.error', err.message, err.error_description ?? '');
  }
});

async function mintCodes(n, sessions, codeChallenge) {
  const client = await provider.Client.find(CLIENT_ID);
  const members = [];
  for (let s = 0; s < sessions; s += 1) {
    const accountId = `m${s}`;
    // What the login and consent interactions leave behind: a Grant and a logged-in Session.
    const grant = new provider.Grant({ accountId, clientId: CLIENT_ID });
    grant.addOIDCScope(SCOPE);
    const grantId = await grant.save();
    const session = new provider.Session();
    session.loginAccount({ accountId });
    session.grantIdFor(CLIENT_ID, grantId);
    session.ensureClientContainer(CLIENT_ID);
    await session.save(14 * DAY);
    members.push({ accountId, grantId, session });
  }
  const codes = new Array(n);
  for (let i = 0; i < n; i += 1) {
    const { accountId, grantId, session } = members[i % members.length];
    // The fields that the authorization endpoint's code handler sets
    // (lib/helpers/process_response_types.js), for a request without claims, resource or DPoP.
    const code = new provider.AuthorizationCode({
      accountId,
      authTime: session.authTime(),
      client,
      codeChallenge,
      codeChallengeMethod: 'S256',
      grantId,
      nonce: `n${i}`,
      redirectUri: REDIRECT_URI,
      scope: SCOPE,
      sessionUid: session.uid,
    });
    // The default expiresWithSession(): true without offline_access.
    code.expiresWithSession = true;
    if (client.includeSid()) {
      code.sid = session.sidFor(CLIENT_ID);
    }
    codes[i] = await code.save();
  }
  return codes;
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/bench/health' && ctx.method === 'GET') {
    ctx.type = 'text/plain';
    ctx.body = 'ok';
    return;
  }
  if (ctx.path === '/bench/codes' && ctx.method === 'POST') {
    const n = Number(ctx.query.n ?? 1);
    const sessions = Number(ctx.query.sessions ?? 100);
    const challenge = ctx.query.code_challenge;
    if (!Number.isInteger(n) || n < 1 || n > 1_000_000 || !Number.isInteger(sessions) || sessions < 1
        || typeof challenge !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(challenge)) {
      ctx.status = 400;
      ctx.body = { error: 'want n (1..1000000), sessions (>= 1) and code_challenge (S256, base64url)' };
      return;
    }
    ctx.body = {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uri: REDIRECT_URI,
      codes: await mintCodes(n, sessions, challenge),
    };
    return;
  }
  await next();
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${port}`);
});
server.keepAliveTimeout = 120_000;
