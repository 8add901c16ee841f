#!/bin/sh
# make run [PORT=N]: the demo on http://127.0.0.1:PORT/ (default 8080;
# Ctrl-C stops it).  DEMO_DIR (default build/demo) holds its key, store
# and logs; DEMO_DAEMON=1 runs nginx in the background (the tests).
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
dir=${DEMO_DIR:-$top/build/demo}
module=${NGX_OAUTH_MODULE:-$top/build/ngx_http_oauth_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
port=${PORT:-8080}
daemon=off
[ "${DEMO_DAEMON:-0}" = 1 ] && daemon=on

[ -f "$module" ] || { echo "run: build the module first: make"; exit 1; }

case "$port" in
''|*[!0-9]*) echo "run: PORT must be a number, not \"$port\""; exit 2 ;;
esac

# a port is free when it can be bound; nginx would only say so after
# printing the address
port_free() {
    perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(
        LocalAddr => "127.0.0.1", LocalPort => $ARGV[0], Listen => 1,
        ReuseAddr => 1) ? 0 : 1)' "$1"
}

if ! port_free "$port"; then
    free=$((port + 1))
    while [ "$free" -lt $((port + 200)) ] && ! port_free "$free"; do
        free=$((free + 1))
    done
    echo "run: port $port on 127.0.0.1 is taken; try: make run PORT=$free"
    exit 1
fi

mkdir -p "$dir/tmp"
chmod 700 "$dir"

# a keyring and a client secret of the demo's own, made once
if [ ! -f "$dir/oauth.keys" ]; then
    (umask 077
     printf 'demo1:%s\n' "$(head -c 32 /dev/urandom | base64)" \
         > "$dir/oauth.keys"
     head -c 24 /dev/urandom | base64 > "$dir/demo.secret")
fi

user=
[ "$(id -u)" = 0 ] && user="user root;"

sed -e "s|@DIR@|$dir|g" -e "s|@MODULE@|$module|g" -e "s|@PORT@|$port|g" \
    -e "s|@HTML@|$top/conf-examples/demo/html|g" -e "s|@USER@|$user|" \
    -e "s|@DAEMON@|$daemon|" \
    "$top/conf-examples/demo/nginx.conf.in" > "$dir/nginx.conf"

"$nginx" -t -q -p "$dir" -c "$dir/nginx.conf"

echo "demo: open http://127.0.0.1:$port/ (logs in $dir; Ctrl-C stops)"
exec "$nginx" -p "$dir" -c "$dir/nginx.conf"
