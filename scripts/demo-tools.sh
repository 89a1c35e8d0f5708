#!/usr/bin/env bash
# Tools against likelihood displacement on the demo's pairs (run `make demo` first): DPO and BPO
# trained on CHES-filtered pairs (`bpo filter --ches`) and with TR-DPO reference refreshes
# (`bpo train --ref-refresh`), each evaluated like the demo's runs. Writes $DEMO_OUT/tools-report.md.
#
#   scripts/demo-tools.sh      (or: make demo-tools)
#
# Settings (environment): BPO, DEMO_OUT, THREADS, GEN_THREADS as for scripts/demo.sh; MODEL (default: the
# demo's cached SFT model), CHES_KEEP (default 0.5), REFRESH (default "hard:16 soft:0.5:8").
set -euo pipefail

BPO=${BPO:-bin/bpo}
OUT=${DEMO_OUT:-demo-out}
THREADS=${THREADS:-1}
GEN_THREADS=${GEN_THREADS:-1}
CHES_KEEP=${CHES_KEEP:-0.5}
REFRESH=${REFRESH:-hard:16 soft:0.5:8}
PREF_LR=${PREF_LR:-2e-3} PREF_EPOCHS=${PREF_EPOCHS:-2} PREF_BATCH=${PREF_BATCH:-8}
BETA=${BETA:-0.1} ALPHA=${ALPHA:-0.3} SEED=${SEED:-1} MAX_NEW=${MAX_NEW:-128}
RUNS="$OUT/runs"
TOOLS="$OUT/tools"
MODEL=${MODEL:-$(ls "$OUT"/cache/*/model.gguf 2>/dev/null | head -1)}
[ -x "$BPO" ] || { echo "demo-tools: $BPO not found; run 'make build'" >&2; exit 1; }
[ -f "$MODEL" ] && [ -f "$RUNS/pairs.jsonl" ] && [ -f "$RUNS/base-eval/summary.json" ] ||
	{ echo "demo-tools: run 'make demo' first (needs the SFT model, $RUNS/pairs.jsonl and the base evaluation)" >&2; exit 1; }
T0=$(date +%s)
run() { printf '+ %s\n' "$*"; "$@"; }
rm -rf "$TOOLS" && mkdir -p "$TOOLS"

EVAL=(--benchmark gsm8k --data "$OUT/data/test.jsonl" --prompt gsm8k-fewshot --max-new-tokens "$MAX_NEW" --parallel 8 --threads "$GEN_THREADS")
TRAIN=(--model "$MODEL" --beta "$BETA" --lr "$PREF_LR" --epochs "$PREF_EPOCHS" --batch-size "$PREF_BATCH" --seed "$SEED"
	--max-length 256 --threads "$THREADS")

run "$BPO" filter --model "$MODEL" --data "$RUNS/pairs.jsonl" --ches "$CHES_KEEP" --out "$TOOLS/pairs-ches.jsonl" --threads "$THREADS"

# name data extra-flags...
experiment() {
	local name=$1 data=$2; shift 2
	run "$BPO" train --loss dpo "${TRAIN[@]}" --data "$data" "$@" --out "$TOOLS/dpo-$name"
	run "$BPO" train --loss bpo --alpha "$ALPHA" "${TRAIN[@]}" --data "$data" "$@" --out "$TOOLS/bpo-$name"
	for L in dpo bpo; do
		run "$BPO" eval --model "$MODEL" --adapter "$TOOLS/$L-$name/adapter.gguf" "${EVAL[@]}" --out "$TOOLS/$L-$name-eval"
	done
}
experiment "ches$CHES_KEEP" "$TOOLS/pairs-ches.jsonl"
for R in $REFRESH; do
	experiment "refresh-${R//:/-}" "$RUNS/pairs.jsonl" --ref-refresh "$R"
done

num() { grep -E "^  \"$2\": *[-0-9.eE+]+" "$1" | head -1 | sed 's/.*: *//; s/,$//'; }
# last KEY of a run's training steps
last() { grep -v '"split":"eval"' "$1/metrics.jsonl" | tail -1 | grep -oE "\"$2\": *[-0-9.eE+]+" | sed 's/.*: *//'; }
row() { # label run-dir eval-dir
	local a b
	a=$(num "$3/summary.json" accuracy) b=$(num "$RUNS/base-eval/summary.json" accuracy)
	printf '| %s | %d | %.1f%% | %+.1f | %.2f | %+.4f |\n' "$1" "$(grep -vc '"split":"eval"' "$2/metrics.jsonl")" \
		"$(awk "BEGIN{print 100*$a}")" "$(awk "BEGIN{print 100*($a-$b)}")" "$(last "$2" dcr_rate)" "$(last "$2" 'rewards/chosen')"
}
{
	echo "# Tools against likelihood displacement on the demo's pairs"
	echo
	echo "Measured by scripts/demo-tools.sh on $(date -u +%Y-%m-%d) in $(( $(date +%s) - T0 )) s ($(nproc) CPU cores); seed $SEED,"
	echo "the demo's model, pairs, beta, learning rate and epochs. Base accuracy $(awk "BEGIN{print 100*$(num "$RUNS/base-eval/summary.json" accuracy)}")%."
	echo "dcr and rewards/chosen are the last training step's (after a refresh they are relative to the refreshed reference)."
	echo
	echo "| run | steps | accuracy | Δ vs base (points) | dcr | rewards/chosen |"
	echo "|---|---|---|---|---|---|"
	for L in dpo bpo; do
		[ -d "$RUNS/$L" ] && row "$L (demo, seed 1)" "$RUNS/$L" "$RUNS/$L-eval"
		row "$L, CHES keep $CHES_KEEP" "$TOOLS/$L-ches$CHES_KEEP" "$TOOLS/$L-ches$CHES_KEEP-eval"
		for R in $REFRESH; do
			row "$L, --ref-refresh $R" "$TOOLS/$L-refresh-${R//:/-}" "$TOOLS/$L-refresh-${R//:/-}-eval"
		done
	done
} > "$OUT/tools-report.md"
cat "$OUT/tools-report.md"
