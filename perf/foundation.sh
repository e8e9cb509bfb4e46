#!/usr/bin/env bash
# Side-by-side: percore and haproxy read the same config (perf/configs/*.cfg), one
# proxy thread pinned to CPU 0; wrk and the origin share CPU 1. Interleaved rounds
# (percore, haproxy, percore, ...); the table shows medians. The full comparison tool
# (nginx, latency at fixed rate, memory per connection) is issue #3's perf/compare.
#   usage: perf/foundation.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-5}
for tool in haproxy wrk curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install haproxy wrk curl" >&2; exit 1; }
done
cargo build --release --workspace --quiet
taskset -c 1 ./target/release/percore-bench origin --listen 127.0.0.1:19001 >/dev/null &
origin=$!
trap 'kill $origin 2>/dev/null' EXIT
sleep 0.3

start_proxy() { # who config
  if [ "$1" = percore ]; then ./target/release/percore -d -f "$2" 2>/dev/null &
  else haproxy -db -f "$2" 2>/dev/null & fi
  proxy=$!
  sleep 0.5
}
stop_proxy() { kill "$proxy"; wait "$proxy" 2>/dev/null || true; }

# scenario -> command printing one number
measure() {
  case "$1" in
    http-keepalive-64B) taskset -c 1 wrk -t1 -c50 -d"${secs}s" http://127.0.0.1:18080/ | awk '/Requests\/sec/{print $2}' ;;
    http-keepalive-p99-ms) taskset -c 1 wrk -t1 -c50 -d"${secs}s" --latency http://127.0.0.1:18080/ | awk '/^ +99%/{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else {sub(/s/,"",v); v=v*1000}; print v}' ;;
    http-close-64B) taskset -c 1 wrk -t1 -c50 -d"${secs}s" -H "Connection: close" http://127.0.0.1:18080/ | awk '/Requests\/sec/{print $2}' ;;
    tcp-keepalive-64B) taskset -c 1 wrk -t1 -c50 -d"${secs}s" http://127.0.0.1:18081/ | awk '/Requests\/sec/{print $2}' ;;
    tcp-stream-Gbps) taskset -c 1 curl -s -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:18081/?size=4000000000" | awk '{printf "%.2f\n", $1*8/1e9}' ;;
  esac
}

config_for() { case "$1" in tcp-*) echo perf/configs/tcp.cfg ;; *) echo perf/configs/http.cfg ;; esac; }

scenarios="http-keepalive-64B http-keepalive-p99-ms http-close-64B tcp-keepalive-64B tcp-stream-Gbps"
declare -A results
for s in $scenarios; do
  for r in $(seq "$rounds"); do
    for who in percore haproxy; do
      start_proxy "$who" "$(config_for "$s")"
      v=$(measure "$s")
      stop_proxy
      results["$s,$who"]+="$v "
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| scenario | percore | haproxy | percore/haproxy |"
echo "|---|---|---|---|"
for s in $scenarios; do
  p=$(echo "${results[$s,percore]}" | median)
  h=$(echo "${results[$s,haproxy]}" | median)
  echo "| $s | $p | $h | $(awk -v p="$p" -v h="$h" 'BEGIN{printf "%.2f", p/h}') |"
done
