// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Hotness backends: the perf record parser on synthetic streams (several
 * sample_types, every record kind, truncated / oversized / garbage input),
 * the ring drain, the synthetic fixtures of tests/fixtures/perf, the perf
 * backend end to end with software page-fault events (no PMU needed), the
 * scan backend against a fake tiermm.ko, the damon backend's sysfs protocol
 * against a fake tree, and backend choice on this host.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/perf_event.h>
#include <linux/tiermm.h>

#include "internal.h"
#include "tiering.h"
#include "perf_records.h"

#define MIB (1ull << 20)

/* ---- Collecting observations ------------------------------------------- */

struct coll {
	struct tiermm__obs *o;
	size_t n, cap;
	size_t calls;
	int fail_after;		/* sink fails with -EIO after this many calls */
};

static int coll_sink(const struct tiermm__obs *obs, size_t n, void *ctx)
{
	struct coll *c = ctx;

	c->calls++;
	if (c->fail_after && c->calls > (size_t)c->fail_after)
		return -EIO;
	if (c->n + n > c->cap) {
		c->cap = (c->n + n) * 2;
		c->o = realloc(c->o, c->cap * sizeof(*c->o));
		assert_non_null(c->o);
	}
	memcpy(c->o + c->n, obs, n * sizeof(*obs));
	c->n += n;
	return 0;
}

static void coll_free(struct coll *c)
{
	free(c->o);
	memset(c, 0, sizeof(*c));
}

/* Parse a copy of exactly len bytes, so ASan sees any read past it. */
static int parse_exact(const void *data, size_t len,
		       const struct tiermm__perf_stream *s, struct coll *c,
		       struct tiermm__perf_counts *counts)
{
	unsigned char *copy = malloc(len ? len : 1);
	int ret;

	assert_non_null(copy);
	memcpy(copy, data, len);
	ret = tiermm__perf_parse(copy, len, s, coll_sink, c, counts);
	free(copy);
	return ret;
}

/* ---- Parser: well-formed streams ----------------------------------------- */

static const uint64_t sample_types[] = {
	PERF_SAMPLE_ADDR,
	PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR,
	PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
		PERF_SAMPLE_ADDR | PERF_SAMPLE_WEIGHT_STRUCT,
	PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
		PERF_SAMPLE_ADDR | PERF_SAMPLE_WEIGHT | PERF_SAMPLE_DATA_SRC,
	/* everything the parser can size */
	PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID |
		PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR | PERF_SAMPLE_ID |
		PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU | PERF_SAMPLE_PERIOD |
		PERF_SAMPLE_CALLCHAIN | PERF_SAMPLE_RAW | PERF_SAMPLE_WEIGHT |
		PERF_SAMPLE_DATA_SRC | PERF_SAMPLE_TRANSACTION |
		PERF_SAMPLE_PHYS_ADDR | PERF_SAMPLE_CGROUP |
		PERF_SAMPLE_DATA_PAGE_SIZE | PERF_SAMPLE_CODE_PAGE_SIZE,
	PERF_SAMPLE_ID | PERF_SAMPLE_TID | PERF_SAMPLE_ADDR | PERF_SAMPLE_CALLCHAIN,
};

/* A stream of nsamples loads at 0x10000 + i * 64, with other records. */
static void build_stream(struct pbuf *b, uint64_t st, int nsamples)
{
	struct psample s;

	memset(&s, 0, sizeof(s));
	s.pid = 100;
	s.tid = 101;
	s.id = 7;
	pr_comm(b, st, &s, "worker");
	pr_mmap2(b, st, &s, 0x400000, 0x1000, "/bin/true");
	for (int i = 0; i < nsamples; i++) {
		s.time = 1000 + (uint64_t)i;
		s.addr = 0x10000 + (uint64_t)i * 64;
		s.ip = 0x401000;
		s.cpu = (uint32_t)i % 2;
		s.period = 4093;
		s.callchain_nr = (uint32_t)i % 3;
		s.raw_size = (i % 2) ? 4 : 12;	/* 4 + size is a multiple of 8 */
		s.weight = (uint64_t)i + 1;
		s.data_src = PERF_MEM_S(OP, LOAD);
		pr_sample(b, st, &s);
		if (i == 3)
			pr_lost(b, st, &s, 7, 11);
		if (i == 5) {
			pr_throttle(b, st, &s, 0);
			pr_throttle(b, st, &s, 1);
		}
		if (i == 6)
			pr_lost_samples(b, st, &s, 2);
	}
}

static void test_parse_sample_types(void **state)
{
	(void)state;
	for (size_t t = 0; t < TIERMM__ARRAY_SIZE(sample_types); t++) {
		uint64_t st = sample_types[t];
		struct tiermm__perf_stream s = { .sample_type = st, .now_ns = 555 };
		struct tiermm__perf_counts c;
		struct coll col = { 0 };
		struct pbuf b = { 0 };
		int ret;

		build_stream(&b, st, 300);
		memset(&c, 0, sizeof(c));
		ret = parse_exact(b.p, b.len, &s, &col, &c);
		assert_int_equal(ret, 300);
		assert_int_equal(col.n, 300);
		assert_int_equal(c.samples, 300);
		assert_int_equal(c.loads, 300);
		assert_int_equal(c.stores, 0);
		assert_int_equal(c.lost, 11);
		assert_int_equal(c.lost_samples, 2);
		assert_int_equal(c.throttle, 1);
		assert_int_equal(c.unthrottle, 1);
		assert_int_equal(c.other_records, 2);
		for (size_t i = 0; i < col.n; i++) {
			assert_int_equal(col.o[i].addr, 0x10000 + i * 64);
			assert_int_equal(col.o[i].weight, 1);
			assert_int_equal(col.o[i].hits, 0);
			assert_int_equal(col.o[i].flags, 0);
			assert_int_equal(col.o[i].time_ns,
					 (st & PERF_SAMPLE_TIME) ? 1000 + i : 555);
		}
		if (st & (PERF_SAMPLE_WEIGHT | PERF_SAMPLE_WEIGHT_STRUCT)) {
			assert_int_equal(c.weight_n, 300);
			assert_int_equal(c.weight_sum, 300 * 301 / 2);
		}
		/* Batches of 128 reach the sink. */
		assert_int_equal(col.calls, 3);
		coll_free(&col);
		pb_free(&b);
	}
}

static void test_parse_empty_and_args(void **state)
{
	struct tiermm__perf_stream s = { .sample_type = PERF_SAMPLE_ADDR };
	struct coll col = { 0 };

	(void)state;
	assert_int_equal(tiermm__perf_parse(NULL, 0, &s, coll_sink, &col, NULL), 0);
	assert_int_equal(col.calls, 0);
	assert_int_equal(tiermm__perf_parse(NULL, 8, &s, coll_sink, &col, NULL), -EINVAL);
	assert_int_equal(tiermm__perf_parse("", 0, NULL, coll_sink, &col, NULL), -EINVAL);
	assert_int_equal(tiermm__perf_parse("", 0, &s, NULL, &col, NULL), -EINVAL);
	/* Sizes that depend on attributes we are not given. */
	s.sample_type = PERF_SAMPLE_ADDR | PERF_SAMPLE_READ;
	assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EOPNOTSUPP);
	s.sample_type = PERF_SAMPLE_ADDR | PERF_SAMPLE_BRANCH_STACK;
	assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EOPNOTSUPP);
	s.sample_type = PERF_SAMPLE_ADDR | PERF_SAMPLE_REGS_USER;
	assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EOPNOTSUPP);
	s.sample_type = PERF_SAMPLE_ADDR | PERF_SAMPLE_AUX;
	assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EOPNOTSUPP);
	s.sample_type = PERF_SAMPLE_ADDR | (1ull << 40);
	assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EOPNOTSUPP);
	s.sample_type = PERF_SAMPLE_TID;	/* no address to observe */
	assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EOPNOTSUPP);
	s.sample_type = PERF_SAMPLE_ADDR | PERF_SAMPLE_WEIGHT | PERF_SAMPLE_WEIGHT_STRUCT;
	assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EINVAL);
	/* A pid filter needs TID, a table ids, MEM_OP data_src. */
	s.sample_type = PERF_SAMPLE_ADDR;
	s.pid = 5;
	assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EINVAL);
	s.pid = 0;
	s.flags = TIERMM__PERF_MEM_OP;
	assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EINVAL);
	{
		struct tiermm__perf_id ids[2] = { { 5, 0 }, { 3, 0 } };

		s.flags = 0;
		s.sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_ADDR;
		s.ids = ids;
		s.nr_ids = 2;	/* not sorted */
		assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EINVAL);
		s.sample_type = PERF_SAMPLE_ADDR;	/* no id field */
		ids[0].id = 1;
		assert_int_equal(tiermm__perf_parse("", 0, &s, coll_sink, &col, NULL), -EINVAL);
	}
}

