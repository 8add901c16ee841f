#!/bin/sh
# make bench, fleet mode (oauth_shared_store): what PostgreSQL behind the
# node's LMDB cache costs, beside a single node, measured in the same run.
#
# A throw-away PostgreSQL, a backend (upstream and token endpoint), a
# single node S (no oauth_shared_store) and two fleet nodes A and B, one
# worker each.  S and A get the same N connections from the fixture; A's
# are put into PostgreSQL with `ngx-oauth --shared restore` before A
# starts, so A's cache is warm and B's is cold.  Printed:
#   - oauth_token with a warm cache on A and on S: the front worker's CPU
#     per request, as a ratio to a static header on the same node, median
#     over interleaved rounds (the goal: the same ratio, within 1%);
#   - a cold miss on B (the record fetched from PostgreSQL) against a hit;
#   - completed connect flows per second on S, and on A and B at once.
#
#   BENCH_SECONDS (3), BENCH_ROUNDS (5), BENCH_CONNS (32),
#   BENCH_FLEET_CONNS stored connections (10000), BENCH_MISSES (200)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
module="$top/build/ngx_http_oauth_module.so"
fixture="$top/build/ngx_oauth_fixture"
cli="$top/build/ngx-oauth"
nginx=${NGINX_BIN:-/usr/sbin/nginx}
seconds=${BENCH_SECONDS:-3}
rounds=${BENCH_ROUNDS:-5}
conns=${BENCH_CONNS:-32}
n=${BENCH_FLEET_CONNS:-10000}
misses=${BENCH_MISSES:-200}
token=bench-token-0123456789abcdef

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -r | head -n 1)
[ -n "$pgbin" ] && [ -x "$pgbin/initdb" ] || {
    echo "bench fleet: needs PostgreSQL (apt-get install postgresql)"
    exit 1
}
for f in "$module" "$fixture" "$cli"; do
    [ -f "$f" ] || { echo "bench fleet: build first: make all fixture"; exit 1; }
done
command -v wrk >/dev/null || { echo "bench fleet: needs wrk"; exit 1; }

dir=$(mktemp -d /tmp/ngx-oauth-fleet.XXXXXX)
chmod 755 "$dir"
as=
[ "$(id -u)" = 0 ] && as="runuser -u postgres --"
user=
[ "$(id -u)" = 0 ] && user="user root;"
pgport=18490
back=18491
port_s=18492
port_a=18493
port_b=18494

