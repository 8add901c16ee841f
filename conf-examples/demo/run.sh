#!/bin/sh
# make run: the demo on http://127.0.0.1:8080/ (Ctrl-C stops it).
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
dir="$top/build/demo"
module="$top/build/ngx_http_oauth_module.so"
nginx=${NGINX_BIN:-/usr/sbin/nginx}

[ -f "$module" ] || { echo "run: build the module first: make"; exit 1; }

mkdir -p "$dir/tmp"
chmod 700 "$dir"

# a keyring and a client secret of the demo's own, made once
if [ ! -f "$dir/oauth.keys" ]; then
    umask 077
    printf 'demo1:%s\n' "$(head -c 32 /dev/urandom | base64)" \
        > "$dir/oauth.keys"
    head -c 24 /dev/urandom | base64 > "$dir/demo.secret"
fi

user=
[ "$(id -u)" = 0 ] && user="user root;"

sed -e "s|@DIR@|$dir|g" -e "s|@MODULE@|$module|g" \
    -e "s|@HTML@|$top/conf-examples/demo/html|g" -e "s|@USER@|$user|" \
    "$top/conf-examples/demo/nginx.conf.in" > "$dir/nginx.conf"

"$nginx" -t -q -p "$dir" -c "$dir/nginx.conf"

echo "demo: open http://127.0.0.1:8080/ (logs in $dir; Ctrl-C stops)"
exec "$nginx" -p "$dir" -c "$dir/nginx.conf"
