#!/bin/sh
# End-to-end test: headless Chromium (Debian's, driven by playwright-core)
# connects an account through nginx + ngx_http_oauth_module against a real
# OpenID Connect provider (oidc-provider on loopback), then uses and
# refreshes the token through proxied requests.
#
#   sh t/e2e/run.sh          (make test-e2e: builds the module first)
#
# Environment: NGINX_BIN (default /usr/sbin/nginx), MODULE (default
# build/ngx_http_oauth_module.so), E2E_KEEP=1 keeps the temporary directory
# (it is always kept on failure), E2E_AT_TTL access token lifetime (s),
# E2E_BACKGROUND_REFRESH=on leaves nginx's background refresher on (the
# refresh check then keeps its window clear of the refresher's looks).
#
# Prints "ok - name" / "not ok - name" per check and closes with
# "N passed, N failed"; exits non-zero on any failure.

set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
E2E=$ROOT/t/e2e
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${MODULE:-$ROOT/build/ngx_http_oauth_module.so}
CHROMIUM=/usr/bin/chromium
AT_TTL=${E2E_AT_TTL:-5}

say() { printf '%s\n' "e2e: $*"; }
die() { printf '%s\n' "e2e: $*" >&2; printf '%s\n' "0 passed, 1 failed"; exit 1; }

# --- what the test needs from Debian -------------------------------------

missing=
[ -x "$CHROMIUM" ] || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        say "installing$missing (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        # shellcheck disable=SC2086
        apt-get install -y -qq $missing >/dev/null \
            || die "apt-get install$missing failed"
    else
        die "missing$missing: run as root: apt-get update && apt-get install -y$missing"
    fi
fi

node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
    || die "Node.js >= 20 is needed (found $(node --version))"

[ -x "$NGINX_BIN" ] || die "no $NGINX_BIN: apt-get install -y nginx"
[ -f "$MODULE" ] || die "no $MODULE: run make module first"

# --- npm packages, into t/e2e/node_modules (reinstalled when the lock changes)

if ! cmp -s "$E2E/package-lock.json" "$E2E/node_modules/.e2e-lock" 2>/dev/null
then
    say "npm ci in t/e2e"
    (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error \
        >"${TMPDIR:-/tmp}/ngx-oauth-e2e-npm.log" 2>&1) || {
        grep -v 'Unknown user config' "${TMPDIR:-/tmp}/ngx-oauth-e2e-npm.log" >&2
        die "npm ci failed"
    }
    cp "$E2E/package-lock.json" "$E2E/node_modules/.e2e-lock"
fi

# --- a temporary directory for everything the run makes ------------------

T=$(mktemp -d "${TMPDIR:-/tmp}/ngx-oauth-e2e.XXXXXX")
chmod 700 "$T"
IDP_PID=
NGINX_PID=
STATUS=1

stop_pid() {    # pid, name: TERM, wait up to 10 s, then KILL
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    n=0
    while kill -0 "$1" 2>/dev/null && [ $n -lt 100 ]; do
        sleep 0.1; n=$((n + 1))
    done
    if kill -0 "$1" 2>/dev/null; then
        say "$2 ($1) did not stop: KILL"
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

cleanup() {
    trap - EXIT INT TERM
    stop_pid "$NGINX_PID" nginx
    stop_pid "$IDP_PID" idp
    if [ "$STATUS" = 0 ] && [ "${E2E_KEEP:-0}" != 1 ]; then
        rm -rf "$T"
    else
        say "kept $T (logs, nginx.conf, screenshots)"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

RESULTS=$T/results
: >"$RESULTS"
check() {       # name, then a command: records ok / not ok
    name=$1; shift
    if "$@"; then
        printf 'ok - %s\n' "$name" | tee -a "$RESULTS"
    else
        printf 'not ok - %s\n' "$name" | tee -a "$RESULTS"
    fi
}

finish() {
    pass=$(grep -c '^ok - ' "$RESULTS" || true)
    fail=$(grep -c '^not ok - ' "$RESULTS" || true)
    [ "$pass" -gt 0 ] || fail=$((fail + 1))
    [ "$fail" = 0 ] && STATUS=0
    printf '%s passed, %s failed\n' "$pass" "$fail"
    exit "$STATUS"
}

bail() {        # a step the rest depends on failed: show why and stop
    printf 'not ok - %s\n' "$1" | tee -a "$RESULTS"
    shift
    for f in "$@"; do
        [ -f "$f" ] && { say "--- $f"; tail -n 30 "$f" | grep -v 'Unknown user config' || true; }
    done
    finish
}

# free ports on loopback, asked of the kernel
set -- $(node -e '
const net = require("net");
const one = () => new Promise((ok) => { const s = net.createServer();
  s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); }); });
