// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * perf_stream_gen: the synthetic perf ring-buffer streams of
 * tests/fixtures/perf (we have no PMU to record real ones from).
 *
 *   perf_stream_gen --write DIR       write NAME.bin and NAME.meta
 *   perf_stream_gen --check DIR       exit 1 unless DIR holds what --write
 *                                     would write
 *   perf_stream_gen --fuzz-seeds DIR  seed inputs for fuzz_perf_parse
 *
 * Two streams, shaped like what the perf backend's rings hold for a GUPS
 * run (4 threads, 2 CPUs, a 1 GiB table whose 128 MiB hot part gets 90% of
 * the accesses), with the records a recording also contains: COMM, MMAP2,
 * LOST, LOST_SAMPLES, THROTTLE/UNTHROTTLE, samples of a forked child
 * (kernels without inherit_thread), of an unknown event id, and without an
 * address.
 * - pebs-gups: Intel loads + stores events, sample_type IDENTIFIER | TID |
 *   TIME | ADDR | WEIGHT_STRUCT, kinds by event id;
 * - ibs-op: AMD IBS op, the same plus DATA_SRC: loads, stores and non-memory
 *   ops (no address), a few kernel-mode ops with kernel addresses.
 * NAME.meta holds the stream's parameters and the counts tiermm__perf_parse
 * must find (computed here while generating).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf_records.h"

#define PID 4242
#define CHILD 4300
#define NTHREADS 4
#define NCPUS 2
#define ID_BASE 1001
#define TABLE 0x7f1200000000ull
#define TABLE_LEN (1ull << 30)
#define HOT (TABLE + (256ull << 20))
#define HOT_LEN (128ull << 20)
#define NSAMPLES 800

/* Flags as the parser's table takes them (tiering.h TIERMM__PERF_*). */
#define F_STORES 1u
#define F_MEM_OP 2u

struct expect {
	uint64_t samples, loads, stores, no_addr, other_pid, unknown_id;
	uint64_t lost, lost_samples, throttle, unthrottle, other_records, hot;
};

