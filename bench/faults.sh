#!/bin/sh
# make faults: the fault scenarios (reload, binary upgrade, worker kill,
# lease-holder kill, full store, crash) against a real nginx; prints what
# each lost.  FAULTS="reload crash" runs some of them.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
command -v ss >/dev/null || { echo "faults: needs ss (iproute2)"; exit 1; }
exec perl "$top/bench/faults.pl"
