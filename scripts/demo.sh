#!/usr/bin/env bash
# The bpo demo: a small math model trained from scratch, then DPO vs BPO on its own samples.
# Every step is a `bpo` subcommand a user can run on their own model (see README "Demo").
#
#   scripts/demo.sh            (or: make demo)
#
# Settings (environment): BPO (the CLI, default bin/bpo), DEMO_OUT (default demo-out), SEED (default 1),
# PREF_SEEDS (default "1 2 3": DPO and BPO are trained and evaluated once per seed, which sets the LoRA
# initialisation and the data order; the first seed's runs are runs/dpo and runs/bpo, the others
# runs/dpo-sN and runs/bpo-sN),
# THREADS (training threads) and GEN_THREADS (generation threads), both 1 by default: the demo model is
# so small that ggml's per-operation thread barriers cost more than a second thread gains whenever the
# two cores are shared with anything else (measured: bpo eval 258 s with 2 threads vs 23 s with 1 on a
# busy 2-core machine); on an idle machine THREADS=2 may be faster.
# The SFT model is cached in $DEMO_OUT/cache/<recipe>/model.gguf and reused by later runs (delete the
# folder to retrain; an interrupted SFT resumes from its last checkpoint). Everything after it (evaluations,
# pairs, DPO/BPO runs in $DEMO_OUT/runs) is recomputed on every run: it takes about three minutes.
set -euo pipefail

BPO=${BPO:-bin/bpo}
OUT=${DEMO_OUT:-demo-out}
SEED=${SEED:-1}
THREADS=${THREADS:-1}
GEN_THREADS=${GEN_THREADS:-1}
PREF_SEEDS=${PREF_SEEDS:-1 2 3}

# The recipe (each setting may be overridden from the environment). Changing one changes the cache key.
LEVELS=${LEVELS:-1-2}              # arithmetic steps per problem
MAX_VALUE=${MAX_VALUE:-100}        # every intermediate and final result is below this
N_TRAIN=${N_TRAIN:-8000}           # train problems (SFT data and the questions of the pairs)
N_TEST=${N_TEST:-200}              # held-out test problems
LAYERS=${LAYERS:-4} EMBD=${EMBD:-64} FF=${FF:-192} HEADS=${HEADS:-4}
SFT_LR=${SFT_LR:-3e-3} SFT_BATCH=${SFT_BATCH:-16} SFT_EPOCHS=${SFT_EPOCHS:-3}
PAIR_QUESTIONS=${PAIR_QUESTIONS:-800} PAIR_K=${PAIR_K:-4}   # on-policy samples per train question
PREF_LR=${PREF_LR:-2e-3} PREF_EPOCHS=${PREF_EPOCHS:-2} PREF_BATCH=${PREF_BATCH:-8}
BETA=${BETA:-0.1} ALPHA=${ALPHA:-0.3}
MAX_NEW=${MAX_NEW:-128}
PROMPT=gsm8k-fewshot   # "Question: q\nAnswer:" (zero-shot here; on a real base model add --shots 5 --shots-data)

RECIPE="mathgen-v1-L${LEVELS}-max${MAX_VALUE}-n${N_TRAIN}-s${SEED}-llama-${LAYERS}x${EMBD}-ff${FF}-h${HEADS}-lr${SFT_LR}-b${SFT_BATCH}-e${SFT_EPOCHS}"
CACHE="$OUT/cache/$RECIPE"
DATA="$OUT/data"
RUNS="$OUT/runs"
T0=$(date +%s)

step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

[ -x "$BPO" ] || { echo "demo: $BPO not found; run 'make build' (make demo does)" >&2; exit 1; }
rm -rf "$RUNS" # bpo eval/pairs/train resume existing runs; the demo starts them afresh
mkdir -p "$OUT" "$RUNS" "$CACHE"

step "1/9 synthetic math task"
run "$BPO" data mathgen --train "$N_TRAIN" --test "$N_TEST" --levels "$LEVELS" --max-value "$MAX_VALUE" \
	--seed "$SEED" --out "$DATA"