struct scenario {
	const char *name;
	const char *what;
	uint64_t sample_type;
	int ibs;
	struct pbuf bin;
	struct pbuf meta;
	struct expect e;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64*: fixed seed, so the output is reproducible. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t addr_in(uint64_t base, uint64_t len)
{
	return base + (rnd() % (len / 8)) * 8;
}

static void gen(struct scenario *sc)
{
	const uint64_t st = sc->sample_type;
	struct psample s;
	uint64_t t = 5000000000ull;
	struct expect *e = &sc->e;
	char line[256];

	rng_state = 0x9e3779b97f4a7c15ull ^ (uint64_t)sc->ibs;
	memset(&s, 0, sizeof(s));
	s.pid = PID;
	s.tid = PID;
	s.id = ID_BASE;
	s.time = t;
	pr_comm(&sc->bin, st, &s, "gups");
	e->other_records++;
	pr_mmap2(&sc->bin, st, &s, 0x7f5500000000ull, 0x1a5000, "/usr/lib/x86_64-linux-gnu/libc.so.6");
	e->other_records++;

	for (int i = 0; i < NSAMPLES; i++) {
		int thread = (int)(rnd() % NTHREADS), cpu = (int)(rnd() % NCPUS);
		int store, kind = (int)(rnd() % 100);
		bool hot = rnd() % 10 != 0;

		t += 2000 + rnd() % 20000;
		memset(&s, 0, sizeof(s));
		s.pid = PID;
		s.tid = PID + (uint32_t)thread;
		s.time = t;
		if (sc->ibs) {
			/* 60% loads, 20% stores, 20% other ops. */
			store = kind >= 60 && kind < 80;
			s.id = ID_BASE + (uint64_t)(thread * NCPUS + cpu);
			if (kind >= 80) {
				s.data_src = PERF_MEM_S(OP, NA);
				s.addr = 0;
			} else {
				s.addr = hot ? addr_in(HOT, HOT_LEN) : addr_in(TABLE, TABLE_LEN);
				s.data_src = store ? PERF_MEM_S(OP, STORE) :
					     PERF_MEM_S(OP, LOAD) |
					     PERF_MEM_S(LVL, HIT) | PERF_MEM_S(LVL, L3);
				s.weight = store ? 0 : 40 + rnd() % 400;
			}
		} else {
			/* One load event and one store event per thread and CPU. */
			store = kind >= 88;
			s.id = ID_BASE + (uint64_t)((thread * NCPUS + cpu) * 2 + store);
			s.addr = hot ? addr_in(HOT, HOT_LEN) : addr_in(TABLE, TABLE_LEN);
			s.weight = store ? 0 : 64 + rnd() % 600;
		}
		/* Rare oddities, each counted where the parser must count it. */
		if (i % 97 == 13) {
			s.pid = CHILD;
			s.tid = CHILD;
		} else if (i % 211 == 17) {
			s.id = 9999;
		} else if (!sc->ibs && i % 157 == 19) {
			s.addr = 0;
		} else if (sc->ibs && i % 131 == 7) {
			s.addr = 0xffff888012345000ull;	/* a kernel-mode op */
		}
		pr_sample(&sc->bin, st, &s);
		e->samples++;
		if (s.id == 9999) {
			e->unknown_id++;
		} else if (s.pid != PID) {
			e->other_pid++;
		} else if (sc->ibs && !(s.data_src & (PERF_MEM_OP_LOAD | PERF_MEM_OP_STORE))) {
			e->no_addr++;
		} else if (!s.addr || (s.addr >> 63)) {
			e->no_addr++;
		} else {
			if (store)
				e->stores++;
			else
				e->loads++;
			if (s.addr >= HOT && s.addr < HOT + HOT_LEN)
				e->hot++;
		}
		if (i == NSAMPLES / 3) {
			pr_lost(&sc->bin, st, &s, s.id, 17);
			e->lost += 17;
		} else if (i == NSAMPLES / 2) {
			pr_throttle(&sc->bin, st, &s, 0);
			pr_throttle(&sc->bin, st, &s, 1);
			e->throttle++;
			e->unthrottle++;
		} else if (i == 2 * NSAMPLES / 3) {
			pr_lost_samples(&sc->bin, st, &s, 5);
			e->lost_samples += 5;
		}
	}

#define META(...) do {							\
		snprintf(line, sizeof(line), __VA_ARGS__);		\
		pb_put(&sc->meta, line, strlen(line));			\
	} while (0)
	META("# %s.bin: SYNTHETIC perf ring records (%s), written by\n"
	     "# tests/unit/perf_stream_gen.c; no PMU recorded them.\n",
	     sc->name, sc->what);
	META("sample_type=0x%" PRIx64 "\n", st);
	META("pid=%d\n", PID);
	META("flags=0\n");
	META("ids=");
	for (int k = 0; k < NTHREADS * NCPUS * (sc->ibs ? 1 : 2); k++)
		META("%s%d:%u", k ? "," : "", ID_BASE + k,
		     sc->ibs ? F_MEM_OP : (k % 2 ? F_STORES : 0));
	META("\n");
	META("hot=0x%" PRIx64 "-0x%" PRIx64 "\n", (uint64_t)HOT, (uint64_t)(HOT + HOT_LEN));
	META("expect_samples=%" PRIu64 "\n", e->samples);
	META("expect_loads=%" PRIu64 "\n", e->loads);
	META("expect_stores=%" PRIu64 "\n", e->stores);
	META("expect_no_addr=%" PRIu64 "\n", e->no_addr);
	META("expect_other_pid=%" PRIu64 "\n", e->other_pid);
	META("expect_unknown_id=%" PRIu64 "\n", e->unknown_id);
	META("expect_lost=%" PRIu64 "\n", e->lost);
	META("expect_lost_samples=%" PRIu64 "\n", e->lost_samples);
	META("expect_throttle=%" PRIu64 "\n", e->throttle);
	META("expect_unthrottle=%" PRIu64 "\n", e->unthrottle);
	META("expect_other_records=%" PRIu64 "\n", e->other_records);
	META("expect_hot=%" PRIu64 "\n", e->hot);
#undef META
}

