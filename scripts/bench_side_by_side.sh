#!/usr/bin/env bash
# Runs relupo's training-step benchmark and the PyTorch baseline
# (../shared/reference/bench_train.py) one after the other, in the same
# session, for each preset given, and prints one Markdown table row each
# with the ratio. Needs /usr/bin/python3 with torch (Debian: python3-torch).
#
#   scripts/bench_side_by_side.sh                 # 30m and 135m, f32
#   STEPS=5 PT_SECONDS=90 scripts/bench_side_by_side.sh 30m   # a fixed number of relupo steps instead
#   PREC=bf16 scripts/bench_side_by_side.sh       # relupo --compute-dtype bf16 against PyTorch's bf16 autocast
#   ROUNDS=3 scripts/bench_side_by_side.sh 30m    # alternate the two three times: a row per round
#
# The machine's speed drifts by 10-40% from minute to minute, so a single pair
# of runs can land on either side of a ratio; ROUNDS alternates relupo and
# PyTorch and prints every round and the median ratio. Unless STEPS is set,
# relupo times its training steps for PT_SECONDS as bench_train.py does
# (relupo bench --seconds), so that both sides sample the machine as long.
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(30m 135m)
STEPS=${STEPS:-}
PT_SECONDS=${PT_SECONDS:-90}
PREC=${PREC:-f32}
ROUNDS=${ROUNDS:-1}
case "$PREC" in
  f32) dtype=float32 ;;
  bf16) dtype=bf16 ;;
  *) echo "PREC must be f32 or bf16" >&2; exit 2 ;;
esac
out=$(mktemp -d)
go build -o "$out/relupo" ./cmd/relupo
echo "| preset ($PREC) | relupo tokens/s | PyTorch tokens/s | ratio | relupo GFLOP/s | PyTorch GFLOP/s | relupo peak RSS GB | PyTorch peak RSS GB | reference forward: relupo s | PyTorch s | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for p in "${presets[@]}"; do
  ratios=()
  for round in $(seq "$ROUNDS"); do
    label=$p
    [ "$ROUNDS" -gt 1 ] && label="$p (round $round)"
    timing=(--seconds "$PT_SECONDS")
    [ -n "$STEPS" ] && timing=(--steps "$STEPS")
    "$out/relupo" bench --preset "$p" --compute-dtype "$dtype" "${timing[@]}" --json 2>"$out/relupo-$p.log" | tail -1 > "$out/relupo-$p.json"
    "$out/relupo" bench --preset "$p" --compute-dtype "$dtype" --mode ref-forward --steps "${STEPS:-5}" --json 2>>"$out/relupo-$p.log" | tail -1 > "$out/relupo-ref-$p.json"
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-SkylakeX} \
      OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \
      /usr/bin/python3 ../shared/reference/bench_train.py "$p" 2 "$PT_SECONDS" "$PREC" > "$out/torch-$p.log" 2>&1
    row=$(python3 - "$label" "$out/relupo-$p.json" "$out/relupo-ref-$p.json" "$out/torch-$p.log" <<'PY'
import json, sys
p, ours_path, ref_path, torch_path = sys.argv[1:]
ours, ref = json.load(open(ours_path)), json.load(open(ref_path))
log = open(torch_path).read()
theirs = json.loads(log[log.index("\n{") + 1:])
r = ours["tokens_per_s"] / theirs["tokens_per_s"]
tref = theirs.get("ref_forward_nograd_s") or float("nan")
print(f'| {p} | {ours["tokens_per_s"]:.0f} | {theirs["tokens_per_s"]:.0f} | {r:.2f}× | {ours["gflops"]:.1f} | '
      f'{theirs["achieved_GFLOPs"]:.1f} | {ours["peak_rss_GB"]:.2f} | {theirs["peak_rss_GB"]:.2f} | '
      f'{ref["step_s_median"]:.2f} | {tref:.2f} | {tref / ref["step_s_median"]:.2f}× |')
PY
)
    echo "$row"
    ratios+=("$(echo "$row" | awk -F'|' '{gsub(/[ ×]/, "", $5); print $5}')")
  done
  if [ "$ROUNDS" -gt 1 ]; then
    echo "$p: median step ratio over $ROUNDS rounds: $(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) "×"}')"
  fi
done
echo "(logs in $out)"