MODEL="$CACHE/model.gguf"
if [ -f "$MODEL" ]; then
	step "2/9 model: cached $MODEL (delete $CACHE to retrain)"
else
	step "2/9 model: random llama-architecture model with the demo tokenizer, then full-parameter SFT"
	run "$BPO" model random --arch llama --vocab math --layers "$LAYERS" --embedding "$EMBD" --ff "$FF" \
		--heads "$HEADS" --context-length 512 --seed "$SEED" --out "$CACHE/init.gguf"
	run "$BPO" sft --full --model "$CACHE/init.gguf" --data "$DATA/train.jsonl" --out "$CACHE/sft" \
		--lr "$SFT_LR" --scheduler cosine --warmup-ratio 0.03 --batch-size "$SFT_BATCH" --epochs "$SFT_EPOCHS" \
		--max-length 256 --seed "$SEED" --save-every 50 --threads "$THREADS"
	cp "$CACHE/sft/model.gguf" "$MODEL.tmp" && mv "$MODEL.tmp" "$MODEL"
fi

EVAL=(--benchmark gsm8k --data "$DATA/test.jsonl" --prompt "$PROMPT" --max-new-tokens "$MAX_NEW" --parallel 8 --threads "$GEN_THREADS")

step "3/9 baseline evaluation on the test split"
run "$BPO" eval --model "$MODEL" "${EVAL[@]}" --out "$RUNS/base-eval"

step "4/9 on-policy pairs from $PAIR_K samples per train question"
run "$BPO" pairs --model "$MODEL" --benchmark gsm8k --data "$DATA/train.jsonl" --prompt "$PROMPT" \
	--limit "$PAIR_QUESTIONS" --n "$PAIR_K" --temperature 1 --seed "$SEED" --max-new-tokens "$MAX_NEW" \
	--parallel 8 --threads "$GEN_THREADS" --out "$RUNS/pairs.jsonl"

TRAIN=(--model "$MODEL" --data "$RUNS/pairs.jsonl" --beta "$BETA" --lr "$PREF_LR" --epochs "$PREF_EPOCHS"
	--batch-size "$PREF_BATCH" --max-length 256 --threads "$THREADS")

# run name of a loss and a preference seed: the first seed keeps the plain name
runname() { if [ "$2" = "${PREF_SEEDS%% *}" ]; then echo "$1"; else echo "$1-s$2"; fi; }

for S in $PREF_SEEDS; do
	step "5/9 DPO (LoRA), seed $S"
	run "$BPO" train --loss dpo "${TRAIN[@]}" --seed "$S" --out "$RUNS/$(runname dpo "$S")"

	step "6/9 BPO (LoRA, same pairs and seed $S)"
	run "$BPO" train --loss bpo --alpha "$ALPHA" "${TRAIN[@]}" --seed "$S" --out "$RUNS/$(runname bpo "$S")"

	step "7/9 evaluate both adapters, seed $S"
	for L in dpo bpo; do
		R=$(runname "$L" "$S")
		run "$BPO" eval --model "$MODEL" --adapter "$RUNS/$R/adapter.gguf" "${EVAL[@]}" --out "$RUNS/$R-eval"
	done
done

step "8/9 compare and plot"
run "$BPO" compare --names base,dpo,bpo --out "$OUT/compare.md" "$RUNS/base-eval" "$RUNS/dpo-eval" "$RUNS/bpo-eval"
run "$BPO" plot --out "$OUT/rewards.png" "$RUNS/dpo" "$RUNS/bpo"

step "9/9 report"
PREF_SEEDS="$PREF_SEEDS" "$(dirname "$0")/demo-report.sh" "$OUT" "$RECIPE" "$(( $(date +%s) - T0 ))" > "$OUT/report.md.tmp"
mv "$OUT/report.md.tmp" "$OUT/report.md"
echo
cat "$OUT/compare.md"
printf '\ndemo: done in %ss; report: %s/report.md, plot: %s/rewards.png\n' "$(( $(date +%s) - T0 ))" "$OUT" "$OUT"
