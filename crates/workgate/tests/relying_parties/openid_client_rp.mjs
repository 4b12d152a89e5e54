// A relying party written with panva's openid-client (npm, v6), run by tests/api/oidc_openid_client.rs
// against a live Workgate: discovery; the authorization code flow with PKCE, state and nonce for a
// confidential app (client_secret_basic, then client_secret_post) and for a public app (no secret);
// the ID token verified by the library; userinfo, refresh with rotation, introspection, revocation,
// the end-session URL; prompt=none without a session, max_age and prompt=login with one. The
// browser part is plain `fetch` that does not follow redirects, holding the member's Workgate
// session cookie.
//
// Usage: node openid_client_rp.mjs BASE CLIENT_ID CLIENT_SECRET PUBLIC_CLIENT_ID REDIRECT_URI
//          LOGOUT_REDIRECT_URI SESSION_COOKIE MEMBER_ID PHONE
// Exits non-zero with the reason when anything is not as OpenID Connect says; prints "every step
// passed" at the end.

import * as client from 'openid-client';

const USAGE =
  'usage: openid_client_rp.mjs BASE CLIENT_ID CLIENT_SECRET PUBLIC_CLIENT_ID REDIRECT_URI ' +
  'LOGOUT_REDIRECT_URI SESSION_COOKIE MEMBER_ID PHONE';

class StepFailed extends Error {}

let step = 'start';

/** Starts a step; the output shows every step reached, the failing one last. */
function begin(name) {
  step = name;
  console.log(`step: ${name}`);
}

