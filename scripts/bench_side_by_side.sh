#!/usr/bin/env bash
# Runs relupo's training-step benchmark and the PyTorch baseline
# (../shared/reference/bench_train.py) one after the other, in the same
# session, for each preset given, and prints one Markdown table row each
# with the ratio. Needs /usr/bin/python3 with torch (Debian: python3-torch).
#
#   scripts/bench_side_by_side.sh                 # 30m and 135m, f32
#   STEPS=5 PT_SECONDS=90 scripts/bench_side_by_side.sh 30m   # a fixed number of relupo steps instead
#   PREC=bf16 scripts/bench_side_by_side.sh       # relupo --compute-dtype bf16 against PyTorch's bf16 autocast
#   PREC="f32 bf16" ROUNDS=3 scripts/bench_side_by_side.sh 30m   # both precisions, alternated, with the ratios between them
#   SEQ=2048 scripts/bench_side_by_side.sh 30m    # another sequence length (relupo --seq, bench_train.py's SEQ)
#   REF=0 scripts/bench_side_by_side.sh           # skip the reference-forward columns
#
# The machine's speed drifts by 10-40% from minute to minute, so a single pair
# of runs can land on either side of a ratio; ROUNDS alternates relupo and
# PyTorch and prints every round and the median ratio. Unless STEPS is set,
# relupo times its training steps for PT_SECONDS as bench_train.py does
# (relupo bench --seconds), so that both sides sample the machine as long.
#
# PyTorch's float32 products run on OpenBLAS, whose speed depends on the
# kernels it picks (OPENBLAS_CORETYPE; some machines set Haswell in the
# environment, 1.4-1.6x slower than SkylakeX on AVX-512 CPUs). The script
# ignores OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE from the environment, times
# float32 products under each candidate core type once
# (bench/openblas_coretype.py), runs the baseline under the fastest and says
# which. PT_CORETYPE=NAME skips the measurement and uses NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(30m 135m)
STEPS=${STEPS:-}
PT_SECONDS=${PT_SECONDS:-90}
PREC=${PREC:-f32}
ROUNDS=${ROUNDS:-1}
SEQ=${SEQ:-}
REF=${REF:-1}
for prec in $PREC; do
  case "$prec" in
    f32 | bf16) ;;
    *) echo "PREC must be f32, bf16 or both (\"f32 bf16\")" >&2; exit 2 ;;
  esac
done
torch_env=(OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2)
out=$(mktemp -d)
go build -o "$out/relupo" ./cmd/relupo
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"

# The OpenBLAS core type for PyTorch: the fastest float32 products.
if [ -n "${PT_CORETYPE:-}" ]; then
  coretype=$PT_CORETYPE
  echo "PyTorch OpenBLAS core type: $coretype (PT_CORETYPE)"
else
  # Two passes over the candidates, each timed for 3 s, the best of each
  # kept: a busy machine slows single runs by up to half.
  : > "$out/coretypes.jsonl"
  for pass in 1 2; do
    for c in default SkylakeX Cooperlake Haswell Zen; do
      ctenv=()
      [ "$c" = default ] || ctenv=(OPENBLAS_CORETYPE=$c)
      res=$(env "${ctenv[@]}" "${torch_env[@]}" /usr/bin/python3 bench/openblas_coretype.py 2 3 2>/dev/null | tail -1) || continue
      echo "{\"candidate\": \"$c\", \"result\": $res}" >> "$out/coretypes.jsonl"
    done
  done
  read -r coretype summary < <(python3 - "$out/coretypes.jsonl" <<'PY'
import json, sys
best = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    c, r = d["candidate"], d["result"]
    key = (c, r["coretype"])
    best[key] = max(best.get(key, 0), r["gflops"])
(c, _), _ = max(best.items(), key=lambda kv: kv[1])
print(c, ", ".join(f"{c} ({got}): {g:.0f}" for (c, got), g in best.items()))
PY
)
  echo "PyTorch OpenBLAS core type: $coretype, the fastest float32 products (best GFLOP/s of two 3 s runs, 2 threads: $summary)"
fi
ptenv=("${torch_env[@]}")
[ "$coretype" = default ] || ptenv+=(OPENBLAS_CORETYPE=$coretype)
[ -n "$SEQ" ] && ptenv+=(SEQ=$SEQ)
seqflag=()
[ -n "$SEQ" ] && seqflag=(--seq "$SEQ")

