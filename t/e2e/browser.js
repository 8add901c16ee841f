// The browser half of the end-to-end test (see run.sh, which starts nginx and
// the authorization server and passes their addresses in the environment).
// Prints "ok - name" / "not ok - name" per check; exits 1 if any failed.

import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const ORIGIN = process.env.E2E_ORIGIN;          // nginx, http://127.0.0.1:N
const IDP = process.env.E2E_IDP;                // the authorization server
const TMP = process.env.E2E_TMP;
const IDP_LOG = process.env.E2E_IDP_LOG;
const AUDIT_LOG = process.env.E2E_AUDIT_LOG;
const AT_TTL = Number(process.env.E2E_AT_TTL || '5');
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const BG_REFRESH = process.env.E2E_BG_REFRESH === 'on';
const NGINX_T0 = Number(process.env.E2E_NGINX_T0 || '0');
const APP_ORIGIN = process.env.E2E_APP_ORIGIN;  // in oauth_allowed_origins
const OTHER_ORIGIN = process.env.E2E_OTHER_ORIGIN;  // not in it
const STEP = 20000;                             // ms for any one wait

let failed = 0;
let shots = 0;
const blocked = new Set();

class Failure extends Error {}

const ok = (name) => console.log(`ok - ${name}`);
const notOk = (name, why) => {
  failed++;
  console.log(`not ok - ${name}`);
  if (why) {
    for (const line of String(why).split('\n').slice(0, 12)) {
      console.log(`#   ${line}`);
    }
  }
};

async function screenshot(page, label) {
  if (!page || page.isClosed()) {
    return;
  }
  const file = join(TMP, `failure-${++shots}-${label}.png`);
  try {
    await page.screenshot({ path: file, fullPage: true });
    console.log(`#   screenshot: ${file} (at ${page.url()})`);
  } catch (e) {
    console.log(`#   no screenshot: ${e.message}`);
  }
}

// one check: runs fn, which throws on failure; a failure takes a screenshot
async function check(name, page, fn) {
  try {
    await fn();
    ok(name);
    return true;
  } catch (e) {
    notOk(name, e instanceof Failure ? e.message : (e.stack || e));
    if (shots < 5) {
      await screenshot(page, name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40));
    }
    return false;
  }
}

function assert(cond, msg) {
  if (!cond) {
    throw new Failure(msg);
  }
}

function readLines(file) {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch (e) {
    if (e.code === 'ENOENT') {
      return [];
    }
    throw e;
  }
}

const idpLog = () => readLines(IDP_LOG);
const grants = (type) => idpLog().filter((r) => r.ev === 'token' && r.grant_type === type);

// drives the provider's dev pages (login, then consent) until the page
// leaves the provider; returns what it clicked
async function throughProvider(page) {
  const did = [];
  const deadline = Date.now() + STEP;
  for (;;) {
    assert(Date.now() < deadline, `stuck at the provider: ${page.url()}`);
    if (page.isClosed()) {
      return did;
    }
    let url;
    try {
      url = new URL(page.url());
    } catch {
      url = null;
    }
    if (url && url.origin !== IDP && url.protocol !== 'about:') {
      return did;
    }
    try {
      const login = page.locator('input[name="login"]');
      const consent = page.locator('button[type="submit"]', { hasText: 'Continue' });
      const before = page.url();
      const left = (u) => u.href !== before;
      if (await login.isVisible({ timeout: 200 }).catch(() => false)) {
        await login.fill('alice-sub');
        await page.locator('input[name="password"]').fill('any-password');
        await page.locator('button[type="submit"]', { hasText: 'Sign-in' }).click({ noWaitAfter: true });
        did.push('login');
        await page.waitForURL(left, { timeout: STEP, waitUntil: 'commit' }).catch(() => {});
      } else if (await consent.isVisible({ timeout: 200 }).catch(() => false)) {
        await consent.click({ noWaitAfter: true });
        did.push('consent');
        await page.waitForURL(left, { timeout: STEP, waitUntil: 'commit' }).catch(() => {});
      } else {
        await sleep(100);
      }
    } catch (e) {
      if (page.isClosed()) {
        return did;
      }
      throw e;
    }
  }
}

