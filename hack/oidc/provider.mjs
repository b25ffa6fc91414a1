// The OpenID provider for the gate's tests and for `make run`: the OpenID-certified
// `oidc-provider` package, configured to behave like Forgejo, the provider testers really use:
//   - the ID token carries `sub` only, a numeric-looking account id (Forgejo's user id);
//   - `preferred_username` and `email` come only from the userinfo endpoint;
//   - scopes `openid profile email`; authorization code flow with PKCE (S256);
//   - one confidential client for all gates (client_secret_basic).
//
// Environment (all optional):
//   OIDC_PORT           port on 127.0.0.1 (default 0 = any free port)
//   OIDC_CLIENT_ID      client id for the gates (default "gate")
//   OIDC_CLIENT_SECRET  its secret (default "gate-dev-secret")
//   OIDC_ISSUER_SLASH   "1" to publish the issuer with a trailing slash, as Forgejo does
//
// Once listening it prints one line on stdout:  OIDC_READY issuer=http://127.0.0.1:PORT
//
// Test accounts (login / password / account id):
//   admin / admin-password / 1000   the administrator
//   alice / alice-password / 1001   a tester
//   bob   / bob-password   / 1002   an account no gate allows by default
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { parse as parseQuery } from 'node:querystring';
import Provider from 'oidc-provider';

const ACCOUNTS = {
  1000: { login: 'admin', password: 'admin-password', email: 'admin@example.test', name: 'The Administrator' },
  1001: { login: 'alice', password: 'alice-password', email: 'alice@example.test', name: 'Alice Tester' },
  1002: { login: 'bob', password: 'bob-password', email: 'bob@example.test', name: 'Bob Outsider' },
};

const port = Number(process.env.OIDC_PORT ?? 0);
const clientId = process.env.OIDC_CLIENT_ID ?? 'gate';
const clientSecret = process.env.OIDC_CLIENT_SECRET ?? 'gate-dev-secret';
const issuerSlash = process.env.OIDC_ISSUER_SLASH === '1';

function findByLogin(login) {
  const wanted = String(login ?? '').trim().toLowerCase();
  const id = Object.keys(ACCOUNTS).find((k) => ACCOUNTS[k].login === wanted);
  return id === undefined ? undefined : { id, ...ACCOUNTS[id] };
}

// Every tester's gate has its own URL (NAME.<gateway domain>, or an ephemeral port in tests),
// so one client cannot list them all up front, and Forgejo is configured the same way in
// practice (one OAuth2 application per grid, redirect URIs managed by the operator). Here the
// gates' client accepts a callback on any *.localhost host or 127.x address, over http or https,
// and only at the gate's callback path. Any other client keeps the strict exact-match rule.
function gateRedirectAllowed(value) {
  let url;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (url.username || url.password || url.hash) return false;
  const host = url.hostname;
  const local = host === 'localhost' || host.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(host);
  return local && url.pathname === '/oauth2/callback';
}

const server = http.createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const actualPort = server.address().port;
const issuer = `http://127.0.0.1:${actualPort}${issuerSlash ? '/' : ''}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: ['http://gate.localhost/oauth2/callback'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'profile', 'email'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
  },
  // An access token is always issued, so the profile and email claims go to userinfo only:
  // the ID token carries `sub` alone, as with Forgejo.
  conformIdTokenClaims: true,
  pkce: { methods: ['S256'], required: () => true },
  features: { devInteractions: { enabled: false } },
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: account.login,
          name: account.name,
          email: account.email,
          email_verified: true,
        };
      },
    };
  },
  // The gates are first-party: no consent screen, the grant covers the three scopes.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email');
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', `<p>${escape(out.error)}: ${escape(out.error_description ?? '')}</p>`);
  },
});

const originalAllowed = provider.Client.prototype.redirectUriAllowed;
provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  if (this.clientId === clientId && gateRedirectAllowed(value)) return true;
  return originalAllowed.call(this, value);
};

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>`
    + `<body><h1>${escape(title)}</h1>${body}</body></html>`;
}

function loginForm(uid, clientName, error) {
  return page('Sign in', `${error ? `<p id="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
  <p>Sign in to continue to ${escape(clientName)}.</p>
  <label>Username <input id="login" name="login" type="text" required autofocus></label>
  <label>Password <input id="password" name="password" type="password" required></label>
  <button id="submit" type="submit">Sign in</button>
</form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return parseQuery(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

// The sign-in form: checks the password, then hands the account back to the provider.
async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page('Sign-in error', '<p>Unknown sign-in attempt.</p>'));
  if (details.prompt.name === 'login') {
    if (req.method === 'GET' && !action) return send(res, 200, loginForm(uid, details.params.client_id));
    if (req.method === 'POST' && action === 'login') {
      const form = await readForm(req);
      const account = findByLogin(form.login);
      if (!account || account.password !== form.password) {
        return send(res, 200, loginForm(uid, details.params.client_id, 'Wrong username or password.'));
      }
      return provider.interactionFinished(req, res, { login: { accountId: account.id } }, { mergeWithLastSubmission: false });
    }
  }
  if (details.prompt.name === 'consent') {
    const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    grant.addOIDCScope('openid profile email');
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return send(res, 400, page('Sign-in error', '<p>Unexpected sign-in step.</p>'));
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?\/?$/.exec(req.url.split('?')[0]);
  if (!match) return callback(req, res);
  interaction(req, res, match[1], match[2]).catch((err) => {
    send(res, 400, page('Sign-in error', `<p>${escape(err.message)}</p>`));
  });
});

const shutdown = () => server.close(() => process.exit(0));
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

console.log(`OIDC_READY issuer=${issuer}`);
