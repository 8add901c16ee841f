#!/bin/sh
# Installs the Debian packages the build, the tests and the demo need.
# As root it runs apt-get; otherwise it prints the command to run.

pkgs="make gcc perl nginx nginx-dev libssl-dev libcurl4-openssl-dev \
liblmdb-dev libjansson-dev libpq-dev postgresql lmdb-utils libcmocka-dev \
libnginx-mod-http-echo libtest-base-perl libtest-longstring-perl \
liblist-moreutils-perl libhttp-message-perl libwww-perl curl"

# extra groups for the slow targets: deps.sh fuzz | e2e | valgrind | deb
for group in "$@"; do
    case "$group" in
    fuzz)     pkgs="$pkgs clang-14 libclang-rt-14-dev" ;;
    e2e)      pkgs="$pkgs chromium"
              # the machine's own Node.js (with its npm) counts too
              command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
              command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm" ;;
    valgrind) pkgs="$pkgs valgrind" ;;
    bench)    pkgs="$pkgs wrk" ;;
    deb)      pkgs="$pkgs dpkg-dev debhelper nginx-dev" ;;
    esac
done

missing=
for p in $pkgs; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null \
        | grep -q 'install ok installed' || missing="$missing $p"
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "missing packages; run as root:"
    echo "    apt-get update && apt-get install -y$missing"
    exit 1
fi

echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || exit 1
apt-get install -y -qq --no-install-recommends $missing >/dev/null || exit 1
