#!/usr/bin/env bash
# Instructions per proxied request, repeatable whatever else the machine does:
# runs a proxy under valgrind's callgrind, drives it with percore-bench for a few
# seconds, dumps the counters and divides by the requests served. User-space
# instructions only: kernel work (io_uring or epoll) is not counted.
#   usage: perf/callgrind.sh [percore|haproxy] [CONFIG] [--close]
#   (default: percore perf/configs/http.cfg, keep-alive; --close: one request per
#   client connection)
# Open the profile with: callgrind_annotate /tmp/percore-callgrind.out.1
set -euo pipefail
cd "$(dirname "$0")/.."
who=${1:-percore}
cfg=${2:-perf/configs/http.cfg}
close=${3:-}
out=/tmp/$who-callgrind.out
command -v valgrind >/dev/null || { echo "needs: apt-get install valgrind" >&2; exit 1; }
cargo build --release --workspace --quiet
./target/release/percore-bench origin --listen 127.0.0.1:19001 >/dev/null &
origin=$!
proxy=
# The proxy is killed (SIGKILL: it may not stop on SIGTERM under valgrind, and its
# counters are already dumped) by its own pid: a name pattern missed valgrind's real process
# name (valgrind.bin), left proxies running, and those shared the port with later runs.
trap 'kill -9 $origin ${proxy:-} 2>/dev/null || true' EXIT
rm -f "$out"*
case $who in
  percore) valgrind --tool=callgrind --callgrind-out-file="$out" ./target/release/percore -d -f "$cfg" >/dev/null 2>&1 & ;;
  haproxy) valgrind --tool=callgrind --callgrind-out-file="$out" haproxy -db -f "$cfg" >/dev/null 2>&1 & ;;
  *) echo "usage: $0 [percore|haproxy] [CONFIG]" >&2; exit 2 ;;
esac
proxy=$!
sleep 5
requests=$(./target/release/percore-bench http http://127.0.0.1:18080/ -c 10 -d 6s $close --json | sed 's/.*"requests":\([0-9]*\).*/\1/')
callgrind_control -d >/dev/null 2>&1
sleep 4
ir=$(for f in "$out"*; do callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; done | sort -n | tail -1)
echo "$who: $requests requests, $ir instructions, $((ir / requests)) instructions per request"