echo
echo "| preset | seq | precision | relupo tokens/s | PyTorch tokens/s | ratio | relupo GFLOP/s | PyTorch GFLOP/s | relupo peak RSS GB | PyTorch peak RSS GB | reference forward: relupo s | PyTorch s | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
: > "$out/runs.jsonl"
for p in "${presets[@]}"; do
  for round in $(seq "$ROUNDS"); do
    for prec in $PREC; do
      dtype=float32
      [ "$prec" = bf16 ] && dtype=bf16
      label=$p
      [ "$ROUNDS" -gt 1 ] && label="$p (round $round)"
      timing=(--seconds "$PT_SECONDS")
      [ -n "$STEPS" ] && timing=(--steps "$STEPS")
      tag=$p-$prec-$round
      "$out/relupo" bench --preset "$p" "${seqflag[@]}" --compute-dtype "$dtype" "${timing[@]}" --json 2>"$out/relupo-$tag.log" | tail -1 > "$out/relupo-$tag.json"
      if [ "$REF" = 1 ]; then
        "$out/relupo" bench --preset "$p" "${seqflag[@]}" --compute-dtype "$dtype" --mode ref-forward --steps "${STEPS:-5}" --json 2>>"$out/relupo-$tag.log" | tail -1 > "$out/relupo-ref-$tag.json"
      else
        echo '{}' > "$out/relupo-ref-$tag.json"
      fi
      env "${ptenv[@]}" /usr/bin/python3 ../shared/reference/bench_train.py "$p" 2 "$PT_SECONDS" "$prec" > "$out/torch-$tag.log" 2>&1
      python3 - "$label" "$prec" "$out/relupo-$tag.json" "$out/relupo-ref-$tag.json" "$out/torch-$tag.log" "$out/runs.jsonl" "$p" <<'PY'
import json, sys
label, prec, ours_path, ref_path, torch_path, runs, preset = sys.argv[1:]
ours, ref = json.load(open(ours_path)), json.load(open(ref_path))
log = open(torch_path).read()
theirs = json.loads(log[log.index("\n{") + 1:])
r = ours["tokens_per_s"] / theirs["tokens_per_s"]
seq = ours.get("seq_len", "")
if ref:
    tref = theirs.get("ref_forward_nograd_s") or float("nan")
    refcols = f'{ref["step_s_median"]:.2f} | {tref:.2f} | {tref / ref["step_s_median"]:.2f}×'
else:
    refcols = "– | – | –"
print(f'| {label} | {seq} | {prec} | {ours["tokens_per_s"]:.0f} | {theirs["tokens_per_s"]:.0f} | {r:.2f}× | {ours["gflops"]:.1f} | '
      f'{theirs["achieved_GFLOPs"]:.1f} | {ours["peak_rss_GB"]:.2f} | {theirs["peak_rss_GB"]:.2f} | {refcols} |')
with open(runs, "a") as f:
    f.write(json.dumps({"preset": preset, "prec": prec, "relupo": ours["tokens_per_s"], "torch": theirs["tokens_per_s"],
                        "kernels": ours.get("kernels", ""), "bf16_native": ours.get("bf16_native", False)}) + "\n")
PY
    done
  done
done
# Medians over the rounds, and the ratios between precisions.
python3 - "$out/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for r in runs:
    for side in ("relupo", "torch"):
        med.setdefault((r["preset"], r["prec"], side), []).append(r[side])
med = {k: statistics.median(v) for k, v in med.items()}
print()
print("relupo kernels: " + ", ".join(dict.fromkeys(r["kernels"] for r in runs)) +
      "".join(dict.fromkeys(f'; bf16 products on the bfloat16 kernel: {"yes" if r["bf16_native"] else "no (emulated in float32)"}'
                            for r in runs if r["prec"] == "bf16")))
for preset in dict.fromkeys(r["preset"] for r in runs):
    precs = [p for p in ("f32", "bf16") if (preset, p, "relupo") in med]
    parts = [f'{p}: relupo {med[preset, p, "relupo"]:.0f}, PyTorch {med[preset, p, "torch"]:.0f} tokens/s '
             f'({med[preset, p, "relupo"] / med[preset, p, "torch"]:.2f}×)' for p in precs]
    if len(precs) == 2:
        parts.append(f'relupo bf16/f32 {med[preset, "bf16", "relupo"] / med[preset, "f32", "relupo"]:.2f}×, '
                     f'PyTorch bf16/f32 {med[preset, "bf16", "torch"] / med[preset, "f32", "torch"]:.2f}×')
    n = sum(1 for r in runs if r["preset"] == preset) // max(1, len(precs))
    print(f"{preset}, medians of {n} round(s): " + "; ".join(parts))
PY
echo "(logs in $out)"