static void test_parse_ids_pid_memop(void **state)
{
	const uint64_t st = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID |
			    PERF_SAMPLE_ADDR | PERF_SAMPLE_DATA_SRC;
	struct tiermm__perf_id ids[] = {
		{ 10, 0 }, { 11, TIERMM__PERF_STORES }, { 12, TIERMM__PERF_MEM_OP },
	};
	struct tiermm__perf_stream s = { .sample_type = st, .pid = 100,
					 .ids = ids, .nr_ids = 3 };
	struct tiermm__perf_counts c;
	struct psample p;
	struct coll col = { 0 };
	struct pbuf b = { 0 };

	(void)state;
	memset(&p, 0, sizeof(p));
	p.pid = 100;
	p.tid = 102;
#define SAMPLE(ID, PID, ADDR, SRC) do {					\
		p.id = (ID); p.pid = (PID); p.addr = (ADDR);		\
		p.data_src = (SRC); pr_sample(&b, st, &p);		\
	} while (0)
	SAMPLE(10, 100, 0x1000, 0);				/* load */
	SAMPLE(11, 100, 0x2000, 0);				/* store */
	SAMPLE(12, 100, 0x3000, PERF_MEM_S(OP, LOAD));		/* IBS load */
	SAMPLE(12, 100, 0x4000, PERF_MEM_S(OP, STORE));		/* IBS store */
	SAMPLE(12, 100, 0x5000, PERF_MEM_S(OP, NA));		/* IBS other op */
	SAMPLE(12, 100, 0, PERF_MEM_S(OP, LOAD));		/* no address */
	SAMPLE(10, 100, 0xffff888000001000ull, 0);		/* kernel half */
	SAMPLE(10, 200, 0x6000, 0);				/* another process */
	SAMPLE(13, 100, 0x7000, 0);				/* unknown event */
#undef SAMPLE
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse_exact(b.p, b.len, &s, &col, &c), 4);
	assert_int_equal(c.samples, 9);
	assert_int_equal(c.loads, 2);
	assert_int_equal(c.stores, 2);
	assert_int_equal(c.no_addr, 3);
	assert_int_equal(c.other_pid, 1);
	assert_int_equal(c.unknown_id, 1);
	assert_int_equal(col.o[0].addr, 0x1000);
	assert_int_equal(col.o[0].flags, 0);
	assert_int_equal(col.o[1].addr, 0x2000);
	assert_int_equal(col.o[1].flags, TIERMM__OBS_STORE);
	assert_int_equal(col.o[2].addr, 0x3000);
	assert_int_equal(col.o[2].flags, 0);
	assert_int_equal(col.o[3].addr, 0x4000);
	assert_int_equal(col.o[3].flags, TIERMM__OBS_STORE);
	coll_free(&col);

	/* Without a table: stream flags for every sample, no pid filter. */
	s.ids = NULL;
	s.nr_ids = 0;
	s.pid = 0;
	s.flags = TIERMM__PERF_STORES;
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse_exact(b.p, b.len, &s, &col, &c), 7);
	assert_int_equal(c.stores, 7);
	for (size_t i = 0; i < col.n; i++)
		assert_int_equal(col.o[i].flags, TIERMM__OBS_STORE);
	coll_free(&col);
	pb_free(&b);
}

static void test_parse_sink_error(void **state)
{
	struct tiermm__perf_stream s = { .sample_type = PERF_SAMPLE_ADDR };
	struct coll col = { .fail_after = 1 };
	struct pbuf b = { 0 };

	(void)state;
	build_stream(&b, PERF_SAMPLE_ADDR, 300);
	assert_int_equal(parse_exact(b.p, b.len, &s, &col, NULL), -EIO);
	assert_int_equal(col.calls, 2);	/* stopped at the failing batch */
	coll_free(&col);
	pb_free(&b);
}

/* ---- Parser: malformed streams --------------------------------------------- */

static void expect_invalid(const struct pbuf *b, const struct tiermm__perf_stream *s)
{
	struct tiermm__perf_counts c;
	struct coll col = { 0 };

	memset(&c, 0, sizeof(c));
	assert_int_equal(parse_exact(b->p, b->len, s, &col, &c), -EINVAL);
	/* Validated before delivery: nothing reached the sink or counts. */
	assert_int_equal(col.calls, 0);
	assert_int_equal(c.samples + c.lost + c.other_records, 0);
	coll_free(&col);
}

static void test_parse_truncated(void **state)
{
	(void)state;
	for (size_t t = 0; t < TIERMM__ARRAY_SIZE(sample_types); t++) {
		struct tiermm__perf_stream s = { .sample_type = sample_types[t] };
		struct pbuf b = { 0 };
		size_t *bounds, nb = 0, off = 0;

		build_stream(&b, sample_types[t], 8);
		bounds = calloc(b.len + 1, sizeof(*bounds));
		while (off < b.len) {
			struct perf_event_header h;

			bounds[nb++] = off;
			memcpy(&h, b.p + off, sizeof(h));
			off += h.size;
		}
		bounds[nb++] = off;
		/* Every cut inside a record fails; every cut between records parses. */
		for (size_t cut = 0, k = 0; cut <= b.len; cut++) {
			struct coll col = { 0 };
			int ret = parse_exact(b.p, cut, &s, &col, NULL);

			while (k < nb && bounds[k] < cut)
				k++;
			if (k < nb && bounds[k] == cut)
				assert_true(ret >= 0);
			else
				assert_int_equal(ret, -EINVAL);
			coll_free(&col);
		}
		free(bounds);
		pb_free(&b);
	}
}

static void test_parse_bad_records(void **state)
{
	const uint64_t st = PERF_SAMPLE_TID | PERF_SAMPLE_ADDR | PERF_SAMPLE_CALLCHAIN |
			    PERF_SAMPLE_RAW;
	struct tiermm__perf_stream s = { .sample_type = st };
	struct psample p = { .pid = 1, .tid = 1, .addr = 0x1000, .raw_size = 4 };
	struct pbuf b = { 0 };
	struct perf_event_header h;
	size_t at;

	(void)state;
	/* header.size beyond the buffer */
	pr_sample(&b, st, &p);
	memcpy(&h, b.p, sizeof(h));
	h.size = (uint16_t)(h.size + 8);
	memcpy(b.p, &h, sizeof(h));
	expect_invalid(&b, &s);
	/* header.size not a multiple of 8, smaller than a header, zero */
	h.size = (uint16_t)(h.size - 12);
	memcpy(b.p, &h, sizeof(h));
	expect_invalid(&b, &s);
	h.size = 4;
	memcpy(b.p, &h, sizeof(h));
	expect_invalid(&b, &s);
	h.size = 0;
	memcpy(b.p, &h, sizeof(h));
	expect_invalid(&b, &s);
	pb_free(&b);

	/* a sample bigger than its fields (8 stray bytes) */
	at = pr_begin(&b, PERF_RECORD_SAMPLE, 0);
	pr_sample_body(&b, st, &p);
	pb_u64(&b, 0);
	pr_end(&b, at);
	expect_invalid(&b, &s);
	pb_free(&b);

	/* a sample smaller than its fields */
	at = pr_begin(&b, PERF_RECORD_SAMPLE, 0);
	pb_u32(&b, 1);
	pb_u32(&b, 1);
	pr_end(&b, at);
	expect_invalid(&b, &s);
	pb_free(&b);

	/* callchain nr far beyond the record */
	at = pr_begin(&b, PERF_RECORD_SAMPLE, 0);
	pb_u32(&b, 1);
	pb_u32(&b, 1);
	pb_u64(&b, 0x1000);
	pb_u64(&b, 0x2000000000000000ull);
	pb_u32(&b, 4);
	pb_u32(&b, 0);
	pr_end(&b, at);
	expect_invalid(&b, &s);
	pb_free(&b);

	/* raw size beyond the record, and raw breaking 8-byte alignment */
	for (uint32_t raw = 0; raw < 2; raw++) {
		at = pr_begin(&b, PERF_RECORD_SAMPLE, 0);
		pb_u32(&b, 1);
		pb_u32(&b, 1);
		pb_u64(&b, 0x1000);
		pb_u64(&b, 0);
		pb_u32(&b, raw ? 8 : 0xfffffff4u);
		pb_u32(&b, 0);
		if (raw)
			pb_u64(&b, 0);
		pr_end(&b, at);
		expect_invalid(&b, &s);
		pb_free(&b);
	}

	/* record types: 0 and user types are not ring records */
	at = pr_begin(&b, 0, 0);
	pr_end(&b, at);
	expect_invalid(&b, &s);
	pb_free(&b);
	at = pr_begin(&b, 64, 0);
	pr_end(&b, at);
	expect_invalid(&b, &s);
	pb_free(&b);
	/* an unknown kernel type of valid size is skipped */
	at = pr_begin(&b, 40, 0);
	pb_u64(&b, 1);
	pr_end(&b, at);
	{
		struct tiermm__perf_counts c;
		struct coll col = { 0 };

		memset(&c, 0, sizeof(c));
		assert_int_equal(parse_exact(b.p, b.len, &s, &col, &c), 0);
		assert_int_equal(c.other_records, 1);
	}
	pb_free(&b);

	/* LOST, THROTTLE, MMAP2 shorter than their fixed part */
	at = pr_begin(&b, PERF_RECORD_LOST, 0);
	pb_u64(&b, 1);
	pr_end(&b, at);
	expect_invalid(&b, &s);
	pb_free(&b);
	at = pr_begin(&b, PERF_RECORD_THROTTLE, 0);
	pb_u64(&b, 1);
	pb_u64(&b, 1);
	pr_end(&b, at);
	expect_invalid(&b, &s);
	pb_free(&b);
	at = pr_begin(&b, PERF_RECORD_MMAP2, 0);
	for (int i = 0; i < 7; i++)
		pb_u64(&b, 0);
	pr_end(&b, at);
	expect_invalid(&b, &s);
	pb_free(&b);

	/* good records, then 4 stray bytes: nothing is delivered */
	pr_sample(&b, st, &p);
	pr_sample(&b, st, &p);
	pb_u32(&b, 0);
	expect_invalid(&b, &s);
	pb_free(&b);
}

