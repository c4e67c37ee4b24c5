#!/usr/bin/env bash
# Runs every go-fuzz target of relupo for FUZZTIME each (default 10m), one
# after another, so a crash is reported with its package and target.
# New crashers are written by Go under the package's testdata/fuzz/ folder;
# commit them, they become regression tests of the ordinary `go test`.
#
#   scripts/fuzz.sh                 # all targets, 10 minutes each
#   FUZZTIME=30s scripts/fuzz.sh    # a quick pass
#   scripts/fuzz.sh ./tokenizer     # the targets of one package
#   FUZZPARALLEL=1 scripts/fuzz.sh  # one fuzzing worker (default: one per core)
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10m}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./safetensors ./tokenizer ./chat ./data ./model)
failed=()
for pkg in "${pkgs[@]}"; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    echo "== $pkg $target ($FUZZTIME)"
    # Minimization of each new input is bounded so that slow inputs do not
    # stall the run. A failure is reported at the end; the other targets
    # still run.
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 10s \
      -parallel "${FUZZPARALLEL:-$(nproc)}" "$pkg" || failed+=("$pkg $target")
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
