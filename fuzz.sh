#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30): the configuration parser
# and expression compilers (config/fuzz), the request and response head parsers and
# editor, the chunked decoder and the PROXY protocol decoder (dataplane/fuzz). Starts
# from the seeds in each crate's fuzz/seeds/, keeps what it learns in fuzz/corpus/, and
# fails on the first finding (left in fuzz/artifacts/). Installs cargo-fuzz when missing;
# builds on the stable toolchain (RUSTC_BOOTSTRAP lets it take the sanitizer flags).
#
#   ./fuzz.sh            # 30 s per target, as CI runs it
#   ./fuzz.sh 600        # the 10-minute runs an issue closes with
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
for crate in config dataplane; do
  (
    cd "$crate"
    cargo fuzz build -O
    for target in $(cargo fuzz list); do
      mkdir -p "fuzz/corpus/$target"
      echo "fuzzing $crate/$target for ${seconds}s"
      log="fuzz/artifacts/$target.log"
      mkdir -p fuzz/artifacts
      if ! cargo fuzz run -O "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz target $crate/$target found a problem (see $crate/fuzz/artifacts/)" >&2
        exit 1
      fi
      grep -E "^stat::number_of_executed_units" "$log"
    done
  )
done
