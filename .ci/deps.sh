#!/bin/sh
# The Debian packages the build, the tests and the demo need.
#
#   sh .ci/deps.sh [GROUP...]           install what is missing (as root)
#   sh .ci/deps.sh --check [GROUP...]   only say what is missing; exit 1 if
#                                       anything is (make test does this)
#
# GROUPs add the packages of the slow targets: fuzz, e2e, valgrind, bench,
# deb.
# Installing is only ever done by "make deps" and .ci/run, never as a side
# effect of a test target.

check=
if [ "${1:-}" = --check ]; then
    check=1
    shift
fi

pkgs="make gcc perl nginx nginx-dev libssl-dev libcurl4-openssl-dev \
liblmdb-dev libjansson-dev libpq-dev postgresql lmdb-utils libcmocka-dev \
libnginx-mod-http-echo libtest-base-perl libtest-longstring-perl \
liblist-moreutils-perl libhttp-message-perl libwww-perl curl"

for group in "$@"; do
    case "$group" in
    fuzz)     pkgs="$pkgs clang-14 libclang-rt-14-dev" ;;
    e2e)      pkgs="$pkgs chromium"
              # the machine's own Node.js (with its npm) counts too
              command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
              command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm" ;;
    valgrind) pkgs="$pkgs valgrind" ;;
    bench)    pkgs="$pkgs wrk libnginx-mod-http-lua libnginx-mod-http-ndk" ;;
    deb)      pkgs="$pkgs dpkg-dev debhelper nginx-dev" ;;
    *)        echo "deps.sh: unknown group \"$group\"" >&2; exit 2 ;;
    esac
done

missing=
for p in $pkgs; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null \
        | grep -q 'install ok installed' || missing="$missing $p"
done

[ -z "$missing" ] && exit 0

if [ -n "$check" ]; then
    echo "missing Debian packages:$missing"
    echo "install them with:  make deps${*:+ DEPS=\"$*\"}"
    echo "(or as root:  apt-get update && apt-get install -y$missing)"
    exit 1
fi

if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing"
    echo "run as root:  apt-get update && apt-get install -y$missing"
    exit 1
fi

echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || exit 1
apt-get install -y -qq --no-install-recommends $missing >/dev/null || exit 1
