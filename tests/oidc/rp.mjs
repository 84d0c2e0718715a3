// A small application that signs its users in with authd, written with openid-client (OpenID
// certified), for authd's tests of its OpenID Provider.
//
// Usage: node rp.mjs <issuer> <client_id> <client_secret> <port> [auth_method] [scope]
//   auth_method: client_secret_basic (default), client_secret_post or none
//   scope: default "openid email profile"
// It serves http://127.0.0.1:<port>/callback, its redirect_uri.
//
// What it says on stdout, one JSON object a line:
//   {"authorization_url": "…"}   once discovery is done and /callback listens: where the browser goes
//   {"ok": true, …}             after the browser came back and every step worked (see `result`)
//   {"ok": false, "step": "…", "error": {…}}   a step failed; the process then ends with 1
// The browser gets a page that says OK (200) or Failed (500). The process ends after the first
// callback, or after AUTHD_RP_TIMEOUT seconds (default 120) without one.
import http from 'node:http';
import * as client from 'openid-client';

const [issuer, clientId, clientSecret, port, authMethod = 'client_secret_basic', scope = 'openid email profile'] =
  process.argv.slice(2);
const redirectUri = `http://127.0.0.1:${port}/callback`;

function say(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

// Everything an error of openid-client (ClientError, ResponseBodyError, AuthorizationResponseError,
// WWWAuthenticateChallengeError) carries that helps to see why.
function describe(e) {
  const out = { name: e?.name, message: e?.message, code: e?.code };
  for (const k of ['error', 'error_description', 'status']) {
    if (e?.[k] !== undefined) out[k] = e[k];
  }
  if (e?.cause !== undefined) {
    const c = e.cause;
    out.cause = c instanceof Error ? { name: c.name, message: c.message, code: c.code } : c;
  }
  return out;
}

function fail(step, e) {
  say({ ok: false, step, error: describe(e) });
  process.exitCode = 1;
}

function jwtPart(jwt, n) {
  return JSON.parse(Buffer.from(jwt.split('.')[n], 'base64url').toString('utf8'));
}

const auth = {
  client_secret_basic: () => client.ClientSecretBasic(clientSecret),
  client_secret_post: () => client.ClientSecretPost(clientSecret),
  none: () => client.None(),
}[authMethod];
if (!auth || !issuer || !clientId || !port) {
  fail('arguments', new Error('usage: node rp.mjs <issuer> <client_id> <client_secret> <port> [auth_method] [scope]'));
  process.exit();
}

let config;
try {
  config = await client.discovery(new URL(issuer), clientId, undefined, auth(), {
    execute: [client.allowInsecureRequests],
    timeout: 10,
  });
} catch (e) {
  fail('discovery', e);
  process.exit();
}

// What this login is bound to: the browser brings back state; the code needs the verifier, and
// the ID token the nonce.
const codeVerifier = client.randomPKCECodeVerifier();
const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
const state = client.randomState();
const nonce = client.randomNonce();
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope,
  code_challenge: codeChallenge,
  code_challenge_method: 'S256',
  state,
  nonce,
});

// The steps after the browser's return, each named so that a failure says where it happened.
async function signIn(currentUrl) {
  let step = 'authorization_code';
  try {
    const tokens = await client.authorizationCodeGrant(config, currentUrl, {
      pkceCodeVerifier: codeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    step = 'userinfo';
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    step = 'refresh_token';
    if (!tokens.refresh_token) throw new Error('the token response has no refresh_token');
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    const refreshedClaims = refreshed.claims();
    step = 'userinfo_after_refresh';
    const userinfoAfterRefresh = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
    return {
      ok: true,
      issuer: config.serverMetadata().issuer,
      token: {
        token_type: tokens.token_type,
        expires_in: tokens.expires_in,
        scope: tokens.scope,
        has_refresh_token: Boolean(tokens.refresh_token),
      },
      id_token_header: jwtPart(tokens.id_token, 0),
      id_token_claims: claims,
      userinfo,
      refresh: {
        id_token: Boolean(refreshed.id_token),
        id_token_claims: refreshedClaims ?? null,
        new_id_token: Boolean(refreshed.id_token) && refreshed.id_token !== tokens.id_token,
        new_access_token: refreshed.access_token !== tokens.access_token,
        refresh_token_rotated: Boolean(refreshed.refresh_token) && refreshed.refresh_token !== tokens.refresh_token,
        userinfo: userinfoAfterRefresh,
      },
    };
  } catch (e) {
    return { ok: false, step, error: describe(e) };
  }
}

let done = false;
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, redirectUri);
  if (req.method !== 'GET' || url.pathname !== '/callback' || done) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not here');
    return;
  }
  done = true;
  const result = await signIn(url);
  say(result);
  if (!result.ok) process.exitCode = 1;
  const [status, words] = result.ok ? [200, 'OK'] : [500, 'Failed'];
  const page = `<!doctype html><html lang="en"><title>${words}</title><h1>${words}</h1>`
    + `<p id="result">${result.ok ? 'signed in' : `${result.step}: ${result.error?.message ?? ''}`.replace(/[<&]/g, '')}</p>`;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', connection: 'close' });
  res.end(page, () => {
    server.close();
    server.closeAllConnections();
  });
});

const timeout = Number(process.env.AUTHD_RP_TIMEOUT ?? 120);
setTimeout(() => {
  fail('waiting', new Error(`no callback within ${timeout} s`));
  process.exit();
}, timeout * 1000).unref();

server.on('error', (e) => {
  fail('listen', e);
  process.exit();
});
server.listen(Number(port), '127.0.0.1', () => say({ authorization_url: authorizationUrl.href }));
