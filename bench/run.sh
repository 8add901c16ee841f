#!/bin/sh
# make bench: what oauth_token costs a proxied request, side by side with
# a static header and, when Debian's lua module is installed, with the
# usual alternatives, all measured in the same run.
#
# Two nginx instances with one worker each: the front under test, and a
# backend that plays the upstream (keepalive), the token service of the
# sidecar pattern and the provider's token endpoint (fast, and slow with
# echo_sleep).  Every request names a random owner (X-User) among the
# connections stored.  The front worker's CPU time comes from
# /proc/PID/schedstat (ns), so "µs/req" is the front worker's CPU only.
# Rounds are interleaved in a shuffled order; every figure is the median
# over rounds, and ratios are taken round by round: on a noisy shared
# machine read the ratios, not the absolute numbers.
#
#   BENCH_SECONDS   length of one measured run (3)
#   BENCH_ROUNDS    interleaved rounds (5)
#   BENCH_CONNS     wrk connections (32)
#   BENCH_BIG       connections of the largest store (1000000)
#   BENCH_RSS_REQS  requests between the two RSS readings (1000000)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
module="$top/build/ngx_http_oauth_module.so"
fixture="$top/build/ngx_oauth_fixture"
nginx=${NGINX_BIN:-/usr/sbin/nginx}
mods=/usr/lib/nginx/modules
seconds=${BENCH_SECONDS:-3}
rounds=${BENCH_ROUNDS:-5}
conns=${BENCH_CONNS:-32}
big=${BENCH_BIG:-1000000}
rss_reqs=${BENCH_RSS_REQS:-1000000}
token=bench-token-0123456789abcdef

for f in "$module" "$fixture"; do
    [ -f "$f" ] || { echo "bench: build first: make all fixture"; exit 1; }
done
command -v wrk >/dev/null || { echo "bench: needs wrk (make deps)"; exit 1; }

lua=
if [ -f "$mods/ngx_http_lua_module.so" ] && [ -f "$mods/ndk_http_module.so" ]
then
    lua=1
fi

echo_so=
[ -f "$mods/ngx_http_echo_module.so" ] && echo_so="$mods/ngx_http_echo_module.so"

# the slow provider answers after 3 s (echo_sleep); without the echo module
# the p99 figure below is measured against a fast one
slow_answer="return 200"
[ -n "$echo_so" ] && slow_answer="echo_sleep 3; echo"

dir=$(mktemp -d /tmp/ngx-oauth-bench.XXXXXX)

