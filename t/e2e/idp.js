// A real OpenID Connect authorization server (panva's oidc-provider) on
// loopback, for the end-to-end test.  Configured by the environment:
//
//   IDP_PORT           port on 127.0.0.1 (issuer http://127.0.0.1:IDP_PORT)
//   IDP_CLIENT_ID      the one client
//   IDP_CLIENT_SECRET  its secret (client_secret_basic at the token endpoint)
//   IDP_REDIRECT_URI   its one redirect URI (the nginx callback)
//   IDP_AT_TTL         access token lifetime in seconds (default 60)
//   IDP_LOG            JSON lines: one per token, userinfo and revocation
//                      request, and one per grant revoked (refresh token reuse)
//
// Prints "idp listening ISSUER" on stdout when it accepts connections.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const env = (name, dflt) => {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (dflt === undefined) {
      console.error(`idp: ${name} is not set`);
      process.exit(2);
    }
    return dflt;
  }
  return v;
};

const port = Number(env('IDP_PORT'));
const issuer = `http://127.0.0.1:${port}`;
const logFile = env('IDP_LOG');
const accessTtl = Number(env('IDP_AT_TTL', '60'));

const log = (rec) => {
  appendFileSync(logFile, `${JSON.stringify({ t: Date.now(), ...rec })}\n`);
};

// the one user; the dev login page takes "alice-sub" as the login
const ACCOUNTS = {
  'alice-sub': { sub: 'alice-sub', email: 'alice@example.test', email_verified: true },
};

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ format: 'jwk' });

const configuration = {
  clients: [{
    client_id: env('IDP_CLIENT_ID'),
    client_secret: env('IDP_CLIENT_SECRET'),
    redirect_uris: [env('IDP_REDIRECT_URI')],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [{ ...signingKey, use: 'sig', alg: 'RS256', kid: 'e2e' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'email'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // PKCE for every client, S256 only
  pkce: { required: () => true, methods: ['S256'] },
  features: {
    devInteractions: { enabled: true }, // login + consent pages
    userinfo: { enabled: true },
    revocation: { enabled: true },
  },
  // a refresh token for this client even without offline_access + consent
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  // every refresh spends the refresh token and issues a new one; a spent
  // one presented again revokes the whole grant
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 86400,
    RefreshToken: 86400,
  },
  async findAccount(ctx, id) {
    const claims = ACCOUNTS[id];
    if (!claims) {
      return undefined;
    }
    return { accountId: id, async claims() { return { ...claims }; } };
  },
  renderError(ctx, out, error) {
    log({ ev: 'error', path: ctx.path, error: out.error, description: out.error_description });
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>oops</title><h1>${out.error}</h1>`;
  },
};

const provider = new Provider(issuer, configuration);

// record what nginx asks of the provider, after the provider answered
provider.use(async (ctx, next) => {
  await next();
  const route = ctx.oidc?.route;
  if (route === 'token') {
    const p = ctx.oidc.params || {};
    log({
      ev: 'token',
      grant_type: p.grant_type ?? null,
      status: ctx.status,
      error: ctx.status >= 400 ? (ctx.body?.error ?? null) : null,
      auth: (ctx.get('authorization') || '').split(' ')[0] || null,
      pkce: typeof p.code_verifier === 'string' && p.code_verifier.length > 0,
    });
  } else if (route === 'userinfo') {
    log({
      ev: 'userinfo',
      status: ctx.status,
      sub: ctx.status === 200 ? (ctx.body?.sub ?? null) : null,
      cookie: ctx.get('cookie') !== '',
    });
  } else if (route === 'revocation') {
    log({ ev: 'revocation', status: ctx.status });
  } else if (route === 'authorization' && ctx.method === 'GET' && ctx.query.client_id) {
    log({
      ev: 'authorization',
      code_challenge_method: ctx.query.code_challenge_method ?? null,
      prompt: ctx.query.prompt ?? null,
      scope: ctx.query.scope ?? null,
    });
  }
});

provider.on('grant.revoked', (ctx, grantId) => log({ ev: 'grant.revoked', grantId }));
provider.on('server_error', (ctx, err) => log({ ev: 'server_error', error: String(err) }));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`idp listening ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