static void test_parse_garbage(void **state)
{
	uint64_t x = 88172645463325252ull;
	unsigned char buf[512];

	(void)state;
	for (int round = 0; round < 20000; round++) {
		struct tiermm__perf_stream s = {
			.sample_type = sample_types[round % TIERMM__ARRAY_SIZE(sample_types)],
		};
		struct coll col = { 0 };
		size_t len = (size_t)(round % 512);
		int ret;

		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = (unsigned char)x;
		}
		/* Often a plausible header, so the body checks run too. */
		if (len >= 8 && (round & 1)) {
			uint16_t size = (uint16_t)((x % (len / 8 + 1)) * 8);
			uint32_t type = round & 2 ? PERF_RECORD_SAMPLE : (uint32_t)(x >> 20) % 16;

			memcpy(buf, &type, 4);
			memcpy(buf + 6, &size, 2);
		}
		ret = parse_exact(buf, len, &s, &col, NULL);
		assert_true(ret >= 0 || ret == -EINVAL);
		assert_true(ret < 0 || (size_t)ret == col.n);
		coll_free(&col);
	}
}

/* ---- Ring drain ------------------------------------------------------------ */

static void test_ring_drain(void **state)
{
	struct perf_event_mmap_page *meta = calloc(1, sizeof(*meta));
	const uint64_t size = 1024;
	unsigned char *data = calloc(1, size), out[1024];
	struct tiermm__perf_stream s = { .sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_ADDR };
	struct psample p = { .pid = 1, .tid = 1 };
	struct coll col = { 0 };
	struct pbuf rec = { 0 };
	uint64_t head = 0;
	ssize_t n;

	(void)state;
	assert_int_equal(tiermm__perf_ring_drain(meta, data, size, out, sizeof(out)), 0);
	/* Write 100 samples of 24 bytes through the ring, draining every 30. */
	for (int i = 0; i < 100; i++) {
		p.addr = 0x1000 + (uint64_t)i;
		pb_free(&rec);
		pr_sample(&rec, s.sample_type, &p);
		for (size_t k = 0; k < rec.len; k++)
			data[(head + k) % size] = rec.p[k];
		head += rec.len;
		__atomic_store_n(&meta->data_head, head, __ATOMIC_RELEASE);
		if (i % 30 == 29 || i == 99) {
			n = tiermm__perf_ring_drain(meta, data, size, out, sizeof(out));
			assert_true(n > 0);
			assert_int_equal(meta->data_tail, head);
			assert_true(tiermm__perf_parse(out, (size_t)n, &s, coll_sink, &col, NULL) > 0);
		}
	}
	assert_int_equal(col.n, 100);
	for (size_t i = 0; i < col.n; i++)
		assert_int_equal(col.o[i].addr, 0x1000 + i);
	/* The ring wrapped several times (2400 bytes through 1024). */
	assert_true(head > 2 * size);
	/* A head too far ahead (cannot happen): -EIO and the ring is emptied. */
	meta->data_head = meta->data_tail + size + 8;
	assert_int_equal(tiermm__perf_ring_drain(meta, data, size, out, sizeof(out)), -EIO);
	assert_int_equal(meta->data_tail, meta->data_head);
	assert_int_equal(tiermm__perf_ring_drain(meta, data, size, out, sizeof(out)), 0);
	/* Output too small, size not a power of two. */
	meta->data_head += 64;
	assert_int_equal(tiermm__perf_ring_drain(meta, data, size, out, 32), -EIO);
	assert_int_equal(tiermm__perf_ring_drain(meta, data, 1000, out, sizeof(out)), -EINVAL);
	coll_free(&col);
	pb_free(&rec);
	free(meta);
	free(data);
}

/* ---- The synthetic fixtures ------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static uint64_t meta_u64(const char *meta, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\n%s=", key);
	p = strstr(meta, k);
	if (!p)
		fail_msg("fixture meta lacks %s", key);
	return strtoull(p + strlen(k), NULL, 0);
}

static void check_fixture(const char *name)
{
	const char *src = getenv("TIERMM_SRCDIR");
	char path[4096];
	char *meta, *bin, *p;
	size_t mlen, blen, nids = 0;
	struct tiermm__perf_id ids[64];
	struct tiermm__perf_stream s;
	struct tiermm__perf_counts c;
	struct coll col = { 0 };
	uint64_t hot_lo, hot_hi, hot = 0;

	assert_non_null(src);
	snprintf(path, sizeof(path), "%s/tests/fixtures/perf/%s.meta", src, name);
	meta = slurp(path, &mlen);
	assert_non_null(meta);
	snprintf(path, sizeof(path), "%s/tests/fixtures/perf/%s.bin", src, name);
	bin = slurp(path, &blen);
	assert_non_null(bin);

	memset(&s, 0, sizeof(s));
	s.sample_type = meta_u64(meta, "sample_type");
	s.pid = (pid_t)meta_u64(meta, "pid");
	s.flags = (uint32_t)meta_u64(meta, "flags");
	p = strstr(meta, "\nids=");
	assert_non_null(p);
	for (p += 5; *p && *p != '\n' && nids < 64;) {
		char *end;

		ids[nids].id = strtoull(p, &end, 0);
		assert_int_equal(*end, ':');
		ids[nids].flags = (uint32_t)strtoul(end + 1, &end, 0);
		nids++;
		p = *end == ',' ? end + 1 : end;
	}
	s.ids = ids;
	s.nr_ids = nids;
	p = strstr(meta, "\nhot=");
	assert_non_null(p);
	assert_int_equal(sscanf(p + 5, "%" SCNx64 "-%" SCNx64, &hot_lo, &hot_hi), 2);

	memset(&c, 0, sizeof(c));
	assert_int_equal(parse_exact(bin, blen, &s, &col, &c),
			 (int)(meta_u64(meta, "expect_loads") + meta_u64(meta, "expect_stores")));
	assert_int_equal(c.samples, meta_u64(meta, "expect_samples"));
	assert_int_equal(c.loads, meta_u64(meta, "expect_loads"));
	assert_int_equal(c.stores, meta_u64(meta, "expect_stores"));
	assert_int_equal(c.no_addr, meta_u64(meta, "expect_no_addr"));
	assert_int_equal(c.other_pid, meta_u64(meta, "expect_other_pid"));
	assert_int_equal(c.unknown_id, meta_u64(meta, "expect_unknown_id"));
	assert_int_equal(c.lost, meta_u64(meta, "expect_lost"));
	assert_int_equal(c.lost_samples, meta_u64(meta, "expect_lost_samples"));
	assert_int_equal(c.throttle, meta_u64(meta, "expect_throttle"));
	assert_int_equal(c.unthrottle, meta_u64(meta, "expect_unthrottle"));
	assert_int_equal(c.other_records, meta_u64(meta, "expect_other_records"));
	for (size_t i = 0; i < col.n; i++) {
		if (col.o[i].addr >= hot_lo && col.o[i].addr < hot_hi)
			hot++;
		if (i)
			assert_true(col.o[i].time_ns > col.o[i - 1].time_ns);
	}
	assert_int_equal(hot, meta_u64(meta, "expect_hot"));
	/* The hot eighth of the table holds most of the samples. */
	assert_true(hot * 10 > col.n * 8);
	coll_free(&col);
	free(meta);
	free(bin);
}

static void test_fixture_pebs(void **state)
{
	(void)state;
	check_fixture("pebs-gups");
}

static void test_fixture_ibs(void **state)
{
	(void)state;
	check_fixture("ibs-op");
}

/* ---- Backend choice on this host ----------------------------------------------- */

static void test_backend_find(void **state)
{
	(void)state;
	assert_ptr_equal(tiermm__backend_find("perf"), &tiermm__perf_backend);
	assert_ptr_equal(tiermm__backend_find("scan"), &tiermm__scan_backend);
	assert_ptr_equal(tiermm__backend_find("damon"), &tiermm__damon_backend);
	assert_string_equal(tiermm__backends[0]->name, "perf");
	assert_string_equal(tiermm__backends[1]->name, "scan");
	assert_string_equal(tiermm__backends[2]->name, "damon");
	assert_null(tiermm__backends[3]);
	errno = 0;
	assert_null(tiermm__backend_find("pebs"));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(tiermm_errmsg(), "unknown hotness backend 'pebs'"));
	assert_non_null(strstr(tiermm_errmsg(), "perf, scan, damon"));
	assert_null(tiermm__backend_find(NULL));
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void test_backend_auto_host(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0 };
	const struct tiermm__backend_ops *ops = NULL;
	char why[2048], one[512];
	int ret, perf_ok, scan_ok, damon_ok;

	(void)state;
	perf_ok = tiermm__perf_backend.usable(&cfg, one, sizeof(one));
	print_message("  perf:  %d %s\n", perf_ok, one);
	assert_true(!strncmp(one, "perf: ", 6));
	if (!exists("/sys/bus/event_source/devices/cpu/events/mem-loads") &&
	    !exists("/sys/bus/event_source/devices/cpu_core/events/mem-loads") &&
	    !exists("/sys/bus/event_source/devices/cpu_atom/events/mem-loads") &&
	    !exists("/sys/bus/event_source/devices/ibs_op/type")) {
		assert_int_equal(perf_ok, 0);
		assert_non_null(strstr(one, "no PEBS or IBS"));
	}
	scan_ok = tiermm__scan_backend.usable(&cfg, one, sizeof(one));
	print_message("  scan:  %d %s\n", scan_ok, one);
	assert_true(!strncmp(one, "scan: ", 6));
	if (!exists("/sys/module/tiermm")) {
		assert_int_equal(scan_ok, 0);
		assert_non_null(strstr(one, "tiermm.ko is not loaded"));
	}
	damon_ok = tiermm__damon_backend.usable(&cfg, one, sizeof(one));
	print_message("  damon: %d %s\n", damon_ok, one);
	assert_true(!strncmp(one, "damon: ", 7));

	ret = tiermm__backend_auto(&cfg, &ops, why, sizeof(why));
	print_message("  auto:  %d %s\n", ret, why);
	if (perf_ok || scan_ok || damon_ok) {
		assert_int_equal(ret, 0);
		assert_non_null(ops);
		assert_ptr_equal(ops, perf_ok ? &tiermm__perf_backend :
				 scan_ok ? &tiermm__scan_backend : &tiermm__damon_backend);
		assert_true(!strncmp(why, ops->name, strlen(ops->name)));
		if (!perf_ok)
			assert_non_null(strstr(why, "perf: "));
	} else {
		assert_int_equal(ret, -ENODEV);
		assert_null(ops);
		assert_true(!strncmp(why, "none (perf: ", 12));
		assert_non_null(strstr(why, "; scan: "));
		assert_non_null(strstr(why, "; damon: "));
		assert_non_null(strstr(tiermm_errmsg(), "no hotness backend is usable"));
	}
	/* perf and scan need the live kernel. */
	cfg.fsroot = "/tmp";
	assert_int_equal(tiermm__perf_backend.usable(&cfg, one, sizeof(one)), 0);
	assert_non_null(strstr(one, "running kernel"));
	assert_int_equal(tiermm__scan_backend.usable(&cfg, one, sizeof(one)), 0);
}