stop() {
    for p in "$dir"/*/nginx.pid; do
        [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
    done
    sleep 0.3
}

trap 'stop; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM

umask 077
printf 'b1:%s\n' "$(head -c 32 /dev/urandom | base64)" > "$dir/keys"
umask 022

front=18480
back=18481
user=
[ "$(id -u)" = 0 ] && user="user root;"

started=$(date +%s)


# --- the backend: upstream, sidecar token service, token endpoints -------

mkdir -p "$dir/back/logs"

cat > "$dir/back/nginx.conf" <<CONF
${echo_so:+load_module $echo_so;}
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
        location = /token-for {
            add_header X-Token "Bearer $token";
            return 200;
        }
        location = /token {
            default_type application/json;
            return 200 '{"access_token":"$token","refresh_token":"rt-fixed","expires_in":86400,"sub":"acct"}';
        }
        location = /slowtoken {
            default_type application/json;
            $slow_answer '{"access_token":"$token","refresh_token":"rt-fixed","expires_in":86400,"sub":"acct"}';
        }
    }
}
CONF

"$nginx" -p "$dir/back" -c "$dir/back/nginx.conf"


# --- the front: one worker, one store of N connections -----------------

# front_start N: fills a store with N connections (owners u0..uN-1) and
# 100 expired ones (slow0..slow99, refreshed by a slow provider), starts
# the front on it
front_start() {
    n=$1
    mkdir -p "$dir/front/logs"
    rm -f "$dir/front/oauth.mdb" "$dir/front/oauth.mdb-lock"

    size=$(( (n / 1000 + 64) * 1024 * 1024 ))
    t0=$(date +%s)
    "$fixture" --store "$dir/front/oauth.mdb" --key-file "$dir/keys" \
        --max-size "$size" fill u p acct "$token" "$n"
    "$fixture" --store "$dir/front/oauth.mdb" --key-file "$dir/keys" \
        --max-size "$size" fill slow s acct "$token" 100 -60
    fill_s=$(( $(date +%s) - t0 ))

    store_bytes=$(( $(mdb_stat -n -e "$dir/front/oauth.mdb" \
                      | awk '/Number of pages used/ { print $5 }') * 4096 ))

    lua_conf=
    lua_loc=
    if [ -n "$lua" ]; then
        lua_conf="
    lua_shared_dict tokens $(( n / 1000 + 16 ))m;
    init_by_lua_block {
        local d = ngx.shared.tokens
        for i = 0, $n - 1 do
            d:set('u' .. i, '$token')
        end
    }"
        lua_loc="
        location /lua/ {
            access_by_lua_block {
                local t = ngx.shared.tokens:get(ngx.var.http_x_user)
                if t == nil then
                    return ngx.exit(401)
                end
                ngx.req.set_header('Authorization', 'Bearer ' .. t)
            }
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_pass http://api/upstream/;
        }"
    fi

    cat > "$dir/front/nginx.conf" <<CONF
load_module $module;
${lua:+load_module $mods/ndk_http_module.so;}
${lua:+load_module $mods/ngx_http_lua_module.so;}
$user
worker_processes 1;
pid $dir/front/nginx.pid;
error_log $dir/front/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    oauth_store $dir/front/oauth.mdb max_size=$size;
    oauth_key_file $dir/keys;
    oauth_background_refresh off;
    $lua_conf

    oauth_provider p {
        client_id c;
        client_secret s;
        redirect_uri http://127.0.0.1:$front/cb;
        authorization_url http://127.0.0.1:$front/authorize;
        token_url http://127.0.0.1:$back/token;
        account_id sub;
    }

    oauth_provider s {
        client_id c;
        client_secret s;
        redirect_uri http://127.0.0.1:$front/cb;
        authorization_url http://127.0.0.1:$front/authorize;
        token_url http://127.0.0.1:$back/slowtoken;
        account_id sub;
    }

    upstream api { server 127.0.0.1:$back; keepalive 64; }
    upstream tokensvc { server 127.0.0.1:$back; keepalive 64; }

    server {
        listen 127.0.0.1:$front backlog=4096;
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

        location /slow/ {
            oauth_token s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api/upstream/;
        }

        location /sidecar/ {
            auth_request /_token;
            auth_request_set \$bench_token \$upstream_http_x_token;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization \$bench_token;
            proxy_pass http://api/upstream/;
        }

        location = /_token {
            internal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-User \$http_x_user;
            proxy_pass http://tokensvc/token-for;
        }
        $lua_loc
    }
}
CONF

    "$nginx" -p "$dir/front" -c "$dir/front/nginx.conf"
    sleep 0.5
    worker=$(cat "/proc/$(cat "$dir/front/nginx.pid")/task/$(cat \
        "$dir/front/nginx.pid")/children" | awk '{ print $1 }')
    [ -n "$worker" ] || { echo "bench: no front worker"; exit 1; }

    code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-User: u$(( n - 1 ))" \
        "http://127.0.0.1:$front/oauth/x")
    [ "$code" = 200 ] || { echo "bench: injection answered $code"; exit 1; }
}

front_stop() {
    kill "$(cat "$dir/front/nginx.pid")"
    while [ -f "$dir/front/nginx.pid" ]; do sleep 0.1; done
}


# --- one measured run ----------------------------------------------------

cat > "$dir/owners.lua" <<'LUA'
local n = tonumber(os.getenv("BENCH_OWNERS"))
local threads = {}
bad = 0
setup = function(thread)
    table.insert(threads, thread)
end
math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
request = function()
    return wrk.format("GET", wrk.path,
                      { ["X-User"] = "u" .. math.random(0, n - 1) })
end
response = function(status)
    if status ~= 200 then bad = bad + 1 end
end
done = function()
    local b = 0
    for _, t in ipairs(threads) do
        b = b + t:get("bad")
    end
    io.write(string.format("bad %d\n", b))
end
LUA

cpu_ns() {
    awk '{ print $1 }' "/proc/$worker/schedstat"
}

# run LOCATION SECONDS [WRK-ARGS]: prints "requests cpu_ns wall_s p99_us bad"
run() {
    loc=$1
    secs=$2
    shift 2
    c0=$(cpu_ns)
    out=$(BENCH_OWNERS=$owners wrk -t1 -c"$conns" -d"${secs}s" --latency \
          -s "$dir/owners.lua" "$@" "http://127.0.0.1:$front/$loc/x")
    c1=$(cpu_ns)
    printf '%s\n' "$out" | awk -v cpu=$((c1 - c0)) '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return v * 1000
            if (v ~ /s$/)  return v * 1000000
            return v
        }
        / 99% /               { p99 = us($2) }
        /requests in/         { req = $1; wall = $4 + 0 }
        /^bad /               { bad = $2 }
        END { printf "%d %d %s %.0f %d\n", req, cpu, wall, p99, bad }'
}

# round_robin LABEL LOCATIONS: interleaved rounds over the locations,
# appends "label loc round requests cpu_ns wall p99 bad" lines to $dir/runs
round_robin() {
    label=$1
    shift
    for l in "$@"; do run "$l" 1 >/dev/null; done      # warm up
    r=1
    while [ "$r" -le "$rounds" ]; do
        for l in $(printf '%s\n' "$@" | shuf); do
            printf '%s %s %d %s\n' "$label" "$l" "$r" \
                "$(run "$l" "$seconds")" >> "$dir/runs"
        done
        r=$((r + 1))
    done
}

# table LABEL: medians over rounds, ratios round by round against static
table() {
    awk -v label="$1" -v bytes="$store_bytes" -v n="$owners" '
        function median(a, k,    i, j, t) {
            for (i = 2; i <= k; i++) {
                t = a[i]
                for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
                a[j + 1] = t
            }
            return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        }
        $1 == label {
            us[$2, $3] = $5 / $4 / 1000
            rps[$2, $3] = $4 / $6
            if ($8) bad[$2] += $8
            if ($3 > rounds) rounds = $3
        }
        END {
            nl = split("static oauth lua sidecar", locs, " ")
            for (i = 1; i <= nl; i++) {
                l = locs[i]
                if (!((l, 1) in us)) continue
                for (r = 1; r <= rounds; r++) {
                    a[r] = us[l, r]; b[r] = rps[l, r]
                    c[r] = us["static", r] / us[l, r]
                    d[r] = us[l, r] - us["static", r]
                    e[r] = rps[l, r] / rps["static", r]
                }
                printf "%-8s %-8s %9.1f %9.0f %10.2f %9.3f %9.3f%s\n",
                    label, l, median(a, rounds), median(b, rounds),
                    median(d, rounds), median(c, rounds), median(e, rounds),
                    bad[l] ? "  (" bad[l] " non-200!)" : ""
            }
            if (bytes)
                printf "%-8s store: %d bytes, %.0f bytes per connection\n",
                    label, bytes, bytes / n
        }' "$dir/runs"
}

header() {
    printf '%-8s %-8s %9s %9s %10s %9s %9s\n' stored variant "cpu µs/req" \
        "req/s" "+µs/static" "cpu ratio" "rps ratio"
}

peers="static oauth"
[ -n "$lua" ] && peers="$peers lua sidecar"
: > "$dir/runs"


# --- 10^4 and 10^5 connections: the side-by-side table -----------------

for n in 10000 100000; do
    owners=$n
    front_start "$n"
    round_robin "$n" $peers
    table "$n" > "$dir/table-$n"

    if [ "$n" = 10000 ]; then

        # p99 of unrelated requests while 100 token calls wait 3 s
        idle=$(run oauth 2 -c8 | awk '{ print $4 }')
        i=0
        while [ "$i" -lt 100 ]; do
            curl -s -o /dev/null -w '%{http_code}\n' -H "X-User: slow$i" \
                "http://127.0.0.1:$front/slow/x" >> "$dir/slow" &
            i=$((i + 1))
        done
        sleep 0.5
        busy=$(run oauth 2 -c8 | awk '{ print $4 }')
        wait
        slow_ok=$(grep -c '^200$' "$dir/slow" || true)

        # completed connect flows per second: /start, then /cb with the
        # state and binding cookie it gave (no owner needed at /cb)
        flows=$(wrk -t1 -c8 -d"${seconds}s" -s "$top/bench/flows.lua" \
                "http://127.0.0.1:$front/start" | awk '/^flows / { print $2 / $3 }')
    fi

    front_stop
done


# --- 10^6 connections: injection cost, and RSS over 10^6 requests ------

owners=$big
front_start "$big"
big_fill_s=$fill_s
round_robin "$big" static oauth
table "$big" > "$dir/table-$big"

rss() {
    awk '/^VmRSS/ { r = $2 } /^RssAnon/ { a = $2 }
         END { printf "%d KiB (anon %d KiB)", r, a }' "/proc/$worker/status"
}

rss0=$(rss)
total=0
while [ "$total" -lt "$rss_reqs" ]; do
    got=$(run oauth 10 | awk '{ print $1 }')
    total=$((total + got))
done
rss1=$(rss)
front_stop


# --- the report ----------------------------------------------------------

echo
echo "ngx_oauth_module bench: $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')," \
     "$rounds rounds of ${seconds}s, wrk -c$conns, one front worker"
echo "cpu µs/req: the front worker's CPU per request; +µs/static and the"
echo "ratios (static/variant for cpu, variant/static for req/s) are medians"
echo "of per-round values; 1.000 means as cheap as the static header"
echo
header
cat "$dir/table-10000" "$dir/table-100000"
[ -n "$lua" ] || echo "(lua and sidecar: install libnginx-mod-http-lua)"
echo
echo "injection cost over static by store size:"
for n in 10000 100000 $big; do
    awk -v n="$n" '$1 == n && $2 == "oauth" { printf "  %8d conns: +%s µs/req\n", n, $5 }
                   $1 == n && $2 == "store:" { printf "  %8s        store %s bytes/conn\n", "", $5 }' \
        "$dir/table-$n"
done
echo
awk -v i="$idle" -v b="$busy" -v ok="$slow_ok" 'BEGIN {
    printf "p99 of injections while 100 token calls wait 3 s: %.0f µs, idle %.0f µs, ratio %.2f (%d of 100 slow calls answered 200)\n", b, i, (i ? b / i : 0), ok }'
echo "worker RSS before and after $total proxied requests (10^6 store): $rss0 -> $rss1"
echo "completed connect flows per second: $flows"
echo "filling 10^6 connections took ${big_fill_s}s; whole bench $(( $(date +%s) - started ))s"