stop() {
    for p in "$dir"/*/nginx.pid; do
        [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
    done
    [ -f "$dir/pg/postmaster.pid" ] && $as "$pgbin/pg_ctl" -D "$dir/pg" \
        -m immediate -w stop >/dev/null 2>&1
    sleep 0.3
}

trap 'stop; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM

mkdir "$dir/pg"
[ -n "$as" ] && chown postgres:postgres "$dir/pg"
$as "$pgbin/initdb" -D "$dir/pg" -A trust -U oauth --no-sync >/dev/null
$as "$pgbin/pg_ctl" -D "$dir/pg" -o "-p $pgport -k $dir/pg \
    -c listen_addresses=127.0.0.1" -l "$dir/pg/log" -w start >/dev/null
"$pgbin/createdb" -h 127.0.0.1 -p $pgport -U oauth fleet
url="postgresql://oauth@127.0.0.1:$pgport/fleet"

umask 077
printf 'b1:%s\n' "$(head -c 32 /dev/urandom | base64)" > "$dir/keys"
umask 022

mkdir -p "$dir/back/logs"
cat > "$dir/back/nginx.conf" <<CONF
$user
worker_processes 1;
pid $dir/back/nginx.pid;
error_log $dir/back/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$back backlog=4096;
        location /upstream/ { return 200 "ok\n"; }
        location = /token {
            default_type application/json;
            return 200 '{"access_token":"$token","refresh_token":"rt","expires_in":86400,"sub":"acct"}';
        }
    }
}
CONF
"$nginx" -p "$dir/back" -c "$dir/back/nginx.conf"

# node NAME PORT SHARED: one worker, its own store
node() {
    name=$1
    port=$2
    shared=$3
    mkdir -p "$dir/$name/logs"
    cat > "$dir/$name/nginx.conf" <<CONF
load_module $module;
$user
worker_processes 1;
pid $dir/$name/nginx.pid;
error_log $dir/$name/logs/error.log info;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    oauth_store $dir/$name/oauth.mdb max_size=$(( (n / 1000 + 64) ))m;
    oauth_key_file $dir/keys;
    oauth_background_refresh off;
    $shared
    oauth_provider p {
        client_id c;
        client_secret s;
        redirect_uri http://127.0.0.1:$port/cb;
        authorization_url http://127.0.0.1:$port/authorize;
        token_url http://127.0.0.1:$back/token;
        account_id sub;
    }
    upstream api { server 127.0.0.1:$back; keepalive 64; }
    server {
        listen 127.0.0.1:$port backlog=4096;
        oauth_owner \$http_x_user;
        location = /start { oauth_start p; }
        location = /cb { oauth_callback; }
        location /static/ {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer $token";
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
    "$nginx" -p "$dir/$name" -c "$dir/$name/nginx.conf"
}

worker_of() {
    pid=$(cat "$dir/$1/nginx.pid")
    cat "/proc/$pid/task/$pid/children" | awk '{ print $1 }'
}

# with oauth_background_refresh off a worker connects on first use
ready() {
    curl -s -o /dev/null -H "X-User: u0" "http://127.0.0.1:$2/static/x"
    i=0
    until grep -q "cache checked" "$dir/$1/logs/error.log" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -gt 100 ] && { echo "bench fleet: $1 not connected"; exit 1; }
        sleep 0.1
    done
}

for s in S A; do
    mkdir -p "$dir/$s"
    "$fixture" --store "$dir/$s/oauth.mdb" --key-file "$dir/keys" \
        --max-size $(( (n / 1000 + 64) * 1024 * 1024 )) \
        fill u p acct "$token" "$n"
done

# B (empty) creates the schema; A's connections go into PostgreSQL before
# A starts, so that A's check of its cache by versions finds it current
node S $port_s ""
node B $port_b "oauth_shared_store $url;"
ready B $port_b
"$cli" --shared "$url" restore "$dir/A/oauth.mdb" >/dev/null
node A $port_a "oauth_shared_store $url;"
ready A $port_a
sleep 0.5

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

cat > "$dir/owners.lua" <<'LUA'
local n = tonumber(os.getenv("BENCH_OWNERS"))
math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
request = function()
    return wrk.format("GET", wrk.path,
                      { ["X-User"] = "u" .. math.random(0, n - 1) })
end
LUA

# run NODE PORT LOCATION: "requests cpu_ns"
run() {
    w=$(worker_of "$1")
    c0=$(awk '{ print $1 }' "/proc/$w/schedstat")
    out=$(BENCH_OWNERS=$n wrk -t1 -c"$conns" -d"${seconds}s" \
          -s "$dir/owners.lua" "http://127.0.0.1:$2/$3/x")
    c1=$(awk '{ print $1 }' "/proc/$w/schedstat")
    printf '%s\n' "$out" | awk -v cpu=$((c1 - c0)) \
        '/requests in/ { printf "%d %d\n", $1, cpu }'
}

# warm-up: A's cache answers every owner once
for l in "S $port_s static" "S $port_s oauth" "A $port_a static" \
         "A $port_a oauth"; do
    set -- $l
    BENCH_OWNERS=$n wrk -t1 -c"$conns" -d1s -s "$dir/owners.lua" \
        "http://127.0.0.1:$2/$3/x" >/dev/null
done

: > "$dir/runs"
r=1
while [ "$r" -le "$rounds" ]; do
    for l in $(printf '%s\n' S:$port_s:static S:$port_s:oauth \
               A:$port_a:static A:$port_a:oauth | shuf); do
        set -- $(echo "$l" | tr : ' ')
        echo "$1 $3 $r $(run "$1" "$2" "$3")" >> "$dir/runs"
    done
    r=$((r + 1))
done

# cold misses on B (owners it never saw), then the same owners again (hits)
miss() {
    i=0
    while [ "$i" -lt "$misses" ]; do
        curl -s -o /dev/null -w '%{time_total}\n' -H "X-User: u$i" \
            "http://127.0.0.1:$port_b/oauth/x"
        i=$((i + 1))
    done | sort -n | awk '{ a[NR] = $1 * 1e6 }
        END { printf "%.0f %.0f", a[int(NR / 2) + 1], a[int(NR * 0.99)] }'
}
cold=$(miss)
hot=$(miss)
b_bad=$(curl -s -o /dev/null -w '%{http_code}' -H "X-User: u0" \
        "http://127.0.0.1:$port_b/oauth/x")

# connect flows per second: S alone, then A and B at once
flows() {
    wrk -t1 -c8 -d"${seconds}s" -s "$top/bench/flows.lua" \
        "http://127.0.0.1:$1/start" | awk '/^flows / { printf "%.0f", $2 / $3 }'
}
flows_s=$(flows $port_s)
flows "$port_a" > "$dir/flows-a" &
flows "$port_b" > "$dir/flows-b"
wait
flows_a=$(cat "$dir/flows-a")
flows_b=$(cat "$dir/flows-b")

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "ngx_oauth_module bench, fleet mode: $(nproc) cores," \
     "$(date -u '+%Y-%m-%d %H:%M UTC'), $n connections, $rounds rounds of" \
     "${seconds}s, wrk -c$conns, one worker per node"
echo "load average before: $load_before; after: $load_after"
awk '
    function median(a, k,    i, j, t) {
        for (i = 2; i <= k; i++) {
            t = a[i]
            for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
            a[j + 1] = t
        }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    { us[$1, $2, $3] = $5 / $4 / 1000; if ($3 > rounds) rounds = $3 }
    END {
        for (k = 1; k <= 2; k++) {
            node = k == 1 ? "S" : "A"
            for (r = 1; r <= rounds; r++) {
                a[r] = us[node, "oauth", r]
                c[r] = us[node, "static", r] / us[node, "oauth", r]
            }
            ratio[node] = median(c, rounds)
            printf "%-28s cpu %6.1f µs/req, static/oauth_token ratio %.3f\n",
                (node == "S" ? "single node, warm" : "fleet node A, warm cache"),
                median(a, rounds), ratio[node]
        }
        printf "fleet ratio / single-node ratio: %.3f\n", ratio["A"] / ratio["S"]

        # the same quotient in each round (its four runs back to back, in
        # a shuffled order): a drift of the load between rounds cancels
        # out; the spread (median() sorted q) shows the noise left
        for (r = 1; r <= rounds; r++) {
            q[r] = (us["A", "static", r] / us["A", "oauth", r]) \
                   / (us["S", "static", r] / us["S", "oauth", r])
        }
        m = median(q, rounds)
        printf "per round, fleet ratio / single-node ratio: median %.3f, " \
               "from %.3f to %.3f\n", m, q[1], q[rounds]
    }' "$dir/runs"
set -- $cold
echo "cold miss on B (fetched from PostgreSQL): median $1 µs, p99 $2 µs" \
     "over $misses owners"
set -- $hot
echo "the same owners again (cache hits on B):  median $1 µs, p99 $2 µs" \
     "(status $b_bad)"
echo "connect flows per second: single node $flows_s; fleet A $flows_a +" \
     "B $flows_b = $((flows_a + flows_b)) (both at once, one PostgreSQL)"