/* ---- perf end to end with software page faults --------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Distinct pages of [base, base + npages * 4096) among the observations. */
static size_t pages_seen(const struct coll *c, uintptr_t base, size_t npages)
{
	unsigned char *seen = calloc(npages, 1);
	size_t n = 0;

	for (size_t i = 0; i < c->n; i++) {
		uint64_t a = c->o[i].addr;

		if (a >= base && a < base + npages * 4096 && !seen[(a - base) / 4096]) {
			seen[(a - base) / 4096] = 1;
			n++;
		}
	}
	free(seen);
	return n;
}

static bool sw_usable(const struct tiermm__backend_cfg *cfg)
{
	char why[512];

	if (tiermm__perf_backend.usable(cfg, why, sizeof(why)))
		return true;
	print_message("  skipped: %s\n", why);
	return false;
}

static void test_perf_sw_self(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0,
					   .test_flags = TIERMM__BACKEND_TEST_SWEVENT };
	struct tiermm__backend_stats st;
	struct tiermm__backend *b;
	struct coll col = { 0 };
	const size_t npages = 256;
	volatile char *region;
	uint64_t t0, t1;

	(void)state;
	if (!sw_usable(&cfg))
		skip();
	assert_int_equal(tiermm__perf_backend.open(&cfg, &b), 0);
	region = mmap(NULL, npages * 4096, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(region != MAP_FAILED);
	t0 = mono_ns();
	for (size_t i = 0; i < npages; i++)
		region[i * 4096 + 8] = 1;
	t1 = mono_ns();
	assert_int_equal(tiermm__perf_backend.poll(b, coll_sink, &col), 0);
	print_message("  %zu observations, %zu of %zu pages\n", col.n,
		      pages_seen(&col, (uintptr_t)region, npages), npages);
	assert_true(pages_seen(&col, (uintptr_t)region, npages) >= npages * 9 / 10);
	for (size_t i = 0; i < col.n; i++) {
		uint64_t a = col.o[i].addr;

		if (a >= (uintptr_t)region && a < (uintptr_t)region + npages * 4096) {
			/* the faulting address, CLOCK_MONOTONIC time */
			assert_int_equal(a % 4096, 8);
			assert_true(col.o[i].time_ns >= t0 && col.o[i].time_ns <= t1);
			assert_int_equal(col.o[i].flags, 0);
		}
	}
	tiermm__perf_backend.stats(b, &st);
	assert_true(st.samples >= npages * 9 / 10);
	assert_int_equal(st.observations, col.n);
	assert_int_equal(tiermm__perf_backend.cpu_ns(b), 0);
	/* Records are delivered once (other faults, e.g. ASan's, may come). */
	coll_free(&col);
	assert_int_equal(tiermm__perf_backend.poll(b, coll_sink, &col), 0);
	assert_int_equal(pages_seen(&col, (uintptr_t)region, npages), 0);
	tiermm__perf_backend.close(b);
	munmap((void *)region, npages * 4096);
	coll_free(&col);
}

struct toucher {
	volatile char *p;
	size_t n;
};

static void *touch_thread(void *arg)
{
	struct toucher *t = arg;

	for (size_t i = 0; i < t->n; i++)
		t->p[i * 4096] = 1;
	return NULL;
}

/* Another process, with a thread created after the events were opened. */
static void test_perf_sw_child_threads(void **state)
{
	struct tiermm__backend_cfg cfg = { .test_flags = TIERMM__BACKEND_TEST_SWEVENT };
	struct tiermm__backend *b;
	struct coll col = { 0 };
	const size_t npages = 512;
	int go[2], done[2], ret = 0;
	char *region;
	pid_t child;

	(void)state;
	if (!sw_usable(&cfg))
		skip();
	region = mmap(NULL, npages * 4096, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(region != MAP_FAILED);
	madvise(region, npages * 4096, MADV_NOHUGEPAGE);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	child = fork();
	assert_true(child >= 0);
	if (!child) {
		struct toucher t = { region, npages / 2 };
		pthread_t th;
		char c;

		close(go[1]);
		close(done[0]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		if (pthread_create(&th, NULL, touch_thread, &t))
			_exit(2);
		for (size_t i = npages / 2; i < npages; i++)
			region[i * 4096] = 1;
		pthread_join(th, NULL);
		if (write(done[1], "d", 1) != 1)
			_exit(3);
		if (read(go[0], &c, 1) != 1)
			_exit(0);
		_exit(0);
	}
	cfg.pid = child;
	assert_int_equal(tiermm__perf_backend.open(&cfg, &b), 0);
	assert_int_equal(write(go[1], "g", 1), 1);
	{
		char c;

		assert_int_equal(read(done[0], &c, 1), 1);
	}
	assert_int_equal(tiermm__perf_backend.poll(b, coll_sink, &col), 0);
	print_message("  child: %zu observations, first half %zu, second half %zu of %zu\n",
		      col.n, pages_seen(&col, (uintptr_t)region, npages / 2),
		      pages_seen(&col, (uintptr_t)region + npages / 2 * 4096, npages / 2),
		      npages / 2);
	/* The new thread's faults came through its inherited events. */
	assert_true(pages_seen(&col, (uintptr_t)region, npages / 2) >= npages / 2 * 9 / 10);
	assert_true(pages_seen(&col, (uintptr_t)region + npages / 2 * 4096, npages / 2) >=
		    npages / 2 * 9 / 10);
	/* The child exits: the next poll says so. */
	close(go[1]);
	assert_int_equal(waitpid(child, &ret, 0), child);
	assert_true(WIFEXITED(ret) && WEXITSTATUS(ret) == 0);
	coll_free(&col);
	assert_int_equal(tiermm__perf_backend.poll(b, coll_sink, &col), -ESRCH);
	tiermm__perf_backend.close(b);
	close(go[0]);
	close(done[0]);
	close(done[1]);
	munmap(region, npages * 4096);
	coll_free(&col);
}

static void test_perf_open_errors(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = -3 };
	struct tiermm__backend *b = (void *)1;

	(void)state;
	assert_int_equal(tiermm__perf_backend.open(&cfg, &b), -EINVAL);
	assert_null(b);
	cfg.pid = 0;
	cfg.fsroot = "/tmp";
	assert_int_equal(tiermm__perf_backend.open(&cfg, &b), -EINVAL);
	cfg.fsroot = NULL;
	if (!exists("/sys/bus/event_source/devices/cpu/events/mem-loads") &&
	    !exists("/sys/bus/event_source/devices/cpu_core/events/mem-loads") &&
	    !exists("/sys/bus/event_source/devices/ibs_op/type")) {
		assert_int_equal(tiermm__perf_backend.open(&cfg, &b), -ENODEV);
		assert_non_null(strstr(tiermm_errmsg(), "no PEBS or IBS"));
	}
	/* A process that does not exist. */
	cfg.test_flags = TIERMM__BACKEND_TEST_SWEVENT;
	cfg.pid = 0x3ffffff0;
	assert_true(tiermm__perf_backend.open(&cfg, &b) < 0);
}

/* ---- perf: events chosen from captured PMU descriptions ---------------------- */

static void put_file(const char *root, const char *rel, const char *val);
static char *fake_root(void);
static void rm_tree(const char *path);

static void rm_rel(const char *root, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s%s", root, rel);
	rm_tree(path);
}

#define PMU "/sys/bus/event_source/devices/"

static void fake_intel_pmu(const char *root, const char *pmu, const char *type,
			   const char *loads, const char *stores, const char *cpus)
{
	char p[256];

#define F(rel, val) do {						\
		snprintf(p, sizeof(p), PMU "%s/%s", pmu, rel);		\
		put_file(root, p, val);					\
	} while (0)
	F("type", type);
	F("events/mem-loads", loads);
	if (stores)
		F("events/mem-stores", stores);
	F("format/event", "config:0-7");
	F("format/umask", "config:8-15");
	F("format/ldlat", "config1:0-15");
	F("caps/max_precise", "3");
	if (cpus)
		F("cpus", cpus);
#undef F
}

