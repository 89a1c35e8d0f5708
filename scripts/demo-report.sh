#!/usr/bin/env bash
# Writes the demo's markdown report to stdout from the files the demo's bpo commands wrote.
#   PREF_SEEDS="1 2 3" scripts/demo-report.sh DEMO_OUT RECIPE SECONDS
set -euo pipefail
OUT=$1 RECIPE=$2 SECS=$3
RUNS="$OUT/runs"
PREF_SEEDS=${PREF_SEEDS:-1}
runname() { if [ "$2" = "${PREF_SEEDS%% *}" ]; then echo "$1"; else echo "$1-s$2"; fi; }

# num FILE KEY: the number of the top-level "KEY" of an indented JSON file (bpo eval's summary.json).
num() { grep -E "^  \"$2\": *[-0-9.eE+]+" "$1" | head -1 | sed 's/.*: *//; s/,$//'; }

# curve RUN: rewards and log-probs of the training steps at five points of the run (first .. last).
curve() {
	awk '
	!/"split":"eval"/ && /"rewards\/chosen"/ {
		n++
		for (i = 1; i <= 7; i++) { v[n, i] = "" }
		split("step rewards/chosen rewards/rejected rewards/margins dcr_rate logps/chosen loss", k, " ")
		for (i = 1; i <= 7; i++) {
			if (match($0, "\"" k[i] "\": *[-0-9.eE+]+")) {
				s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); v[n, i] = s
			}
		}
	}
	END {
		if (n == 0) { print "| (no training steps found) |"; exit }
		split("1 " int(n/4) " " int(n/2) " " int(3*n/4) " " n, pick, " ")
		last = -1
		for (j = 1; j <= 5; j++) {
			r = pick[j]; if (r < 1) r = 1; if (r == last) continue; last = r
			printf "| %s | %.4f | %.4f | %.4f | %.2f | %.2f | %.4f |\n", v[r,1], v[r,2], v[r,3], v[r,4], v[r,5], v[r,6], v[r,7]
		}
	}' "$1/metrics.jsonl"
}

acc() {
	local s="$RUNS/$1-eval/summary.json"
	printf '| %s | %.1f%% | [%.1f%%, %.1f%%] | %s / %s |\n' "$1" \
		"$(awk "BEGIN{print 100*$(num "$s" accuracy)}")" "$(awk "BEGIN{print 100*$(num "$s" ci_low)}")" \
		"$(awk "BEGIN{print 100*$(num "$s" ci_high)}")" "$(num "$s" correct)" "$(num "$s" n)"
}

cat <<HEAD
# bpo demo report

Measured by \`make demo\` (scripts/demo.sh) on $(date -u +%Y-%m-%d) in ${SECS} s ($(nproc) CPU cores), recipe \`$RECIPE\`.
Task: synthetic grade-school math (\`bpo data mathgen\`), greedy zero-shot answers graded against \`#### N\`.

## Accuracy on the held-out test split

| model | accuracy | 95% Wilson CI | correct |
|---|---|---|---|
HEAD
acc base
acc dpo
acc bpo
cat <<MID

Paired comparison (\`bpo compare\`: difference to the base model, paired bootstrap 95% CI, exact McNemar p-value):

MID
cat "$OUT/compare.md"

# seeds: one row per preference seed, then the mean, sample standard deviation and range of each delta
cat <<SEEDS

## Over preference seeds

The preference seed sets the LoRA initialisation and the data order; the SFT model and the pairs are the
same. Accuracy in %, deltas in points against the base model (${PREF_SEEDS// /, }):

| seed | dpo | bpo | Δ dpo | Δ bpo |
|---|---|---|---|---|
SEEDS
base=$(num "$RUNS/base-eval/summary.json" accuracy)
for S in $PREF_SEEDS; do
	printf '%s %s %s %s\n' "$S" "$base" "$(num "$RUNS/$(runname dpo "$S")-eval/summary.json" accuracy)" \
		"$(num "$RUNS/$(runname bpo "$S")-eval/summary.json" accuracy)"
done | awk '
	{ d = 100 * ($3 - $2); b = 100 * ($4 - $2); n++; sd += d; sb += b; qd += d * d; qb += b * b
	  if (n == 1 || d < mind) mind = d; if (n == 1 || d > maxd) maxd = d
	  if (n == 1 || b < minb) minb = b; if (n == 1 || b > maxb) maxb = b
	  printf "| %s | %.1f | %.1f | %+.1f | %+.1f |\n", $1, 100 * $3, 100 * $4, d, b }
	END {
		md = sd / n; mb = sb / n
		vd = n > 1 ? (qd - n * md * md) / (n - 1) : 0; vb = n > 1 ? (qb - n * mb * mb) / (n - 1) : 0
		printf "| mean ± sd (%d seeds) | | | %+.1f ± %.1f | %+.1f ± %.1f |\n", n, md, sqrt(vd > 0 ? vd : 0), mb, sqrt(vb > 0 ? vb : 0)
		printf "| range | | | [%+.1f, %+.1f] | [%+.1f, %+.1f] |\n", mind, maxd, minb, maxb
	}'
cat <<MID

## Preference training

$(wc -l < "$RUNS/pairs.jsonl") on-policy pairs (a correct and an incorrect sample of the SFT model on the same train question);
DPO and BPO used the same pairs, seed, beta, learning rate and steps. Rewards are beta times the policy/reference
log-ratio; a chosen reward below zero is the BPO paper's Degraded Chosen Response (dcr = share of such pairs).

![rewards](rewards.png)

DPO:

| step | rewards/chosen | rewards/rejected | margins | dcr | logps/chosen | loss |
|---|---|---|---|---|---|---|
$(curve "$RUNS/dpo")

BPO:

| step | rewards/chosen | rewards/rejected | margins | dcr | logps/chosen | loss |
|---|---|---|---|---|---|---|
$(curve "$RUNS/bpo")
MID
