#!/usr/bin/env bash
# Installs what the tests need (Debian packages, as root or through sudo), then runs
# the formatting and lint checks and every test: unit tests and the end-to-end tests
# that start the real binary against real sockets, haproxy included; then each fuzz
# target for 30 s (fuzz.sh installs cargo-fuzz from crates.io when missing).
set -euo pipefail
cd "$(dirname "$0")"
missing=()
for tool in haproxy curl socat; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d ../shared/seed-configs ]; then
  echo "../shared/seed-configs is missing: the seed configuration tests need it beside the checkout" >&2
  exit 1
fi
# Formatting and lints need the toolchain's rustfmt and clippy components (part of the
# default rustup profile); a toolchain without them skips these two checks, loudly.
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all --check
else
  echo "WARNING: rustfmt is not installed; formatting not checked" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --quiet -- -D warnings
else
  echo "WARNING: clippy is not installed; lints not checked" >&2
fi
# Every decoder's fuzz target, briefly, so that a regression shows (./fuzz.sh 600 for
# the long runs); before the tests, so that the tests' summary closes the output.
./fuzz.sh 30
log=$(mktemp)
cargo test --workspace --quiet 2>&1 | tee "$log"
# One closing line for all the test binaries.
grep -E '^test result' "$log" | awk '{p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}'
rm -f "$log"