static void test_perf_plan_intel(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0 };
	char *root = fake_root(), out[2048];

	(void)state;
	cfg.fsroot = root;
	put_file(root, "/sys/devices/system/cpu/online", "0-3");
	/* Nothing: no PEBS, no IBS. */
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), -ENODEV);
	assert_non_null(strstr(out, "no PEBS or IBS"));

	fake_intel_pmu(root, "cpu", "4", "event=0xcd,umask=0x1,ldlat=3",
		       "event=0xd0,umask=0x82", NULL);
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), 2);
	print_message("%s", out);
	assert_non_null(strstr(out,
		"cpu/mem-loads type=4 config=0x1cd config1=0x40 period=4093 sample_type=0x101000e precise<=3 flags=0 optional=0 exclude_kernel=1 inherit=1 inherit_thread=1 clock=1 cpus=0-3\n"));
	assert_non_null(strstr(out,
		"cpu/mem-stores type=4 config=0x82d0 config1=0x0 period=65535 sample_type=0x101000e precise<=3 flags=1 optional=1 exclude_kernel=1 inherit=1 inherit_thread=1 clock=1 cpus=0-3\n"));

	/* The configured threshold and periods. */
	cfg.load_latency = 128;
	cfg.load_period = 1009;
	cfg.store_period = 20011;
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "cpu/mem-loads type=4 config=0x1cd config1=0x80 period=1009 "));
	assert_non_null(strstr(out, "cpu/mem-stores type=4 config=0x82d0 config1=0x0 period=20011 "));

	/* No mem-stores in sysfs: MEM_INST_RETIRED.ALL_STORES by number. */
	rm_rel(root, PMU "cpu/events/mem-stores");
	cfg = (struct tiermm__backend_cfg){ .fsroot = root };
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "cpu/raw 0xd0/0x82 stores type=4 config=0x82d0 "));

	/* No ldlat field: refused, not sampled without the latency filter. */
	rm_rel(root, PMU "cpu/format/ldlat");
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), -ENOTSUP);
	assert_non_null(strstr(out, "no ldlat format field"));
	rm_tree(root);
}

static void test_perf_plan_hybrid(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0 };
	char *root = fake_root(), out[2048];

	(void)state;
	cfg.fsroot = root;
	put_file(root, "/sys/devices/system/cpu/online", "0-7");
	fake_intel_pmu(root, "cpu_core", "4", "event=0xcd,umask=0x1,ldlat=3",
		       "event=0xcd,umask=0x2", "0-3");
	fake_intel_pmu(root, "cpu_atom", "10", "event=0xd0,umask=0x5,ldlat=3",
		       "event=0xd0,umask=0x6", "4-7");
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), 4);
	print_message("%s", out);
	assert_non_null(strstr(out, "cpu_core/mem-loads type=4 config=0x1cd config1=0x40 period=4093 "));
	assert_non_null(strstr(out, "cpu_core/mem-stores type=4 config=0x2cd "));
	assert_non_null(strstr(out, "cpus=0-3\ncpu_atom/mem-loads type=10 config=0x5d0 config1=0x40 "));
	assert_non_null(strstr(out, "cpu_atom/mem-stores type=10 config=0x6d0 config1=0x0 period=65535 "));
	assert_non_null(strstr(out, "cpus=4-7\n"));
	rm_tree(root);
}

static void test_perf_plan_ibs(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0 };
	char *root = fake_root(), out[2048];

	(void)state;
	cfg.fsroot = root;
	put_file(root, "/sys/devices/system/cpu/online", "0-7");
	put_file(root, PMU "ibs_op/type", "11");
	put_file(root, PMU "ibs_op/format/cnt_ctl", "config:19");
	put_file(root, PMU "ibs_op/format/l3missonly", "config:16");
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), 1);
	print_message("%s", out);
	/* Ops counted, L3 misses only, the load period rounded to 16, no exclusions. */
	assert_non_null(strstr(out,
		"ibs_op/IBS op (L3MissOnly) type=11 config=0x90000 config1=0x0 period=4096 sample_type=0x101800e precise<=0 flags=2 optional=0 exclude_kernel=0 inherit=1 inherit_thread=1 clock=1 cpus=0-7\n"));
	/* Without L3MissOnly every op is a candidate: a 64 times longer period. */
	rm_rel(root, PMU "ibs_op/format/l3missonly");
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "ibs_op/IBS op type=11 config=0x80000 config1=0x0 period=261952 "));
	/* Intel PEBS wins when both are described. */
	fake_intel_pmu(root, "cpu", "4", "event=0xcd,umask=0x1,ldlat=3", NULL, NULL);
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "cpu/mem-loads"));
	rm_tree(root);
}

static void test_perf_plan_sw(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0, .test_flags = TIERMM__BACKEND_TEST_SWEVENT };
	char *root = fake_root(), out[1024];

	(void)state;
	cfg.fsroot = root;
	put_file(root, "/sys/devices/system/cpu/online", "0-1");
	assert_int_equal(tiermm__perf_plan_describe(&cfg, out, sizeof(out)), 1);
	assert_non_null(strstr(out,
		"software/page-faults (test) type=1 config=0x2 config1=0x0 period=1 sample_type=0x1000e precise<=0 flags=0 optional=0 exclude_kernel=1 inherit=1 inherit_thread=1 clock=1 cpus=0-1\n"));
	rm_tree(root);
}

/* ---- scan against a fake tiermm.ko ------------------------------------------- */

#define FAKE_FD 4242

static struct {
	uint64_t h1, h2;	/* 2 MiB regions: all pages / even pages hot */
	uint64_t h3;		/* pages 60-69 of it: a run across two words */
	uint64_t last;		/* a lone hot page: the region's last */
	uint64_t pop_lo, pop_hi;	/* the only range with page tables */
	uint64_t calls, max_pages, flags, scanned;
	/*
	 * Timed (tau_ns > 0): the other pages of [pop_lo, pop_hi) are
	 * touched at random, 1/tau_ns on average: a read finds one accessed
	 * with the probability 1 - exp(-t / tau_ns), t the time since the
	 * read that cleared it (cleared[], by page).
	 */
	uint64_t tau_ns, rng;
	uint64_t *cleared;
} fk;

static uint64_t mono_ns_fk(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A cold page's bit in the timed fake (see fk). */
static bool fake_touched(uint64_t addr, uint64_t now)
{
	uint64_t *c = &fk.cleared[(addr - fk.pop_lo) / 4096];
	double t = *c ? (double)(now - *c) : 1e18, u;

	*c = now;
	fk.rng ^= fk.rng << 13;
	fk.rng ^= fk.rng >> 7;
	fk.rng ^= fk.rng << 17;
	u = (double)(fk.rng >> 11) / 9007199254740992.0;
	return u < 1.0 - exp(-t / (double)fk.tau_ns);
}

static bool fake_hot(uint64_t addr)
{
	if (addr >= fk.h1 && addr < fk.h1 + 2 * MIB)
		return true;
	if ((addr >= fk.h3 + 60 * 4096 && addr < fk.h3 + 70 * 4096) || addr == fk.last)
		return true;
	return addr >= fk.h2 && addr < fk.h2 + 2 * MIB && !((addr - fk.h2) / 4096 % 2);
}

static int fake_open(struct tiermm_get_api *api)
{
	memset(api, 0, sizeof(*api));
	api->argsz = sizeof(*api);
	api->api_version = 2;
	api->commands = 0x1f;
	return FAKE_FD;
}

static void fake_close(int fd)
{
	(void)fd;
}

/* TIERMM_CMD_AB_SCAN in the bitmap mode, over fk's pattern. */
static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	struct tiermm_ab_scan *k = arg;
	uint64_t end, cur, budget, scanned = 0, accessed = 0;
	uint64_t *bitmap;

	if (fd != FAKE_FD || req != TIERMM_IOC_AB_SCAN) {
		errno = ENOTTY;
		return -1;
	}
	fk.calls++;
	fk.max_pages = k->max_pages;
	fk.flags = k->flags;
	end = k->start + k->len;
	cur = k->cursor;
	budget = k->max_pages ? k->max_pages : 262144;
	bitmap = (uint64_t *)(uintptr_t)k->out_ptr;
	if ((k->flags & TIERMM_SCAN_COUNTS) || cur < k->start || cur >= end ||
	    (k->start | k->len | cur) % 4096 ||
	    k->out_len < (k->len / 4096 + 7) / 8) {
		errno = EINVAL;
		return -1;
	}
	while (cur < end && scanned < budget) {
		uint64_t region = cur & ~(2 * MIB - 1);
		uint64_t next = region + 2 * MIB < end ? region + 2 * MIB : end;

		/* Like the module, pass over ranges without page tables for free. */
		if (next <= fk.pop_lo) {
			cur = fk.pop_lo & ~(2 * MIB - 1);
			if (cur <= region)
				cur = next;
			if (cur > end)
				cur = end;
			continue;
		}
		if (region >= fk.pop_hi) {
			cur = end;
			continue;
		}
		for (; cur < next; cur += 4096) {
			uint64_t bit = (cur - k->start) / 4096;

			scanned++;
			if (fake_hot(cur) ||
			    (fk.tau_ns && cur >= fk.pop_lo && cur < fk.pop_hi &&
			     fake_touched(cur, mono_ns_fk()))) {
				bitmap[bit / 64] |= 1ull << (bit % 64);
				accessed++;
			}
		}
	}
	k->cursor = cur;
	k->scanned = scanned;
	k->accessed = accessed;
	fk.scanned += scanned;
	return 0;
}

static const struct tiermm__pt_dev fake_dev = {
	.open = fake_open,
	.ioctl = fake_ioctl,
	.close = fake_close,
};