(async () => { const ports = new Set();
  while (ports.size < 4) { ports.add(await one()); }
  console.log([...ports].join(" ")); })();')
IDP_PORT=$1
NGINX_PORT=$2
APP_PORT=$3
OTHER_PORT=$4
IDP=http://127.0.0.1:$IDP_PORT
ORIGIN=http://127.0.0.1:$NGINX_PORT
# a front-end on another origin that oauth_allowed_origins names, and one
# that it does not: the CORS checks run from pages served there
APP_ORIGIN=http://127.0.0.1:$APP_PORT
OTHER_ORIGIN=http://127.0.0.1:$OTHER_PORT
CLIENT_ID=e2e-client
CLIENT_SECRET=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')

# the keyring: one active key, 32 random bytes
(umask 077 && printf 'k1:%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" \
    >"$T/keyring")
chmod 600 "$T/keyring"

# --- the authorization server --------------------------------------------

: >"$T/idp.log"
IDP_PORT=$IDP_PORT IDP_CLIENT_ID=$CLIENT_ID IDP_CLIENT_SECRET=$CLIENT_SECRET \
IDP_REDIRECT_URI=$ORIGIN/oauth/callback IDP_AT_TTL=$AT_TTL IDP_LOG=$T/idp.log \
    node "$E2E/idp.js" >"$T/idp.out" 2>&1 &
IDP_PID=$!

wait_for() {    # pid, file, pattern, seconds
    n=0
    while [ $n -lt $(($4 * 10)) ]; do
        grep -q "$3" "$2" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1; n=$((n + 1))
    done
    return 1
}

wait_for "$IDP_PID" "$T/idp.out" "idp listening" 30 \
    || bail "authorization server starts" "$T/idp.out"
printf 'ok - authorization server starts on %s\n' "$IDP" | tee -a "$RESULTS"

# --- nginx ---------------------------------------------------------------

mkdir -p "$T/html" "$T/tmp"
if [ "$(id -u)" = 0 ]; then USER_LINE="user root;"; else USER_LINE=; fi

write_conf() {  # $1: the oauth_background_refresh line, or nothing
cat >"$T/nginx.conf" <<EOF
load_module $MODULE;

daemon off;
master_process on;
worker_processes 2;
$USER_LINE
pid $T/nginx.pid;
error_log $T/error.log info;

events {
    worker_connections 256;
}

http {
    log_format e2e '\$remote_addr [\$time_local] "\$request" \$status pid=\$pid';
    access_log $T/access.log e2e;
    client_body_temp_path $T/tmp/client_body;
    proxy_temp_path $T/tmp/proxy;
    fastcgi_temp_path $T/tmp/fastcgi;
    uwsgi_temp_path $T/tmp/uwsgi;
    scgi_temp_path $T/tmp/scgi;
    types { text/html html; }
    default_type text/plain;

    oauth_store $T/oauth.mdb max_size=64m;
    oauth_key_file $T/keyring;
    oauth_audit_log $T/audit.log;
    oauth_allowed_origins $APP_ORIGIN;
    $1

    oauth_provider idp {
        client_id $CLIENT_ID;
        client_secret $CLIENT_SECRET;
        redirect_uri $ORIGIN/oauth/callback;
        authorization_url $IDP/auth;
        token_url $IDP/token;
        userinfo_url $IDP/me;
        revocation_url $IDP/token/revocation;
        issuer $IDP;
        account_id sub;
        account_name email;
        scope openid offline_access email;
        token_auth basic;
        authorization_param prompt consent;
    }

    server {
        # reuseport: new connections spread over both workers
        listen 127.0.0.1:$NGINX_PORT reuseport;
        server_name localhost;
        root $T/html;
        index index.html;

        oauth_owner \$cookie_user;

        location / {
            try_files \$uri \$uri.html \$uri/ =404;
        }

        location /connect {
            oauth_start idp;
        }

        location /oauth/callback {
            oauth_callback;
        }

        location /oauth/api/ {
            oauth_api;
        }

        location /api/ {
            # one connection per call, so concurrent calls meet in
            # different workers
            keepalive_timeout 0;
            oauth_token idp;
            proxy_pass $IDP/me;
        }
    }

    # the product's front-end on its own origin, and a stranger's
    server {
        listen 127.0.0.1:$APP_PORT;
        listen 127.0.0.1:$OTHER_PORT;
        root $T/app;
    }
}
EOF
}

cat >"$T/html/index.html" <<'EOF'
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>e2e home</title></head>
<body><h1>ngx_oauth_module e2e</h1><p><a href="/connect?return_to=/done">Connect</a></p></body></html>
EOF

cat >"$T/html/done.html" <<'EOF'
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>e2e done</title></head>
<body><h1>Back from the provider</h1><pre id="q"></pre>
<script>document.getElementById('q').textContent = location.search;</script></body></html>
EOF

cat >"$T/html/popup.html" <<'EOF'
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>e2e popup opener</title></head>
<body><button id="connect">Connect in a popup</button><pre id="result"></pre>
<script>
window.oauthResults = [];
window.addEventListener('message', function (e) {
  window.oauthResults.push({ origin: e.origin, data: e.data });
  document.getElementById('result').textContent = JSON.stringify(e.data);
});
document.getElementById('connect').addEventListener('click', function () {
  window.open('/connect?mode=popup&return_to=/', 'oauth', 'width=520,height=640');
});
</script></body></html>
EOF

mkdir -p "$T/app"
cat >"$T/app/index.html" <<'EOF'
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>e2e front-end</title></head>
<body><h1>A front-end on another origin</h1></body></html>
EOF
cp "$T/html/done.html" "$T/app/done.html"

nginx_t() {
    "$NGINX_BIN" -t -q -p "$T" -e "$T/error.log" -c "$T/nginx.conf" \
        >"$T/nginx-t.out" 2>&1
}

# The test counts refresh grants, so only requests should refresh:
# oauth_background_refresh off.  Should nginx -t refuse or crash on it, that
# is a failure of its own, and the run goes on with the default (on), the
# browser script then keeping its refresh window clear of the background
# refresher's looks (each worker: 0.5-1.5 s after start, then every 30 s).
BG_REFRESH=${E2E_BACKGROUND_REFRESH:-off}
if [ "$BG_REFRESH" = on ]; then
    write_conf "# oauth_background_refresh on; (the default; E2E_BACKGROUND_REFRESH=on)"
    nginx_t || bail "nginx -t accepts the configuration" "$T/nginx-t.out" "$T/error.log"
    printf 'ok - nginx -t accepts the configuration (background refresher on)\n' \
        | tee -a "$RESULTS"
elif write_conf "oauth_background_refresh off;" && nginx_t; then
    printf 'ok - nginx -t accepts the configuration (oauth_background_refresh off)\n' \
        | tee -a "$RESULTS"
else
    rc=$?
    printf 'not ok - nginx -t accepts the configuration (oauth_background_refresh off)\n' \
        | tee -a "$RESULTS"
    [ "$rc" -gt 128 ] && printf '#   nginx -t died of signal %s\n' $((rc - 128))
    sed 's/^/#   /' "$T/nginx-t.out" | head -n 10
    BG_REFRESH=on
    write_conf "# oauth_background_refresh off; (nginx -t failed on it)"
    if nginx_t; then
        printf 'ok - nginx -t accepts the configuration without it\n' | tee -a "$RESULTS"
    else
        bail "nginx -t accepts the configuration without it" "$T/nginx-t.out" "$T/error.log"
    fi
fi

NGINX_T0=$(date +%s%3N)
"$NGINX_BIN" -p "$T" -e "$T/error.log" -c "$T/nginx.conf" \
    >"$T/nginx.out" 2>&1 &
NGINX_PID=$!

node -e '
const url = process.argv[1], end = Date.now() + 15000;
(async function poll() {
  try { const r = await fetch(url); if (r.status === 200) process.exit(0); } catch (e) {}
  if (Date.now() > end) process.exit(1);
  setTimeout(poll, 100);
})();' "$ORIGIN/" && kill -0 "$NGINX_PID" 2>/dev/null \
    || bail "nginx starts" "$T/nginx.out" "$T/error.log"
printf 'ok - nginx starts on %s\n' "$ORIGIN" | tee -a "$RESULTS"

# --- the browser ---------------------------------------------------------

{
    E2E_ORIGIN=$ORIGIN E2E_IDP=$IDP E2E_TMP=$T E2E_IDP_LOG=$T/idp.log \
    E2E_APP_ORIGIN=$APP_ORIGIN E2E_OTHER_ORIGIN=$OTHER_ORIGIN \
    E2E_AUDIT_LOG=$T/audit.log E2E_AT_TTL=$AT_TTL E2E_CHROMIUM=$CHROMIUM \
    E2E_BG_REFRESH=$BG_REFRESH E2E_NGINX_T0=$NGINX_T0 \
        timeout -k 10 300 node "$E2E/browser.js" 2>"$T/browser.err" \
        && echo 0 >"$T/browser.rc" || echo $? >"$T/browser.rc"
} | tee "$T/browser.out"
cat "$T/browser.out" >>"$RESULTS"
if [ -s "$T/browser.err" ]; then
    grep -v '^[[:space:]]*$' "$T/browser.err" | sed 's/^/# /' | head -n 40
fi
rc=$(cat "$T/browser.rc" 2>/dev/null || echo 1)
if [ "$rc" != 0 ] && ! grep -q '^not ok - ' "$T/browser.out"; then
    printf 'not ok - the browser script ends well (exit %s)\n' "$rc" | tee -a "$RESULTS"
fi

# --- after the browser: nginx stops cleanly, nothing is left behind -------

stop_pid "$NGINX_PID" nginx
NGINX_PID=
stop_pid "$IDP_PID" idp
IDP_PID=

no_bad_log_lines() {
    ! grep -E '\[(alert|crit|emerg)\]|exited on signal|AddressSanitizer' \
        "$T/error.log"
}
check "nginx error.log has no alert/crit/emerg or crashed worker" no_bad_log_lines

no_secret_logged() {
    key=$(cut -d: -f2 "$T/keyring")
    ! grep -F -l -e "$CLIENT_SECRET" -e "$key" \
        "$T/error.log" "$T/access.log" "$T/audit.log" "$T/nginx.out" 2>/dev/null
}
check "no client secret or key in nginx's logs" no_secret_logged

no_leftover() {
    # any process still running from this run (nginx, idp, chromium's
    # profile lives under $T)
    left=$(ps -eo pid=,args= | grep -F "$T" | grep -v -e grep -e ' ps ' || true)
    [ -z "$left" ] || { printf '%s\n' "$left" | sed 's/^/# left: /'; return 1; }
}
check "no process left running" no_leftover

finish
