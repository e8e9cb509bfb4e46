#!/usr/bin/env bash
# Runs percore on the bundled demo configuration with two bundled origins; nothing
# outside this repository is needed. Try: curl -i http://127.0.0.1:10080/
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --workspace --quiet
./target/release/percore-bench origin --listen 127.0.0.1:19001 --name origin1 &
o1=$!
./target/release/percore-bench origin --listen 127.0.0.1:19002 --name origin2 &
o2=$!
trap 'kill $o1 $o2 2>/dev/null' EXIT
echo "percore listening on http://127.0.0.1:10080/ (Ctrl-C to stop)"
./target/release/percore -d -f examples/demo.cfg