/*
 * A fresh fake module over a new region of len bytes (reserved, no pages):
 * the only range with page tables; the hot pages are for the caller to set.
 */
static char *fake_scan_region(size_t len)
{
	char *region;

	memset(&fk, 0, sizeof(fk));
	region = mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(region != MAP_FAILED);
	fk.pop_lo = (uintptr_t)region;
	fk.pop_hi = (uintptr_t)region + len;
	return region;
}

static void test_scan_fake_module(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0, .interval_us = 1,
					   .max_pages = 4096 };
	struct tiermm__backend_stats st;
	struct tiermm__backend *b;
	struct coll col = { 0 };
	const size_t len = 64 * MIB, npages = len / 4096;
	uint64_t base, passes = 0, blocks = 0, presents = 0;
	uint32_t *cnt = calloc(npages, sizeof(*cnt));
	char *region;
	int polls = 0;

	(void)state;
	region = fake_scan_region(len);
	base = ((uintptr_t)region + 2 * MIB - 1) & ~(2 * MIB - 1);
	fk.h1 = base + 8 * MIB;
	fk.h2 = base + 20 * MIB;
	fk.h3 = base + 30 * MIB;
	fk.last = (uintptr_t)region + len - 4096;
	tiermm__pt_set_dev(&fake_dev);

	assert_int_equal(tiermm__scan_backend.open(&cfg, &b), 0);
	do {
		uint64_t before = fk.scanned;

		int r = tiermm__scan_backend.poll(b, coll_sink, &col);

		/* 1: mid-pass */
		assert_true(r == 0 || r == 1);
		/* Bounded: the budget plus at most one scanner call. */
		assert_true(fk.scanned - before <= cfg.max_pages + cfg.max_pages / 4);
		tiermm__scan_backend.stats(b, &st);
		polls++;
	} while (st.passes < 2 && polls < 10000);
	assert_true(st.passes >= 2);
	assert_true(polls > 4);	/* 64 MiB at 16 MiB per poll: several polls */
	assert_int_equal(fk.flags, TIERMM_SCAN_FLUSH);
	assert_int_equal(fk.max_pages, 1024);
	/*
	 * One observation per 2 MiB block with accessed pages (per scanner
	 * batch), from its first to its last accessed page, its bits the
	 * block's accessed pages; one PASS mark per pass.
	 */
	for (size_t i = 0; i < col.n; i++) {
		const struct tiermm__obs *o = &col.o[i];
		uint64_t blk = o->addr & ~(2 * MIB - 1), first = UINT64_MAX, last = 0;
		uint32_t set = 0;

		if (o->flags == TIERMM__OBS_PASS) {
			passes++;
			continue;
		}
		/* what the arming pass cleared: pages that exist, no access */
		if (o->flags & TIERMM__OBS_PRESENT) {
			assert_int_equal(o->flags, TIERMM__OBS_RANGE | TIERMM__OBS_SPREAD |
						   TIERMM__OBS_BITS | TIERMM__OBS_PRESENT);
			presents++;
			continue;
		}
		blocks++;
		assert_int_equal(o->flags, TIERMM__OBS_RANGE | TIERMM__OBS_SPREAD |
					   TIERMM__OBS_BITS);
		for (uint64_t k = 0; k < 512; k++) {
			uint64_t a = blk + k * 4096;

			if (!(o->bits[k / 64] & (1ull << (k % 64))))
				continue;
			if (a < (uintptr_t)region || a >= (uintptr_t)region + len)
				fail_msg("accessed page 0x%" PRIx64 " outside the region", a);
			cnt[(a - (uintptr_t)region) / 4096]++;
			if (first == UINT64_MAX)
				first = a;
			last = a;
			set++;
		}
		assert_true(set > 0);
		assert_int_equal(o->hits, set);
		assert_int_equal(o->addr, first);
		assert_int_equal(o->weight, (last - first) / 4096 + 1);
	}
	for (size_t p = 0; p < npages; p++) {
		uint64_t a = (uintptr_t)region + p * 4096;

		if (fake_hot(a))
			assert_true(cnt[p] >= 2);
		else if (cnt[p])
			fail_msg("cold page 0x%" PRIx64 " observed %u times", a, cnt[p]);
	}
	assert_int_equal(passes, st.passes);
	assert_true(presents > 0 && st.arm_passes > 0);
	/* Bounded by blocks, not pages: 4 blocks hold accessed pages (h1, h2,
	 * h3 and the last page), a few more where scanner calls split one. */
	assert_true(blocks <= (passes + 1) * 8);
	assert_true(blocks >= passes * 4);
	assert_int_equal(st.observations, col.n);
	assert_true(st.pages_accessed >= 2 * (512 + 256));
	assert_int_equal(tiermm__scan_backend.cpu_ns(b), 0);
	tiermm__scan_backend.close(b);
	tiermm__pt_set_dev(NULL);
	munmap(region, len);
	free(cnt);
	coll_free(&col);
}

/*
 * The adaptive window (scan_backend.c, "The window"): a process that
 * touches every page of a 64 MiB region every 20 ms on average (tau) but
 * for its hot pages, which it touches all the time. With the fixed window
 * of 160 ms (the interval) every pass finds all the cold pages accessed:
 * no contrast. The window halves after passes that found more than half
 * of the pages accessed, until a pass finds fewer: 10 ms (39%) on a quiet
 * machine, lower when the fake's reads are slow (ASan, a loaded host: a
 * page's time between its two reads is the window plus a chunk's read),
 * where passes are paired (each chunk cleared, then read a window later).
 * Then a hot page is seen in every pass and a cold one in well under one
 * in two. Polled every 30 ms (the runtime's sampler: 50 ms), one chunk's
 * budget a poll, so a chunk cleared in one poll and read in the next would
 * count 30 ms of accesses.
 */
/* 1 GiB windows of this process's writable mappings (the scanner's calls). */
static uint64_t writable_windows(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512], perms[8];
	uint64_t lo, hi, n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi, perms) == 3 &&
		    perms[1] == 'w')
			n += (hi - 1) / (1024 * MIB) - lo / (1024 * MIB) + 1;
	fclose(f);
	return n;
}

static void test_scan_window(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0, .interval_us = 160000,
					   .max_pages = 8192 };	/* a chunk a poll */
	struct tiermm__backend_stats st = { 0 };
	struct tiermm__backend *b;
	struct coll col = { 0 };
	const size_t len = 64 * MIB, npages = len / 4096;
	uint32_t *cnt = calloc(npages, sizeof(*cnt));
	uint64_t passes0 = 0, paired0, calls0, windows, hot_seen = 0, hot_n = 0;
	double cold_seen = 0, cold_n = 0;
	char *region, *sparse;
	int polls = 0;

	(void)state;
	region = fake_scan_region(len);
	fk.h1 = (((uintptr_t)region + 2 * MIB - 1) & ~(2 * MIB - 1)) + 8 * MIB;
	fk.h2 = fk.h3 = fk.last = 1;	/* only h1 is hot */
	fk.tau_ns = 20000000;
	fk.rng = 88172645463325252ull;
	fk.cleared = calloc(npages, sizeof(*fk.cleared));
	assert_non_null(fk.cleared);
	/* A sparse reservation beside it (a JVM heap, a sanitizer's shadow). */
	sparse = mmap(NULL, 64 * 1024 * MIB, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(sparse != MAP_FAILED);
	tiermm__pt_set_dev(&fake_dev);
	assert_int_equal(tiermm__scan_backend.open(&cfg, &b), 0);
	tiermm__scan_backend.stats(b, &st);
	assert_int_equal(st.window_ns, 160000000);

	/* 12 passes: the window adapts. */
	while (st.passes < 12 && polls++ < 20000) {
		assert_true(tiermm__scan_backend.poll(b, coll_sink, &col) >= 0);
		tiermm__scan_backend.stats(b, &st);
		usleep(30000);
	}
	print_message("  window %.1f ms after %" PRIu64 " passes (%" PRIu64 " paired)\n",
		      (double)st.window_ns / 1e6, st.passes, st.paired_passes);
	assert_true(st.passes >= 12);
	assert_true(st.window_ns <= 20000000);
	assert_true(st.window_ns >= 1000000);
	assert_true(st.paired_passes > 0);

	/* 4 more passes: what each page was seen in. */
	col.n = 0;
	passes0 = st.passes;
	paired0 = st.paired_passes;
	calls0 = fk.calls;
	while (st.passes < passes0 + 4 && polls++ < 8000) {
		assert_true(tiermm__scan_backend.poll(b, coll_sink, &col) >= 0);
		tiermm__scan_backend.stats(b, &st);
		usleep(30000);
	}
	assert_int_equal(st.passes, passes0 + 4);
	/*
	 * Chunks of mapped pages, not of address space: the 64 GiB reservation
	 * (and a sanitizer's shadow) costs a scanner call per 1 GiB window per
	 * read, not a chunk pair per 32 MiB (4096 calls for the 64 GiB alone).
	 * And one clearing for the four reports of a paired pass, whose reads
	 * visit only the windows where the clearing found page tables: the
	 * clearing's call per window, then four reads of the few populated
	 * ones (reads of every window made it five calls a window a pass, a
	 * clearing each eight).
	 */
	windows = writable_windows();
	print_message("  %.0f scanner calls a pass (64 GiB reserved beside it; %" PRIu64 " 1 GiB windows writable)\n",
		      (double)(fk.calls - calls0) / 4, windows);
	assert_int_equal(st.paired_passes, paired0 + 1);
	assert_true(fk.calls - calls0 <= 2 * windows + 64);
	for (size_t i = 0; i < col.n; i++) {
		const struct tiermm__obs *o = &col.o[i];
		uint64_t blk = o->addr & ~(2 * MIB - 1);

		if (o->flags == TIERMM__OBS_PASS || (o->flags & TIERMM__OBS_PRESENT))
			continue;
		for (uint64_t k = 0; k < 512; k++)
			if (o->bits[k / 64] & (1ull << (k % 64)))
				cnt[(blk + k * 4096 - (uintptr_t)region) / 4096]++;
	}
	for (size_t p = 0; p < npages; p++) {
		if (fake_hot((uintptr_t)region + p * 4096)) {
			hot_n++;
			hot_seen += cnt[p] == 4;
		} else {
			cold_n += 4;
			cold_seen += cnt[p];
		}
	}
	print_message("  then: hot pages seen in every pass %" PRIu64 "/%" PRIu64 ", cold pages in %.0f%% of the passes\n",
		      hot_seen, hot_n, 100.0 * cold_seen / cold_n);
	assert_int_equal(hot_seen, hot_n);
	assert_true(cold_seen < 0.75 * cold_n);
	tiermm__scan_backend.close(b);
	tiermm__pt_set_dev(NULL);
	munmap(region, len);
	munmap(sparse, 64 * 1024 * MIB);
	free(fk.cleared);
	free(cnt);
	coll_free(&col);
}