function check(condition, what, detail) {
  if (!condition) {
    throw new StepFailed(`${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
}

function equal(actual, expected, what) {
  check(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/** The person's browser: one GET that does not follow redirects, with the session cookie if given. */
async function browse(url, sessionCookie) {
  const headers = sessionCookie ? { cookie: `wg_access=${sessionCookie}` } : {};
  const answer = await fetch(url, { redirect: 'manual', headers });
  const location = answer.headers.get('location');
  if (![302, 303].includes(answer.status) || !location) {
    throw new StepFailed(`GET ${url} answered ${answer.status} without a redirect: ${await answer.text()}`);
  }
  return new URL(location, url);
}

/** The authorization request of `config`, its checks, and where the browser is sent back to. */
async function authorize(config, redirectUri, sessionCookie, scope, extra = {}) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const expectedNonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: expectedState,
    nonce: expectedNonce,
    ...extra,
  });
  const back = await browse(url, sessionCookie);
  return { back, checks: { pkceCodeVerifier, expectedState, expectedNonce } };
}

/** The code flow through the token endpoint; answers the tokens and the verified ID token claims. */
async function codeFlow(config, args, scope, extra = {}, extraChecks = {}) {
  const { back, checks } = await authorize(config, args.redirectUri, args.sessionCookie, scope, extra);
  check(back.href.startsWith(`${args.redirectUri}?`), 'the browser goes back to the app', back.href);
  check(back.searchParams.has('code'), 'the app receives a code', back.href);
  const tokens = await client.authorizationCodeGrant(config, back, { ...checks, ...extraChecks });
  const claims = tokens.claims();
  check(claims !== undefined, 'the token response holds an ID token');
  equal(claims.sub, args.memberId, 'ID token sub');
  equal(claims.iss, args.base, 'ID token iss');
  equal(claims.nonce, checks.expectedNonce, 'ID token nonce');
  check(typeof claims.auth_time === 'number', 'ID token auth_time', claims);
  check(typeof tokens.access_token === 'string' && tokens.access_token.length > 0, 'an access token', tokens);
  check(typeof tokens.refresh_token === 'string' && tokens.refresh_token.length > 0, 'a refresh token', tokens);
  equal(tokens.token_type.toLowerCase(), 'bearer', 'token_type');
  return { tokens, claims };
}

function parseArgs(argv) {
  if (argv.length !== 9) {
    console.error(USAGE);
    process.exit(2);
  }
  const names = ['base', 'clientId', 'clientSecret', 'publicClientId', 'redirectUri', 'logoutRedirectUri',
    'sessionCookie', 'memberId', 'phone'];
  return Object.fromEntries(names.map((name, i) => [name, argv[i]]));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const insecure = { execute: [client.allowInsecureRequests] };
  const issuer = new URL(args.base);

  begin('discovery (client_secret_basic)');
  const basicAuth = client.ClientSecretBasic(args.clientSecret);
  const basic = await client.discovery(issuer, args.clientId, undefined, basicAuth, insecure);
  const meta = basic.serverMetadata();
  equal(meta.issuer, args.base, 'issuer');
  check(meta.code_challenge_methods_supported?.includes('S256'), 'S256 PKCE is supported', meta);
  check(meta.authorization_response_iss_parameter_supported === true, 'RFC 9207 iss is advertised', meta);
  check(typeof meta.end_session_endpoint === 'string', 'an end_session_endpoint', meta);
  check(typeof meta.introspection_endpoint === 'string', 'an introspection_endpoint', meta);
  check(typeof meta.revocation_endpoint === 'string', 'a revocation_endpoint', meta);

  begin('code flow with client_secret_basic');
  const first = await codeFlow(basic, args, 'openid profile phone');
  equal(first.claims.phone_number, args.phone, 'ID token phone_number (scope phone)');
  equal(first.claims.aud, args.clientId, 'ID token aud');

  begin('userinfo');
  const info = await client.fetchUserInfo(basic, first.tokens.access_token, args.memberId);
  equal(info.sub, args.memberId, 'userinfo sub');
  equal(info.phone_number, args.phone, 'userinfo phone_number');

  begin('refresh (client_secret_basic)');
  const renewed = await client.refreshTokenGrant(basic, first.tokens.refresh_token);
  check(renewed.access_token !== first.tokens.access_token, 'the refresh gives a new access token', renewed);
  check(
    typeof renewed.refresh_token === 'string' && renewed.refresh_token !== first.tokens.refresh_token,
    'the refresh token rotates',
    renewed,
  );

  begin('introspection');
  const active = async (config, token) => (await client.tokenIntrospection(config, token)).active;
  equal(await active(basic, renewed.access_token), true, 'the renewed access token is active');

  begin('revocation');
  await client.tokenRevocation(basic, renewed.refresh_token, { token_type_hint: 'refresh_token' });
  equal(await active(basic, renewed.access_token), false, 'revoking the refresh token ends its grant');

  begin('discovery (client_secret_post)');
  const postAuth = client.ClientSecretPost(args.clientSecret);
  const post = await client.discovery(issuer, args.clientId, undefined, postAuth, insecure);

  begin('code flow with client_secret_post');
  const second = await codeFlow(post, args, 'openid phone');
  equal(second.claims.phone_number, args.phone, 'ID token phone_number (scope phone)');

  begin('refresh token reuse (client_secret_post)');
  const rotated = await client.refreshTokenGrant(post, second.tokens.refresh_token);
  check(rotated.refresh_token !== second.tokens.refresh_token, 'the refresh token rotates', rotated);
  try {
    await client.refreshTokenGrant(post, second.tokens.refresh_token);
    throw new StepFailed('a used refresh token was accepted again');
  } catch (e) {
    if (!(e instanceof client.ResponseBodyError)) throw e;
    equal(e.error, 'invalid_grant', 'a used refresh token');
  }
  equal(await active(post, rotated.access_token), false, 'presenting a used refresh token revokes the grant');

  begin('discovery (public app, no secret)');
  const pub = await client.discovery(issuer, args.publicClientId, undefined, client.None(), insecure);

  begin('code flow of the public app');
  const third = await codeFlow(pub, args, 'openid profile');
  equal(third.claims.aud, args.publicClientId, 'ID token aud (public app)');
  equal(third.claims.phone_number, undefined, 'no phone_number without scope phone');
  check(typeof third.claims.name === 'string', 'ID token name (scope profile)', third.claims);
  const publicActive = await active(basic, third.tokens.access_token);
  equal(publicActive, true, 'the public app token, introspected by the confidential app');

  begin('refresh and revocation by the public app');
  const publicRenewed = await client.refreshTokenGrant(pub, third.tokens.refresh_token);
  check(publicRenewed.refresh_token !== third.tokens.refresh_token, 'the refresh token rotates', publicRenewed);
  await client.tokenRevocation(pub, publicRenewed.access_token, { token_type_hint: 'access_token' });
  equal(await active(basic, publicRenewed.access_token), false, 'the public app revoked its access token');

  begin('max_age that the session satisfies');
  const recent = await codeFlow(basic, args, 'openid', { max_age: '3600' }, { maxAge: 3600 });
  check(recent.claims.auth_time <= Math.floor(Date.now() / 1000) + 5, 'auth_time is not in the future', recent.claims);

  begin('prompt=none with a session');
  await codeFlow(basic, args, 'openid', { prompt: 'none' });

  // The login page, perhaps with a query (`lang`, `login_hint`): not the app.
  const loginPage = new URL('/login', args.base).href;
  const page = (url) => `${url.origin}${url.pathname}`;
  begin('max_age=0 with a session');
  const tooOld = await authorize(basic, args.redirectUri, args.sessionCookie, 'openid', { max_age: '0' });
  equal(page(tooOld.back), loginPage, 'max_age=0 sends the browser to the login, not to the app');

  begin('prompt=login with a session');
  const fresh = await authorize(basic, args.redirectUri, args.sessionCookie, 'openid', { prompt: 'login' });
  equal(page(fresh.back), loginPage, 'prompt=login sends the browser to the login, not to the app');

  begin('end-session URL');
  const state = client.randomState();
  const endSession = client.buildEndSessionUrl(basic, {
    id_token_hint: recent.tokens.id_token,
    post_logout_redirect_uri: args.logoutRedirectUri,
    state,
  });
  equal(page(endSession), meta.end_session_endpoint, 'the end-session endpoint');
  equal(endSession.searchParams.get('client_id'), args.clientId, 'end-session client_id');
  const signedOut = await browse(endSession, args.sessionCookie);
  equal(page(signedOut), args.logoutRedirectUri, 'logout goes back to the app');
  equal(signedOut.searchParams.get('state'), state, 'logout state');

  begin('prompt=none without a session');
  const silent = await authorize(basic, args.redirectUri, undefined, 'openid', { prompt: 'none' });
  check(silent.back.href.startsWith(`${args.redirectUri}?`), 'prompt=none goes back to the app', silent.back.href);
  try {
    await client.authorizationCodeGrant(basic, silent.back, silent.checks);
    throw new StepFailed('prompt=none without a session gave tokens');
  } catch (e) {
    if (!(e instanceof client.AuthorizationResponseError)) throw e;
    equal(e.error, 'login_required', 'the authorization response error');
    equal(e.cause.get('iss'), meta.issuer, 'the error names the issuer (RFC 9207)');
  }

  console.log('openid-client relying party: every step passed');
}

/** What went wrong, with what the library attached to its error (the server's answer, mostly). */
function describe(e) {
  if (e instanceof StepFailed) return e.message;
  const lines = [];
  for (let err = e; err !== undefined; err = err instanceof Error ? err.cause : undefined) {
    if (!(err instanceof Error)) {
      const plain = (_, v) => (v instanceof URLSearchParams ? v.toString() : v);
      lines.push(`cause: ${err instanceof URLSearchParams ? err.toString() : JSON.stringify(err, plain)}`);
      break;
    }
    let line = `${err.name}: ${err.message}`;
    if (err.code) line += ` [${err.code}]`;
    if (err.status) line += ` status=${err.status}`;
    if (err.error) line += ` error=${err.error}`;
    if (err.error_description) line += ` error_description=${err.error_description}`;
    lines.push(lines.length === 0 ? line : `caused by ${line}`);
  }
  lines.push(e?.stack ?? '');
  return lines.join('\n');
}

main().catch((e) => {
  console.error(`openid-client relying party: step "${step}" failed: ${describe(e)}`);
  process.exit(1);
});
