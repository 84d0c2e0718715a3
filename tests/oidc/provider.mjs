// A real OpenID Connect provider (node-oidc-provider, OpenID certified) for authd's tests.
// Usage: node provider.mjs <port> <client_id> <client_secret> <redirect_uri> [RS256|EdDSA]
// (how the client's ID tokens are signed; RS256 by default)
// The account that signs in next, or a denial, is set with POST /test/next {sub, email,
// email_verified, name, auth_time} or {deny: true}; interactions (login, consent) finish by
// themselves. An auth_time (seconds) stands for a login that asked nothing: the ID token says the
// user authenticated then.
import http from 'node:http';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const [port, clientId, clientSecret, redirectUri, idTokenAlg = 'RS256'] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const accounts = new Map();
let next = { sub: 'nobody' };
let deny = false;

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'test-rs256', use: 'sig', alg: 'RS256' };
const keys = [jwk];
if (idTokenAlg === 'EdDSA') {
  const ed = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  keys.push({ ...(await exportJWK(ed.privateKey)), kid: 'test-eddsa', use: 'sig', alg: 'EdDSA' });
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: idTokenAlg,
    // Every ID token says when the user authenticated, as some providers' always do.
    require_auth_time: true,
  }],
  jwks: { keys },
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'email', 'profile'],
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['authd-test-cookie-key'] },
  async findAccount(ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return { accountId: sub, async claims() { return { ...account }; } };
  },
});

async function readJson(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return JSON.parse(body || '{}');
}

const handle = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'POST' && req.url === '/test/next') {
      const body = await readJson(req);
      deny = Boolean(body.deny);
      if (!deny) {
        next = body;
        accounts.set(body.sub, body);
      }
      res.writeHead(204).end();
      return;
    }
    if (req.url.startsWith('/interaction/')) {
      const details = await provider.interactionDetails(req, res);
      if (deny) {
        await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user said no' }, { mergeWithLastSubmission: false });
      } else if (details.prompt.name === 'login') {
        const login = { accountId: next.sub, ...(next.auth_time ? { ts: next.auth_time } : {}) };
        await provider.interactionFinished(req, res, { login }, { mergeWithLastSubmission: false });
      } else {
        const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
        grant.addOIDCScope(details.params.scope);
        const grantId = await grant.save();
        await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      }
      return;
    }
    handle(req, res);
  } catch (e) {
    res.writeHead(500).end(String(e));
  }
});
server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