/*
 * Arming and bursts, on the wall clock (interval 200 ms: a pass starting
 * more than 600 ms after the last one ended arms). Polled every 10 ms,
 * the first pass arms and reports nothing, the SCAN_BURST (4) passes after
 * it report, and until the last of them poll() says 1 (a pass is due:
 * the runtime's sampler polls on time even over its quota), then 0; after
 * a pause of 1 s the next pass arms again and a burst follows. Under a
 * quota one report per arming pass cost two thirds of the sampler's CPU
 * in arming.
 */
struct scan_seen {
	char kind[16];		/* 'A'rming or 'R'eporting, per completed pass */
	int ret[16];		/* what the poll that completed it returned */
	int n;
	int early_zero;		/* polls that said 0 before the burst's end */
};

static void scan_until(struct tiermm__backend *b, struct coll *col, int passes,
		       struct scan_seen *sn)
{
	struct tiermm__backend_stats st;
	uint64_t arm0, rep0;
	int polls = 0;

	tiermm__scan_backend.stats(b, &st);
	arm0 = st.arm_passes;
	rep0 = st.passes;
	while (sn->n < passes && polls++ < 2000) {
		struct timespec ts = { 0, 10 * 1000000L };
		int r = tiermm__scan_backend.poll(b, coll_sink, col);

		assert_true(r == 0 || r == 1);
		tiermm__scan_backend.stats(b, &st);
		if (st.arm_passes + st.passes != arm0 + rep0) {
			assert_int_equal(st.arm_passes + st.passes, arm0 + rep0 + 1);
			sn->kind[sn->n] = st.arm_passes != arm0 ? 'A' : 'R';
			sn->ret[sn->n++] = r;
			arm0 = st.arm_passes;
			rep0 = st.passes;
		} else if (!r && sn->n && sn->n < 1 + 4) {
			sn->early_zero++;
		}
		nanosleep(&ts, NULL);
	}
	assert_int_equal(sn->n, passes);
}

static void test_scan_burst(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0, .interval_us = 200000 };
	struct tiermm__backend_stats st;
	struct tiermm__backend *b;
	struct coll col = { 0 };
	struct scan_seen a = { 0 }, c = { 0 };
	const size_t len = 16 * MIB;
	size_t marks = 0;
	char *region;

	(void)state;
	region = fake_scan_region(len);
	fk.h1 = (((uintptr_t)region + 2 * MIB - 1) & ~(2 * MIB - 1)) + 2 * MIB;
	tiermm__pt_set_dev(&fake_dev);
	assert_int_equal(tiermm__scan_backend.open(&cfg, &b), 0);

	scan_until(b, &col, 6, &a);
	{
		struct timespec pause = { 1, 0 };

		nanosleep(&pause, NULL);
	}
	scan_until(b, &col, 2, &c);
	print_message("  passes %.6s (poll said %d%d%d%d%d%d), after 1 s %.2s (%d%d); %d early 0s\n",
		      a.kind, a.ret[0], a.ret[1], a.ret[2], a.ret[3], a.ret[4], a.ret[5],
		      c.kind, c.ret[0], c.ret[1], a.early_zero);
	assert_memory_equal(a.kind, "ARRRRR", 6);
	assert_int_equal(a.ret[0], 1);
	assert_int_equal(a.ret[1], 1);
	assert_int_equal(a.ret[2], 1);
	assert_int_equal(a.ret[3], 1);
	assert_int_equal(a.ret[4], 0);	/* the burst's last */
	assert_int_equal(a.ret[5], 0);	/* on time without a quota: no arming */
	assert_int_equal(a.early_zero, 0);
	assert_memory_equal(c.kind, "AR", 2);
	assert_int_equal(c.ret[0], 1);
	assert_int_equal(c.ret[1], 1);
	/* Arming passes report nothing: a PASS mark (and hot pages) per report. */
	tiermm__scan_backend.stats(b, &st);
	assert_int_equal(st.arm_passes, 2);
	assert_int_equal(st.passes, 6);
	for (size_t i = 0; i < col.n; i++)
		marks += col.o[i].flags == TIERMM__OBS_PASS;
	assert_int_equal(marks, 6);
	assert_true(col.n >= 6 * 2);
	tiermm__scan_backend.close(b);
	tiermm__pt_set_dev(NULL);
	munmap(region, len);
	coll_free(&col);
}

static void test_scan_no_module(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0 };
	struct tiermm__backend *b;

	(void)state;
	if (exists("/dev/tiermm"))
		skip();
	tiermm__pt_set_dev(NULL);
	assert_int_equal(tiermm__scan_backend.open(&cfg, &b), -ENODEV);
	assert_non_null(strstr(tiermm_errmsg(), "tiermm.ko is not loaded"));
}

/* ---- damon against a fake sysfs tree -------------------------------------- */

static void put_file(const char *root, const char *rel, const char *val)
{
	char path[4096], dir[4096], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	for (slash = dir + strlen(root) + 1; (slash = strchr(slash, '/')); slash++) {
		*slash = '\0';
		mkdir(dir, 0755);
		*slash = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", val);
	fclose(f);
}

static char *get_file(const char *root, const char *rel)
{
	static char buf[256];
	char path[4096];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf;
}

#define KD "/sys/kernel/mm/damon/admin/kdamonds"

/* A kdamond directory as the kernel creates it (files only). */
static void fake_kdamond(const char *root, int k, const char *state, int nctx,
			 const char *ops)
{
	char p[256], v[32];

#define F(rel, val) do {						\
		snprintf(p, sizeof(p), KD "/%d/%s", k, rel);		\
		put_file(root, p, val);					\
	} while (0)
	F("state", state);
	F("pid", strcmp(state, "on") ? "-1" : "77");
	snprintf(v, sizeof(v), "%d", nctx);
	F("contexts/nr_contexts", v);
	F("contexts/0/avail_operations", ops);
	F("contexts/0/operations", "paddr");
	F("contexts/0/monitoring_attrs/intervals/sample_us", "5000");
	F("contexts/0/monitoring_attrs/intervals/aggr_us", "100000");
	F("contexts/0/monitoring_attrs/intervals/update_us", "1000000");
	F("contexts/0/monitoring_attrs/nr_regions/min", "10");
	F("contexts/0/monitoring_attrs/nr_regions/max", "1000");
	F("contexts/0/targets/nr_targets", "0");
	F("contexts/0/targets/0/pid_target", "0");
	F("contexts/0/schemes/nr_schemes", "0");
	F("contexts/0/schemes/0/action", "pageout");
	F("contexts/0/schemes/0/access_pattern/sz/min", "0");
	F("contexts/0/schemes/0/access_pattern/sz/max", "0");
	F("contexts/0/schemes/0/access_pattern/nr_accesses/min", "0");
	F("contexts/0/schemes/0/access_pattern/nr_accesses/max", "0");
	F("contexts/0/schemes/0/access_pattern/age/min", "0");
	F("contexts/0/schemes/0/access_pattern/age/max", "0");
	F("contexts/0/schemes/0/tried_regions/total_bytes", "0");
#undef F
}

static void fake_region(const char *root, int k, int r, uint64_t start,
			uint64_t end, unsigned int nr_accesses)
{
	char p[256], v[32];

	snprintf(p, sizeof(p), KD "/%d/contexts/0/schemes/0/tried_regions/%d/start", k, r);
	snprintf(v, sizeof(v), "%" PRIu64, start);
	put_file(root, p, v);
	snprintf(p, sizeof(p), KD "/%d/contexts/0/schemes/0/tried_regions/%d/end", k, r);
	snprintf(v, sizeof(v), "%" PRIu64, end);
	put_file(root, p, v);
	snprintf(p, sizeof(p), KD "/%d/contexts/0/schemes/0/tried_regions/%d/nr_accesses", k, r);
	snprintf(v, sizeof(v), "%u", nr_accesses);
	put_file(root, p, v);
	snprintf(p, sizeof(p), KD "/%d/contexts/0/schemes/0/tried_regions/%d/age", k, r);
	put_file(root, p, "3");
}

