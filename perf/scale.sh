#!/usr/bin/env bash
# Multi-core scaling, percore vs haproxy, on a machine with at least 16 CPUs: the proxy
# on CPUs 0..N-1 (nbthread N, cpu-map), the origin on 4 CPUs, wrk on 4 others. Both
# proxies read the same generated config. Binaries come from $BIN (default: PATH, or
# the bundle perf/.device/ made for machines without a package manager).
#   usage: perf/scale.sh "1 2 4 8" ROUNDS SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-"1 2 4 8"}
rounds=${2:-2}
secs=${3:-5}
cpus=$(nproc)
[ "$cpus" -ge 16 ] || { echo "needs 16 CPUs, this machine has $cpus" >&2; exit 1; }
if [ -d perf/.device ]; then
  run() { local b=$1; shift; perf/.device/lib/ld-linux-x86-64.so.2 --library-path perf/.device/lib "perf/.device/bin/$b" "$@"; }
else
  run() { local b=$1; shift; case $b in percore|percore-bench) "./target/release/$b" "$@" ;; *) "$b" "$@" ;; esac; }
fi
ulimit -n 65536 || true
origin_cpus="$((cpus-8))-$((cpus-5))"
wrk_cpus="$((cpus-4))-$((cpus-1))"
taskset -c "$origin_cpus" bash -c "$(declare -f run); run percore-bench origin --listen 127.0.0.1:19001 --threads 4" >/dev/null &
origin=$!
trap 'kill $origin 2>/dev/null; pkill -f "bin/haproxy|bin/percore " 2>/dev/null' EXIT
sleep 0.5
cfg=$(mktemp)
echo "| threads | percore req/s | haproxy req/s | percore/haproxy |"
echo "|---|---|---|---|"
for n in $threads; do
  cat > "$cfg" <<CFG
global
  nbthread $n
  cpu-map auto:1/1-$n 0-$((n-1))
  maxconn 20000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:18080
  default_backend be
backend be
  server origin 127.0.0.1:19001
CFG
  declare -A res=()
  for r in $(seq "$rounds"); do
    for who in percore haproxy; do
      if [ $who = percore ]; then run percore -d -f "$cfg" 2>/dev/null & else run haproxy -db -f "$cfg" 2>/dev/null & fi
      pid=$!
      sleep 0.7
      v=$(taskset -c "$wrk_cpus" bash -c "$(declare -f run); run wrk -t4 -c256 -d${secs}s http://127.0.0.1:18080/" | awk '/Requests\/sec/{print $2}')
      kill $pid; wait $pid 2>/dev/null || true
      res[$who]+="$v "
    done
  done
  med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  p=$(echo "${res[percore]}" | med); h=$(echo "${res[haproxy]}" | med)
  echo "| $n | $p | $h | $(awk -v p="$p" -v h="$h" 'BEGIN{printf "%.2f", p/h}') |"
done