// With the background refresher on (E2E_BACKGROUND_REFRESH=on, or nginx -t
// refused "oauth_background_refresh off"), a window of `ms` that the refresher's
// looks stay out of: each worker looks 0.5-1.5 s after its start, then every
// 30-30.5 s.  Returns once now..now+ms is clear.
async function clearOfBackgroundRefresher(ms) {
  if (!BG_REFRESH || !NGINX_T0) {
    return;
  }
  for (;;) {
    const now = Date.now();
    const busy = [];
    for (let k = 0; k < 100; k++) {
      busy.push([NGINX_T0 + 300 + 30000 * k, NGINX_T0 + 2000 + 30500 * k]);
    }
    const hit = busy.find(([a, b]) => a < now + ms && b > now);
    if (!hit) {
      return;
    }
    console.log(`# background refresher on: waiting ${((hit[1] - now) / 1000).toFixed(1)} s for its look to pass`);
    await sleep(hit[1] - now + 200);
  }
}

async function api(page, n = 1) {
  return page.evaluate(async (count) => Promise.all(
    Array.from({ length: count }, async () => {
      const r = await fetch('/api/', { cache: 'no-store' });
      const text = await r.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      return { status: r.status, json, text: text.slice(0, 200) };
    }),
  ), n);
}

async function main() {
  const profile = mkdtempSync(join(TMP, 'chromium-profile-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic',
      '--no-proxy-server',
    ],
    viewport: { width: 1000, height: 800 },
  });
  context.setDefaultTimeout(STEP);
  context.setDefaultNavigationTimeout(STEP);

  // nothing leaves the machine (the provider's dev pages import a web font)
  await context.route((u) => u.hostname !== '127.0.0.1', (route) => {
    blocked.add(new URL(route.request().url()).host);
    return route.abort('blockedbyclient');
  });

  // the operator's own authentication, as a cookie mapped to the owner
  await context.addCookies([{ name: 'user', value: 'alice', url: `${ORIGIN}/` }]);

  const page = context.pages()[0] || await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));

  let flowCookie = null;
  page.on('response', async (r) => {
    if (r.url().startsWith(`${ORIGIN}/connect`)) {
      flowCookie = (await r.headerValue('set-cookie').catch(() => null)) || flowCookie;
    }
  });

  // --- 1. redirect mode: connect, log in, consent, land on /done ---------

  let connected = false;
  connected = await check('connect: /connect redirects to the provider, login and consent, back at /done', page, async () => {
    await page.goto(`${ORIGIN}/connect?return_to=/done`, { waitUntil: 'commit' });
    await page.waitForURL((u) => u.origin === IDP, { timeout: STEP, waitUntil: 'commit' });
    const did = await throughProvider(page);
    assert(did.includes('login') && did.includes('consent'), `provider pages seen: ${did}`);
    await page.waitForURL((u) => u.origin === ORIGIN && u.pathname === '/done', { timeout: STEP });
    const q = new URL(page.url()).searchParams;
    const want = { oauth_status: 'connected', oauth_provider: 'idp', oauth_account: 'alice-sub' };
    for (const [k, v] of Object.entries(want)) {
      assert(q.get(k) === v, `${k}=${q.get(k)} in ${page.url()}, want ${v}`);
    }
    assert(!q.has('oauth_error'), `oauth_error=${q.get('oauth_error')}`);
    assert(await page.title() === 'e2e done', `title ${await page.title()}`);
  });

  await check('the browser-binding cookie is __Host-, Secure, HttpOnly, SameSite=Lax (and was sent back over http://127.0.0.1)', page, async () => {
    assert(flowCookie, 'no Set-Cookie seen on /connect');
    assert(/^__Host-oauth_flow_/.test(flowCookie), `cookie: ${flowCookie.split('=')[0]}`);
    for (const attr of ['Secure', 'HttpOnly', 'SameSite=Lax']) {
      assert(flowCookie.includes(attr), `no ${attr} in the flow cookie`);
    }
    // the callback checks it: connected means Chromium stored and sent it
    assert(connected, 'the flow did not complete');
  });

  await check('provider saw PKCE S256, prompt=consent, the scopes; code exchanged with client_secret_basic and a verifier', page, async () => {
    const authz = idpLog().filter((r) => r.ev === 'authorization');
    assert(authz.length >= 1, 'no authorization request logged');
    const a = authz[0];
    assert(a.code_challenge_method === 'S256', `code_challenge_method ${a.code_challenge_method}`);
    assert(a.prompt === 'consent', `prompt ${a.prompt}`);
    assert(a.scope === 'openid offline_access email', `scope ${a.scope}`);
    const codes = grants('authorization_code');
    assert(codes.length === 1, `${codes.length} authorization_code grants: ${JSON.stringify(codes)}`);
    assert(codes[0].status === 200, `token endpoint said ${codes[0].status} ${codes[0].error}`);
    assert(codes[0].auth === 'Basic', `client authentication ${codes[0].auth}`);
    assert(codes[0].pkce, 'no code_verifier sent');
    const ui = idpLog().filter((r) => r.ev === 'userinfo');
    assert(ui.length >= 1 && ui[0].status === 200 && ui[0].sub === 'alice-sub',
      `userinfo by the callback: ${JSON.stringify(ui[0])}`);
  });

  // --- 2. the token is injected into the proxied request ------------------

  await check('GET /api/ through nginx: the provider accepts the injected token (200, sub alice-sub)', page, async () => {
    const [r] = await api(page);
    assert(r.status === 200, `status ${r.status}: ${r.text}`);
    assert(r.json && r.json.sub === 'alice-sub', `body ${r.text}`);
    assert(r.json.email === 'alice@example.test', `email ${r.json.email}`);
  });

  await check('the browser\'s Cookie header does not reach upstream', page, async () => {
    const ui = idpLog().filter((r) => r.ev === 'userinfo');
    const last = ui[ui.length - 1];
    assert(last && last.cookie === false, `last userinfo request: ${JSON.stringify(last)}`);
  });

  await check('GET /api/ without an owner cookie: 401, nothing proxied', page, async () => {
    const before = idpLog().filter((r) => r.ev === 'userinfo').length;
    const r = await page.evaluate(async () => {
      const res = await fetch('/api/', { credentials: 'omit', cache: 'no-store' });
      return res.status;
    });
    assert(r === 401, `status ${r}`);
    assert(idpLog().filter((x) => x.ev === 'userinfo').length === before, 'a request reached the provider');
  });

  // --- 3. refresh once, for three concurrent requests ---------------------

  await check(`after the access token's ${AT_TTL} s: 3 concurrent /api/ calls all 200, exactly one refresh (rotated, never reused)`, page, async () => {
    await clearOfBackgroundRefresher((AT_TTL + 1.5) * 1000 + 5000);
    const before = grants('refresh_token').length;
    const revokedBefore = idpLog().filter((r) => r.ev === 'grant.revoked').length;
    await sleep((AT_TTL + 1.5) * 1000);
    const rs = await api(page, 3);
    const bad = rs.filter((r) => r.status !== 200 || !r.json || r.json.sub !== 'alice-sub');
    assert(bad.length === 0, `answers: ${JSON.stringify(rs.map((r) => [r.status, r.text]))}`);
    const refreshes = grants('refresh_token').slice(before);
    assert(refreshes.length === 1,
      `${refreshes.length} refresh_token grants in the window: ${JSON.stringify(refreshes)}`);
    assert(refreshes[0].status === 200, `refresh answered ${refreshes[0].status} ${refreshes[0].error}`);
    assert(refreshes[0].auth === 'Basic', `client authentication ${refreshes[0].auth}`);
    const pids = new Set(readFileSync(join(TMP, 'access.log'), 'utf8').split('\n')
      .filter((l) => l.includes('"GET /api/ ')).slice(-3).map((l) => l.split('pid=')[1]));
    console.log(`# the 3 calls were served by ${pids.size} worker(s)`);
    const revoked = idpLog().filter((r) => r.ev === 'grant.revoked').slice(revokedBefore);
    assert(revoked.length === 0, 'the provider revoked the grant (a refresh token was reused)');
    const failedGrants = idpLog().filter((r) => r.ev === 'token' && r.status !== 200);
    assert(failedGrants.length === 0, `failed token requests: ${JSON.stringify(failedGrants)}`);
  });

  await check('the refreshed token is used again without another refresh', page, async () => {
    const before = grants('refresh_token').length;
    const [r] = await api(page);
    assert(r.status === 200 && r.json && r.json.sub === 'alice-sub', `status ${r.status}: ${r.text}`);
    assert(grants('refresh_token').length === before, 'refreshed again');
  });

  await check('audit log: connected, and one refreshed per refresh grant', page, async () => {
    const audit = readLines(AUDIT_LOG);
    const ev = (name) => audit.filter((a) => a.event === name);
    assert(ev('connected').length >= 1, `events: ${audit.map((a) => a.event)}`);
    const c = ev('connected')[0];
    assert(c.owner === 'alice' && c.provider === 'idp' && c.account === 'alice-sub',
      `connected: ${JSON.stringify(c)}`);
    const okRefresh = grants('refresh_token').filter((g) => g.status === 200).length;
    assert(ev('refreshed').length === okRefresh,
      `${ev('refreshed').length} refreshed events, ${okRefresh} refresh grants`);
  });

  // --- 4. popup mode -------------------------------------------------------

  await check('popup: window.open(/connect?mode=popup), consent, opener gets {type:"oauth:result",status:"connected"}', page, async () => {
    await page.goto(`${ORIGIN}/popup.html`);
    const [popup] = await Promise.all([
      page.waitForEvent('popup', { timeout: STEP }),
      page.click('#connect'),
    ]);
    popup.on('console', (m) => consoleLines.push(`popup ${m.type()}: ${m.text()}`));
    await popup.waitForURL((u) => u.origin === IDP, { timeout: STEP, waitUntil: 'commit' });
    const did = await throughProvider(popup);
    assert(did.includes('consent'), `provider pages seen: ${did}`);
    await page.waitForFunction(() => window.oauthResults.length > 0, null, { timeout: STEP });
    const got = await page.evaluate(() => window.oauthResults);
    assert(got.length === 1, `${got.length} messages`);
    const { origin, data } = got[0];
    assert(origin === ORIGIN, `message from ${origin}`);
    assert(data && data.type === 'oauth:result', `type ${data && data.type}`);
    assert(data.status === 'connected', `status ${data.status} error ${data.error}`);
    assert(data.provider === 'idp' && data.account === 'alice-sub',
      `provider ${data.provider} account ${data.account}`);
    assert(data.error === null, `error ${data.error}`);
    if (!popup.isClosed()) {
      await popup.waitForEvent('close', { timeout: 5000 });
    }
  });

  await check('after the popup connect, /api/ still works for the same account', page, async () => {
    const [r] = await api(page);
    assert(r.status === 200 && r.json && r.json.sub === 'alice-sub', `status ${r.status}: ${r.text}`);
  });

  await corsChecks(context);

  if (blocked.size) {
    console.log(`# requests off loopback, blocked: ${[...blocked].join(' ')}`);
  }
  if (failed && consoleLines.length) {
    console.log('# browser console:');
    for (const l of consoleLines.slice(-20)) {
      console.log(`#   ${l}`);
    }
  }

}