static int write_file(const char *dir, const char *name, const char *ext,
		      const struct pbuf *b)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s%s", dir, name, ext);
	f = fopen(path, "wb");
	if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f)) {
		fprintf(stderr, "perf_stream_gen: writing %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

static int check_file(const char *dir, const char *name, const char *ext,
		      const struct pbuf *b)
{
	char path[4096];
	unsigned char *buf = malloc(b->len + 1);
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s%s", dir, name, ext);
	f = fopen(path, "rb");
	if (f) {
		n = fread(buf, 1, b->len + 1, f);
		fclose(f);
	}
	if (!f || n != b->len || memcmp(buf, b->p, n)) {
		fprintf(stderr,
			"perf_stream_gen: %s differs from what the generator writes; regenerate with perf_stream_gen --write %s\n",
			path, dir);
		free(buf);
		return 1;
	}
	free(buf);
	return 0;
}

/* fuzz_perf_parse's input: sample_type, a mode byte, the stream. */
static int write_seed(const char *dir, const char *name, uint64_t st,
		      unsigned char mode, const struct pbuf *stream)
{
	struct pbuf b = { 0 };
	int ret;

	pb_u64(&b, st);
	pb_put(&b, &mode, 1);
	pb_put(&b, stream->p, stream->len);
	ret = write_file(dir, name, ".seed", &b);
	pb_free(&b);
	return ret;
}

int main(int argc, char **argv)
{
	struct scenario sc[] = {
		{ .name = "pebs-gups", .what = "Intel PEBS loads and stores, GUPS-like",
		  .sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID |
				 PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR |
				 PERF_SAMPLE_WEIGHT_STRUCT },
		{ .name = "ibs-op", .what = "AMD IBS op, GUPS-like", .ibs = 1,
		  .sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID |
				 PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR |
				 PERF_SAMPLE_WEIGHT_STRUCT | PERF_SAMPLE_DATA_SRC },
	};
	int ret = 0;

	if (argc != 3 || (strcmp(argv[1], "--write") && strcmp(argv[1], "--check") &&
			  strcmp(argv[1], "--fuzz-seeds"))) {
		fprintf(stderr, "usage: perf_stream_gen --write|--check|--fuzz-seeds DIR\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(sc) / sizeof(sc[0]); i++) {
		gen(&sc[i]);
		if (!strcmp(argv[1], "--write")) {
			ret |= write_file(argv[2], sc[i].name, ".bin", &sc[i].bin);
			ret |= write_file(argv[2], sc[i].name, ".meta", &sc[i].meta);
		} else if (!strcmp(argv[1], "--check")) {
			ret |= check_file(argv[2], sc[i].name, ".bin", &sc[i].bin);
			ret |= check_file(argv[2], sc[i].name, ".meta", &sc[i].meta);
		} else {
			/* mode: bit 1 MEM_OP, bit 2 pid filter, bit 3 id table */
			ret |= write_seed(argv[2], sc[i].name, sc[i].sample_type,
					  (unsigned char)((sc[i].ibs ? 2 : 0) | 4 | 8),
					  &sc[i].bin);
		}
	}
	if (!strcmp(argv[1], "--fuzz-seeds")) {
		struct pbuf b = { 0 };
		struct psample s = { .pid = PID, .tid = PID, .addr = TABLE, .time = 1 };

		pr_sample(&b, PERF_SAMPLE_ADDR, &s);
		ret |= write_seed(argv[2], "one-addr", PERF_SAMPLE_ADDR, 0, &b);
		pb_free(&b);
		s.callchain_nr = 3;
		s.raw_size = 12;
		pr_sample(&b, PERF_SAMPLE_TID | PERF_SAMPLE_ADDR | PERF_SAMPLE_CALLCHAIN |
			      PERF_SAMPLE_RAW, &s);
		ret |= write_seed(argv[2], "callchain-raw",
				  PERF_SAMPLE_TID | PERF_SAMPLE_ADDR |
				  PERF_SAMPLE_CALLCHAIN | PERF_SAMPLE_RAW, 4, &b);
		pb_free(&b);
	}
	for (size_t i = 0; i < sizeof(sc) / sizeof(sc[0]); i++) {
		pb_free(&sc[i].bin);
		pb_free(&sc[i].meta);
	}
	return ret;
}
