#!/bin/sh
# make bench: what oauth_token costs on a proxied request.  One nginx, two
# locations proxying to the same local upstream: a baseline that sets a
# static Authorization header, and one where oauth_token looks the
# connection up in LMDB, opens the sealed token and injects it.  Prints
# requests per second of each and their ratio, measured in the same run.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
module="$top/build/ngx_http_oauth_module.so"
nginx=${NGINX_BIN:-/usr/sbin/nginx}
seconds=${BENCH_SECONDS:-5}
conns=${BENCH_CONNECTIONS:-32}

[ -f "$module" ] || { echo "bench: build the module first: make"; exit 1; }
command -v wrk >/dev/null || { echo "bench: needs wrk (apt-get install wrk)"; exit 1; }

dir=$(mktemp -d)
trap 'kill $(cat "$dir/nginx.pid" 2>/dev/null) 2>/dev/null; sleep 0.3; rm -rf "$dir"' EXIT
mkdir -p "$dir/logs"

umask 077
printf 'b1:%s\n' "$(head -c 32 /dev/urandom | base64)" > "$dir/keys"
umask 022

port=18480
user=
[ "$(id -u)" = 0 ] && user="user root;"

cat > "$dir/nginx.conf" <<CONF
load_module $module;
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    oauth_store $dir/oauth.mdb max_size=64m;
    oauth_key_file $dir/keys;
    oauth_background_refresh off;

    oauth_provider p {
        client_id c;
        client_secret s;
        redirect_uri http://127.0.0.1:$port/cb;
        authorization_url http://127.0.0.1:$port/authorize;
        token_url http://127.0.0.1:$port/token;
        account_id sub;
    }

    upstream api { server 127.0.0.1:$port; keepalive 64; }

    server {
        listen 127.0.0.1:$port;
        oauth_owner "bench-user";

        location = /start { oauth_start p; }
        location = /cb { oauth_callback; }
        location = /token {
            default_type application/json;
            return 200 '{"access_token":"bench-token-0123456789abcdef","expires_in":86400,"sub":"acct"}';
        }

        location /upstream/ { return 200 "ok\n"; }

        location /baseline/ {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer bench-token-0123456789abcdef";
            proxy_pass http://api/upstream/;
        }

        location /oauth/ {
            oauth_token p;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api/upstream/;
        }
    }
}
CONF

"$nginx" -p "$dir" -c "$dir/nginx.conf"
sleep 0.5

# connect one account the real way
jar="$dir/jar"
loc=$(curl -s -c "$jar" -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:$port/start")
state=$(printf '%s' "$loc" | sed 's/.*[?&]state=\([^&]*\).*/\1/')
curl -s -b "$jar" -o /dev/null "http://127.0.0.1:$port/cb?code=x&state=$state"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/oauth/x")" = 200 ] \
    || { echo "bench: the connection did not work"; exit 1; }

rps() {
    wrk -t1 -c"$conns" -d"${seconds}s" "http://127.0.0.1:$port/$1/x" \
        | awk '/Requests\/sec/ { print $2 }'
}

rps baseline >/dev/null      # warm up
base=$(rps baseline)
oauth=$(rps oauth)

echo "baseline (static header):   $base req/s"
echo "oauth_token (LMDB + AES):   $oauth req/s"
awk -v a="$oauth" -v b="$base" \
    'BEGIN { printf "ratio oauth_token/baseline: %.3f\n", a / b }'