// a fetch() to nginx made by a page of another origin, with the user's
// cookies: what the page could read, or the error the browser gave it
async function crossFetch(page, path, init = {}) {
  return page.evaluate(async ([url, opts]) => {
    try {
      const r = await fetch(url, { credentials: 'include', cache: 'no-store', ...opts });
      const text = await r.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      return { status: r.status, json, text: text.slice(0, 300) };
    } catch (e) {
      return { blocked: `${e.name}: ${e.message}` };
    }
  }, [`${ORIGIN}${path}`, init]);
}

const patchLabel = (label) => ({
  method: 'PATCH',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ label }),
});

// the connection's label as the owner's own page (same origin) reads it
async function labelNow(page) {
  const r = await page.evaluate(async () => {
    const res = await fetch('/oauth/api/connections/idp/alice-sub', { cache: 'no-store' });
    return { status: res.status, json: await res.json().catch(() => null) };
  });
  assert(r.status === 200 && r.json, `GET the connection: ${r.status}`);
  return r.json.label;
}

// oauth_api and a JSON start called from a front-end on another origin:
// Chromium's own CORS enforcement, not a header check, decides
async function corsChecks(ctx) {
  const app = await ctx.newPage();
  const other = await ctx.newPage();
  const home = ctx.pages()[0];

  await check('CORS: a front-end on an allowed origin reads GET oauth_api/connections with the user\'s cookie', app, async () => {
    await app.goto(`${APP_ORIGIN}/`);
    const r = await crossFetch(app, '/oauth/api/connections');
    assert(!r.blocked, `the browser blocked it: ${r.blocked}`);
    assert(r.status === 200 && Array.isArray(r.json), `status ${r.status}: ${r.text}`);
    assert(r.json.some((c) => c.provider === 'idp' && c.account === 'alice-sub'),
      `no idp connection in ${r.text}`);
  });

  await check('CORS: a preflighted PATCH from the allowed origin goes through and sets the label', app, async () => {
    const r = await crossFetch(app, '/oauth/api/connections/idp/alice-sub', patchLabel('from the app'));
    assert(!r.blocked, `the browser blocked it: ${r.blocked}`);
    assert(r.status === 200, `status ${r.status}: ${r.text}`);
    const label = await labelNow(home);
    assert(label === 'from the app', `label ${label}`);
  });

  await check('CORS: a page on another origin can neither read oauth_api nor PATCH through it (label unchanged)', other, async () => {
    await other.goto(`${OTHER_ORIGIN}/`);
    const r = await crossFetch(other, '/oauth/api/connections');
    assert(r.blocked, `the page read the API: status ${r.status}`);
    const w = await crossFetch(other, '/oauth/api/connections/idp/alice-sub', patchLabel('stranger'));
    assert(w.blocked, `the PATCH was not blocked: status ${w.status}`);
    const label = await labelNow(home);
    assert(label === 'from the app', `label ${label}`);
  });

  await check('CORS: a JSON start from the allowed origin; the user goes through the provider and lands on the front-end with oauth_status=connected', app, async () => {
    const back = `${APP_ORIGIN}/done`;
    const r = await crossFetch(app, `/connect?mode=json&return_to=${encodeURIComponent(back)}`);
    assert(!r.blocked, `the browser blocked it: ${r.blocked}`);
    assert(r.status === 200 && r.json && r.json.authorization_url, `status ${r.status}: ${r.text}`);
    assert(new URL(r.json.authorization_url).origin === IDP, `authorization_url ${r.json.authorization_url}`);
    await app.goto(r.json.authorization_url, { waitUntil: 'commit' });
    await throughProvider(app);
    await app.waitForURL((u) => u.origin === APP_ORIGIN && u.pathname === '/done', { timeout: STEP });
    const q = new URL(app.url()).searchParams;
    assert(q.get('oauth_status') === 'connected', `back at ${app.url()}`);
  });

  await check('CORS: a JSON start from another origin is not readable by that page', other, async () => {
    const r = await crossFetch(other, '/connect?mode=json&return_to=/done');
    assert(r.blocked, `the page read the start: status ${r.status} ${r.text}`);
  });

  await app.close();
  await other.close();
}

let context = null;
setTimeout(() => {
  notOk('the browser run ends within 240 s');
  process.exit(1);
}, 240000).unref();
try {
  await main();
} catch (e) {
  notOk('browser run', e.stack || e);
} finally {
  if (context) {
    await Promise.race([context.close().catch(() => {}), sleep(10000)]);
  }
}
process.exit(failed ? 1 : 0);