static void rm_tree(const char *path)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static char *fake_root(void)
{
	static char root[256];

	char run[300];

	snprintf(root, sizeof(root), "/tmp/tiermm-damon-XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(run, sizeof(run), "%s/run", root);
	assert_int_equal(mkdir(run, 0755), 0);
	return root;
}

static void test_damon_usable_fake(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0 };
	char *root = fake_root(), why[512];

	(void)state;
	cfg.fsroot = root;
	/* No DAMON sysfs. */
	assert_int_equal(tiermm__damon_backend.usable(&cfg, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "CONFIG_DAMON_SYSFS"));
	/* No kdamond, unknown config: usable, open() will tell. */
	put_file(root, KD "/nr_kdamonds", "0");
	assert_int_equal(tiermm__damon_backend.usable(&cfg, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "unknown until open()"));
	assert_non_null(strstr(why, "will be created"));
	/* The kernel config says no. */
	put_file(root, "/proc/sys/kernel/osrelease", "6.12.0-test");
	put_file(root, "/boot/config-6.12.0-test", "CONFIG_DAMON=y\n# CONFIG_DAMON_VADDR is not set");
	assert_int_equal(tiermm__damon_backend.usable(&cfg, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "CONFIG_DAMON_VADDR"));
	put_file(root, "/boot/config-6.12.0-test", "CONFIG_DAMON=y\nCONFIG_DAMON_VADDR=y");
	assert_int_equal(tiermm__damon_backend.usable(&cfg, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "vaddr available"));
	/* A running paddr-only kdamond (this host's situation). */
	put_file(root, KD "/nr_kdamonds", "1");
	fake_kdamond(root, 0, "on", 1, "paddr");
	assert_int_equal(tiermm__damon_backend.usable(&cfg, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "without vaddr"));
	/* A running vaddr kdamond and no free slot. */
	fake_kdamond(root, 0, "on", 1, "vaddr fvaddr paddr");
	assert_int_equal(tiermm__damon_backend.usable(&cfg, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "all 1 kdamonds are in use"));
	rm_tree(root);
}

static int poll_until(struct tiermm__backend *b, struct coll *col, size_t want)
{
	for (int i = 0; i < 400 && col->n < want; i++) {
		int ret = tiermm__damon_backend.poll(b, coll_sink, col);

		if (ret)
			return ret;
		usleep(5000);
	}
	return 0;
}

static void test_damon_free_slot_fake(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0, .interval_us = 1000 };
	struct tiermm__backend_stats st;
	struct tiermm__backend *b;
	struct coll col = { 0 };
	char *root = fake_root(), pid[16], *v;

	(void)state;
	cfg.fsroot = root;
	/* Somebody's kdamond 0 runs; kdamond 1 is an unconfigured slot. */
	put_file(root, KD "/nr_kdamonds", "2");
	fake_kdamond(root, 0, "on", 1, "vaddr fvaddr paddr");
	fake_kdamond(root, 1, "off", 0, "vaddr fvaddr paddr");
	fake_region(root, 1, 0, 0x7f0000000000ull, 0x7f0000200000ull, 15);
	fake_region(root, 1, 1, 0x7f0000200000ull, 0x7f0000a00000ull, 1);
	fake_region(root, 1, 2, 0x7f0000a00000ull, 0x7f0010000000ull, 0);

	assert_int_equal(tiermm__damon_backend.open(&cfg, &b), 0);
	/* Configured as documented. */
	assert_string_equal(get_file(root, KD "/1/contexts/nr_contexts"), "1");
	assert_string_equal(get_file(root, KD "/1/contexts/0/operations"), "vaddr");
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	assert_string_equal(get_file(root, KD "/1/contexts/0/targets/0/pid_target"), pid);
	assert_string_equal(get_file(root, KD "/1/contexts/0/targets/nr_targets"), "1");
	assert_string_equal(get_file(root, KD "/1/contexts/0/monitoring_attrs/intervals/sample_us"), "1000");
	assert_string_equal(get_file(root, KD "/1/contexts/0/monitoring_attrs/intervals/aggr_us"), "20000");
	assert_string_equal(get_file(root, KD "/1/contexts/0/monitoring_attrs/intervals/update_us"), "1000000");
	assert_string_equal(get_file(root, KD "/1/contexts/0/monitoring_attrs/nr_regions/min"), "10");
	assert_string_equal(get_file(root, KD "/1/contexts/0/monitoring_attrs/nr_regions/max"), "1000");
	assert_string_equal(get_file(root, KD "/1/contexts/0/schemes/nr_schemes"), "1");
	assert_string_equal(get_file(root, KD "/1/contexts/0/schemes/0/action"), "stat");
	assert_string_equal(get_file(root, KD "/1/contexts/0/schemes/0/access_pattern/nr_accesses/min"), "1");
	assert_string_equal(get_file(root, KD "/1/contexts/0/schemes/0/access_pattern/sz/max"),
			    "18446744073709551615");
	/* kdamond 0 untouched, nr_kdamonds not rewritten. */
	assert_string_equal(get_file(root, KD "/nr_kdamonds"), "2");
	assert_string_equal(get_file(root, KD "/0/state"), "on");
	assert_string_equal(get_file(root, KD "/0/contexts/0/operations"), "paddr");

	assert_int_equal(poll_until(b, &col, 2), 0);
	assert_true(col.n >= 2);
	for (size_t i = 0; i < col.n; i++) {
		const struct tiermm__obs *o = &col.o[i];

		assert_int_equal(o->flags, TIERMM__OBS_RANGE);
		if (o->addr == 0x7f0000000000ull) {
			assert_int_equal(o->weight, 512);
			assert_int_equal(o->hits, 15);
		} else if (o->addr == 0x7f0000200000ull) {
			assert_int_equal(o->weight, 2048);
			assert_int_equal(o->hits, 1);
		} else {
			fail_msg("unexpected region 0x%" PRIx64, o->addr);	/* nr 0 */
		}
	}
	tiermm__damon_backend.stats(b, &st);
	assert_true(st.passes >= 1);
	assert_true(st.regions >= 3);
	assert_int_equal(st.observations, col.n);
	/* The update command went to our kdamond's state file. */
	v = get_file(root, KD "/1/state");
	assert_true(!strcmp(v, "update_schemes_tried_regions") || !strcmp(v, "on"));
	tiermm__damon_backend.close(b);
	/* Given back as found: off, no context; kdamond 0 still untouched. */
	assert_string_equal(get_file(root, KD "/1/state"), "off");
	assert_string_equal(get_file(root, KD "/1/contexts/nr_contexts"), "0");
	assert_string_equal(get_file(root, KD "/nr_kdamonds"), "2");
	assert_string_equal(get_file(root, KD "/0/state"), "on");
	coll_free(&col);
	rm_tree(root);
}

static void test_damon_create_fake(void **state)
{
	struct tiermm__backend_cfg cfg = { .pid = 0, .interval_us = 1000 };
	struct tiermm__backend *b;
	char *root = fake_root();

	(void)state;
	cfg.fsroot = root;
	/* No kdamond: we create one (the fake tree pre-creates its files). */
	put_file(root, KD "/nr_kdamonds", "0");
	fake_kdamond(root, 0, "off", 0, "vaddr fvaddr paddr");
	assert_int_equal(tiermm__damon_backend.open(&cfg, &b), 0);
	assert_string_equal(get_file(root, KD "/nr_kdamonds"), "1");
	assert_string_equal(get_file(root, KD "/0/contexts/0/operations"), "vaddr");
	tiermm__damon_backend.close(b);
	/* ... and remove it again. */
	assert_string_equal(get_file(root, KD "/nr_kdamonds"), "0");
	assert_string_equal(get_file(root, KD "/0/state"), "off");

	/* A kernel without vaddr: open() fails and undoes everything. */
	fake_kdamond(root, 0, "off", 0, "paddr");
	assert_int_equal(tiermm__damon_backend.open(&cfg, &b), -ENOTSUP);
	assert_non_null(strstr(tiermm_errmsg(), "without vaddr"));
	assert_string_equal(get_file(root, KD "/nr_kdamonds"), "0");

	/* All slots busy: EBUSY, nothing written. */
	put_file(root, KD "/nr_kdamonds", "1");
	fake_kdamond(root, 0, "on", 1, "vaddr paddr");
	assert_int_equal(tiermm__damon_backend.open(&cfg, &b), -EBUSY);
	assert_string_equal(get_file(root, KD "/nr_kdamonds"), "1");
	assert_string_equal(get_file(root, KD "/0/contexts/0/operations"), "paddr");
	rm_tree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_sample_types),
		cmocka_unit_test(test_parse_empty_and_args),
		cmocka_unit_test(test_parse_ids_pid_memop),
		cmocka_unit_test(test_parse_sink_error),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_bad_records),
		cmocka_unit_test(test_parse_garbage),
		cmocka_unit_test(test_ring_drain),
		cmocka_unit_test(test_fixture_pebs),
		cmocka_unit_test(test_fixture_ibs),
		cmocka_unit_test(test_backend_find),
		cmocka_unit_test(test_backend_auto_host),
		cmocka_unit_test(test_perf_sw_self),
		cmocka_unit_test(test_perf_sw_child_threads),
		cmocka_unit_test(test_perf_open_errors),
		cmocka_unit_test(test_perf_plan_intel),
		cmocka_unit_test(test_perf_plan_hybrid),
		cmocka_unit_test(test_perf_plan_ibs),
		cmocka_unit_test(test_perf_plan_sw),
		cmocka_unit_test(test_scan_fake_module),
		cmocka_unit_test(test_scan_burst),
		cmocka_unit_test(test_scan_window),
		cmocka_unit_test(test_scan_no_module),
		cmocka_unit_test(test_damon_usable_fake),
		cmocka_unit_test(test_damon_free_slot_fake),
		cmocka_unit_test(test_damon_create_fake),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
