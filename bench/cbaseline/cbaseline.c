// C baseline of the bridge benchmark: the same work as the Go bridge (bench/bridge/runner.go), written
// directly against llama.h: batched scoring of prompts with completions sharing the prompt's KV cells,
// and greedy generation of several sequences with continuous batching.

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "llama.h"

#define MAX_COMPLETIONS 16

typedef struct {
	int n;
	llama_token * ids;
} toks_t;

typedef struct {
	toks_t prompt;
	int n_comp;
	toks_t comp[MAX_COMPLETIONS];
} req_t;

typedef struct {
	char model[4096];
	char mode[16];
	int threads, n_ctx, n_batch, n_seq, max_tokens, repack, n_req;
	req_t * reqs;
} work_t;

static void quiet_log(enum ggml_log_level level, const char * text, void * user) {
	(void) user;
	if (level == GGML_LOG_LEVEL_ERROR) {
		fputs(text, stderr);
	}
}

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

// cpu_s is this process's user+system CPU time in seconds.
static double cpu_s(void) {
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
	return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int read_ids(FILE * f, toks_t * t) {
	if (fscanf(f, "%d", &t->n) != 1 || t->n < 0) return -1;
	t->ids = malloc(sizeof(llama_token) * (size_t) (t->n > 0 ? t->n : 1));
	for (int i = 0; i < t->n; i++) {
		if (fscanf(f, "%d", &t->ids[i]) != 1) return -1;
	}
	return 0;
}

// read_work parses the work file format of bench/bridge/work.go.
static int read_work(const char * path, work_t * w) {
	FILE * f = fopen(path, "r");
	if (!f) { perror(path); return -1; }
	char key[64];
	int ver = 0;
	memset(w, 0, sizeof(*w));
	if (fscanf(f, "%63s %d", key, &ver) != 2 || strcmp(key, "bpo-bench-work") != 0 || ver != 1) {
		fprintf(stderr, "%s: not a bench work file\n", path);
		fclose(f);
		return -1;
	}
	int r = -1;
	while (fscanf(f, "%63s", key) == 1) {
		if (!strcmp(key, "model")) { if (fscanf(f, "%4095s", w->model) != 1) break; }
		else if (!strcmp(key, "mode")) { if (fscanf(f, "%15s", w->mode) != 1) break; }
		else if (!strcmp(key, "threads")) { if (fscanf(f, "%d", &w->threads) != 1) break; }
		else if (!strcmp(key, "n_ctx")) { if (fscanf(f, "%d", &w->n_ctx) != 1) break; }
		else if (!strcmp(key, "n_batch")) { if (fscanf(f, "%d", &w->n_batch) != 1) break; }
		else if (!strcmp(key, "n_seq")) { if (fscanf(f, "%d", &w->n_seq) != 1) break; }
		else if (!strcmp(key, "max_tokens")) { if (fscanf(f, "%d", &w->max_tokens) != 1) break; }
		else if (!strcmp(key, "repack")) { if (fscanf(f, "%d", &w->repack) != 1) break; }
		else if (!strcmp(key, "requests")) {
			if (fscanf(f, "%d", &w->n_req) != 1 || w->n_req <= 0) break;
			w->reqs = calloc((size_t) w->n_req, sizeof(req_t));
		}
		else if (!strcmp(key, "P")) {
			if (!w->reqs || r + 1 >= w->n_req) break;
			r++;
			if (read_ids(f, &w->reqs[r].prompt)) break;
		}
		else if (!strcmp(key, "C")) {
			if (r < 0 || w->reqs[r].n_comp >= MAX_COMPLETIONS) break;
			if (read_ids(f, &w->reqs[r].comp[w->reqs[r].n_comp++])) break;
		}
		else if (!strcmp(key, "end")) {
			fclose(f);
			return r + 1 == w->n_req ? 0 : -1;
		}
		else break;
	}
	fprintf(stderr, "%s: malformed near \"%s\"\n", path, key);
	fclose(f);
	return -1;
}

// log_softmax_at returns log softmax(row)[tok], accumulating the normaliser in double.
static double log_softmax_at(const float * row, int n, int tok) {
	float mx = row[0];
	for (int i = 1; i < n; i++) if (row[i] > mx) mx = row[i];
	double sum = 0.0;
	float part = 0.0f;
	for (int i = 0; i < n; i++) {
		part += expf(row[i] - mx);
		if ((i & 255) == 255) { sum += part; part = 0.0f; }
	}
	sum += part;
	return (double) (row[tok] - mx) - log(sum);
}

typedef struct {
	llama_token tok;
	int pos, seq, logits;
	int req, comp, next; // owner request, completion (-1: prompt), index of the token to score
} item_t;

// decode_items decodes items in chunks of n_batch and adds the log-probs they ask for to *total.
static int decode_items(struct llama_context * ctx, struct llama_batch * b, int n_batch, int n_vocab,
                        const item_t * it, int n, const req_t * reqs, double * total) {
	for (int start = 0; start < n; start += n_batch) {
		int end = start + n_batch < n ? start + n_batch : n;
		b->n_tokens = 0;
		for (int k = start; k < end; k++) {
			int i = b->n_tokens++;
			b->token[i] = it[k].tok;
			b->pos[i] = it[k].pos;
			b->n_seq_id[i] = 1;
			b->seq_id[i][0] = it[k].seq;
			b->logits[i] = (int8_t) it[k].logits;
		}
		if (llama_decode(ctx, *b) != 0) { fprintf(stderr, "llama_decode failed\n"); return -1; }
		for (int k = start; k < end; k++) {
			if (!it[k].logits) continue;
			const float * row = llama_get_logits_ith(ctx, k - start);
			const req_t * r = &reqs[it[k].req];
			if (it[k].comp < 0) {
				for (int j = 0; j < r->n_comp; j++) {
					if (r->comp[j].n > 0) *total += log_softmax_at(row, n_vocab, r->comp[j].ids[0]);
				}
			} else {
				*total += log_softmax_at(row, n_vocab, r->comp[it[k].comp].ids[it[k].next]);
			}
		}
	}
	return 0;
}

// score_wave scores requests that fit into the KV cache together: prompts first (one sequence each),
// then every completion in its own sequence that shares the prompt's cells.
static int score_wave(struct llama_context * ctx, struct llama_batch * b, int n_batch, int n_vocab,
                      const req_t * reqs, int n, double * total) {
	llama_memory_t mem = llama_get_memory(ctx);
	llama_memory_clear(mem, true);
	int cap = 0;
	for (int i = 0; i < n; i++) {
		cap += reqs[i].prompt.n;
		for (int j = 0; j < reqs[i].n_comp; j++) cap += reqs[i].comp[j].n;
	}
	item_t * it = malloc(sizeof(item_t) * (size_t) cap);
	int * pseq = malloc(sizeof(int) * (size_t) n);
	int m = 0, seq = 0;
	for (int i = 0; i < n; i++) {
		pseq[i] = seq;
		for (int p = 0; p < reqs[i].prompt.n; p++) {
			it[m++] = (item_t) { reqs[i].prompt.ids[p], p, seq, p == reqs[i].prompt.n - 1, i, -1, 0 };
		}
		seq += 1 + reqs[i].n_comp;
	}
	int rc = decode_items(ctx, b, n_batch, n_vocab, it, m, reqs, total);
	m = 0;
	for (int i = 0; rc == 0 && i < n; i++) {
		for (int j = 0; j < reqs[i].n_comp; j++) {
			int s = pseq[i] + 1 + j;
			llama_memory_seq_cp(mem, pseq[i], s, 0, reqs[i].prompt.n);
			const toks_t * c = &reqs[i].comp[j];
			for (int p = 0; p < c->n; p++) {
				it[m++] = (item_t) { c->ids[p], reqs[i].prompt.n + p, s, p < c->n - 1, i, j, p + 1 };
			}
		}
	}
	if (rc == 0) rc = decode_items(ctx, b, n_batch, n_vocab, it, m, reqs, total);
	llama_memory_clear(mem, true);
	free(it);
	free(pseq);
	return rc;
}

// score_all packs as many requests per wave as fit into n_ctx cells and n_seq sequences.
static int score_all(struct llama_context * ctx, struct llama_batch * b, const work_t * w, int n_vocab,
                     const req_t * reqs, int n, double * total) {
	for (int start = 0; start < n;) {
		int end = start, cells = 0, seqs = 0;
		while (end < n) {
			int need = reqs[end].prompt.n;
			for (int j = 0; j < reqs[end].n_comp; j++) need += reqs[end].comp[j].n;
			if (cells + need > w->n_ctx || seqs + 1 + reqs[end].n_comp > w->n_seq) break;
			cells += need;
			seqs += 1 + reqs[end].n_comp;
			end++;
		}
		if (end == start) { fprintf(stderr, "request %d does not fit the context\n", start); return -1; }
		if (score_wave(ctx, b, w->n_batch, n_vocab, reqs + start, end - start, total)) return -1;
		start = end;
	}
	return 0;
}

typedef struct {
	int req;           // request index, -1: free
	int pending_from;  // index into prompt of the first pending prompt token, or -1 once decoded
	llama_token next;  // token to feed after the prompt
	int pos, n_gen, reserved;
	llama_token * gen;
	char * text;
	size_t text_len, text_cap;
} slot_t;

static llama_token argmax_row(const float * row, int n) {
	int best = 0;
	for (int i = 1; i < n; i++) if (row[i] > row[best]) best = i;
	return best;
}

// generate_all decodes every request greedily with continuous batching (as llama.Context.Generate):
// free slots admit waiting requests while their prompt + max_tokens cells fit; each decode holds the
// pending tokens of every active slot; a slot ends on an end-of-generation token or max_tokens, and
// its text is built from token pieces.
static int generate_all(struct llama_context * ctx, struct llama_batch * b, const struct llama_model * model,
                        const work_t * w, int * n_gen_total, uint64_t * hash) {
	const struct llama_vocab * vocab = llama_model_get_vocab(model);
	int n_vocab = llama_vocab_n_tokens(vocab);
	llama_memory_t mem = llama_get_memory(ctx);
	llama_memory_clear(mem, true);
	int n_slots = w->n_seq;
	slot_t * slots = calloc((size_t) n_slots, sizeof(slot_t));
	for (int s = 0; s < n_slots; s++) slots[s].req = -1;
	llama_token ** results = calloc((size_t) w->n_req, sizeof(llama_token *));
	int * result_n = calloc((size_t) w->n_req, sizeof(int));
	int * owner = malloc(sizeof(int) * (size_t) w->n_batch);
	int next_req = 0, finished = 0, used = 0;
	char piece[256];
	while (finished < w->n_req) {
		for (int s = 0; s < n_slots && next_req < w->n_req; s++) {
			if (slots[s].req >= 0) continue;
			int need = w->reqs[next_req].prompt.n + w->max_tokens;
			if (used + need > w->n_ctx) break;
			slot_t * sl = &slots[s];
			memset(sl, 0, sizeof(*sl));
			sl->req = next_req++;
			sl->reserved = need;
			sl->gen = malloc(sizeof(llama_token) * (size_t) w->max_tokens);
			used += need;
		}
		b->n_tokens = 0;
		for (int s = 0; s < n_slots; s++) {
			slot_t * sl = &slots[s];
			if (sl->req < 0) continue;
			const toks_t * p = &w->reqs[sl->req].prompt;
			if (sl->pending_from >= 0) {
				int room = w->n_batch - b->n_tokens;
				int k = p->n - sl->pending_from;
				if (k > room) k = room;
				for (int q = 0; q < k; q++) {
					int i = b->n_tokens++;
					b->token[i] = p->ids[sl->pending_from + q];
					b->pos[i] = sl->pos++;
					b->n_seq_id[i] = 1;
					b->seq_id[i][0] = s;
					b->logits[i] = sl->pending_from + q == p->n - 1;
					owner[i] = s;
				}
				sl->pending_from += k;
				if (sl->pending_from == p->n) sl->pending_from = -1;
			} else if (b->n_tokens < w->n_batch) {
				int i = b->n_tokens++;
				b->token[i] = sl->next;
				b->pos[i] = sl->pos++;
				b->n_seq_id[i] = 1;
				b->seq_id[i][0] = s;
				b->logits[i] = 1;
				owner[i] = s;
			}
		}
		if (b->n_tokens == 0) { fprintf(stderr, "no request fits the context\n"); return -1; }
		if (llama_decode(ctx, *b) != 0) { fprintf(stderr, "llama_decode failed\n"); return -1; }
		for (int i = 0; i < b->n_tokens; i++) {
			if (!b->logits[i]) continue;
			slot_t * sl = &slots[owner[i]];
			llama_token tok = argmax_row(llama_get_logits_ith(ctx, i), n_vocab);
			if (llama_vocab_is_eog(vocab, tok)) { sl->req = -(sl->req + 2); continue; } // done
			int n = llama_token_to_piece(vocab, tok, piece, sizeof(piece), 0, true);
			if (n < 0) n = 0;
			if (sl->text_len + (size_t) n + 1 > sl->text_cap) {
				sl->text_cap = 2 * (sl->text_len + (size_t) n + 64);
				sl->text = realloc(sl->text, sl->text_cap);
			}
			memcpy(sl->text + sl->text_len, piece, (size_t) n);
			sl->text_len += (size_t) n;
			sl->gen[sl->n_gen++] = tok;
			if (sl->n_gen >= w->max_tokens) { sl->req = -(sl->req + 2); continue; }
			sl->next = tok;
		}
		for (int s = 0; s < n_slots; s++) {
			slot_t * sl = &slots[s];
			if (sl->req > -2) continue;
			int r = -sl->req - 2;
			results[r] = sl->gen;
			result_n[r] = sl->n_gen;
			free(sl->text);
			llama_memory_seq_rm(mem, s, -1, -1);
			used -= sl->reserved;
			sl->req = -1;
			finished++;
		}
	}
	*n_gen_total = 0;
	*hash = 0;
	for (int r = 0; r < w->n_req; r++) {
		*n_gen_total += result_n[r];
		for (int k = 0; k < result_n[r]; k++) *hash = *hash * 31 + (uint64_t) (uint32_t) results[r][k];
		free(results[r]);
	}
	llama_memory_clear(mem, true);
	free(results);
	free(result_n);
	free(owner);
	free(slots);
	return 0;
}

int bpo_cbaseline_main(int argc, char ** argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: cbaseline WORKFILE\n");
		return 2;
	}
	work_t w;
	if (read_work(argv[1], &w)) return 1;
	llama_log_set(quiet_log, NULL);
	llama_backend_init();

	struct llama_model_params mp = llama_model_default_params();
	mp.n_gpu_layers = 0;
	mp.use_mmap = true;
	mp.use_extra_bufts = w.repack != 0; // the Go bridge keeps plain CPU buffers (no repacking)
	struct llama_model * model = llama_model_load_from_file(w.model, mp);
	if (!model) { fprintf(stderr, "cannot load %s\n", w.model); return 1; }

	struct llama_context_params cp = llama_context_default_params();
	cp.n_ctx = (uint32_t) w.n_ctx;
	cp.n_batch = (uint32_t) w.n_batch;
	cp.n_ubatch = (uint32_t) w.n_batch;
	cp.n_seq_max = (uint32_t) w.n_seq;
	cp.n_threads = w.threads;
	cp.n_threads_batch = w.threads;
	cp.kv_unified = true;
	cp.no_perf = true;
	cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
	cp.type_k = GGML_TYPE_F32;
	cp.type_v = GGML_TYPE_F32;
	struct llama_context * ctx = llama_init_from_model(model, cp);
	if (!ctx) { fprintf(stderr, "cannot create a context\n"); return 1; }
	struct llama_batch b = llama_batch_init(w.n_batch, 0, 1);
	int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

	// Warm-up, as in the Go runner: greedy generation of 1 token after the first 8 of the first prompt.
	work_t warm = w;
	req_t warm_req = { { 8, w.reqs[0].prompt.ids }, 0, { { 0, NULL } } };
	warm.n_req = 1;
	warm.reqs = &warm_req;
	warm.max_tokens = 1;
	int warm_n = 0;
	uint64_t warm_hash = 0;
	if (generate_all(ctx, &b, model, &warm, &warm_n, &warm_hash)) return 1;

	int tokens = 0;
	for (int i = 0; i < w.n_req; i++) {
		tokens += w.reqs[i].prompt.n;
		for (int j = 0; j < w.reqs[i].n_comp; j++) tokens += w.reqs[i].comp[j].n;
	}
	double check = 0, t0 = 0, t1 = 0, c0 = 0, c1 = 0;
	int n_gen = 0;
	uint64_t hash = 0;
	if (!strcmp(w.mode, "score")) {
		t0 = now_s();
		c0 = cpu_s();
		if (score_all(ctx, &b, &w, n_vocab, w.reqs, w.n_req, &check)) return 1;
		c1 = cpu_s();
		t1 = now_s();
	} else if (!strcmp(w.mode, "gen")) {
		t0 = now_s();
		c0 = cpu_s();
		if (generate_all(ctx, &b, model, &w, &n_gen, &hash)) return 1;
		c1 = cpu_s();
		t1 = now_s();
	} else {
		fprintf(stderr, "unknown mode %s\n", w.mode);
		return 1;
	}
	printf("{\"impl\":\"c\",\"mode\":\"%s\",\"seconds\":%.6f,\"cpu_seconds\":%.6f,\"tokens\":%d,\"gen_tokens\":%d,\"check\":%.9g,\"hash\":%llu}\n",
	       w.mode, t1 - t0, c1 - c0, tokens, n_gen, check, (unsigned long long) hash);
	fflush(stdout);
	llama_batch_free(b);
	llama_free(ctx);
	llama_model_free(model);
	llama_backend_free();
	return 0;
}
