/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Building perf ring-buffer records byte by byte, as the kernel writes them
 * (include/uapi/linux/perf_event.h, perf_output_sample() order), for the
 * unit tests, the fixture generator and the fuzzer's seeds.
 */
#ifndef TIERMM_TESTS_PERF_RECORDS_H
#define TIERMM_TESTS_PERF_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/perf_event.h>

struct pbuf {
	unsigned char *p;
	size_t len, cap;
};

static inline void pb_put(struct pbuf *b, const void *v, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;

		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, v, n);
	b->len += n;
}

static inline void pb_u64(struct pbuf *b, uint64_t v)
{
	pb_put(b, &v, 8);
}

static inline void pb_u32(struct pbuf *b, uint32_t v)
{
	pb_put(b, &v, 4);
}

static inline void pb_free(struct pbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Every field a sample may carry (only the selected ones are written). */
struct psample {
	uint64_t id, ip;
	uint32_t pid, tid;
	uint64_t time, addr, stream_id;
	uint32_t cpu;
	uint64_t period;
	uint32_t callchain_nr;	/* ips written as 0xc0de0000 + i */
	uint32_t raw_size;	/* raw bytes after the u32 (4 + size % 8 == 0) */
	uint64_t weight, data_src, transaction, phys_addr, cgroup;
	uint64_t data_page_size, code_page_size;
};

/* Start a record: returns its offset, for pr_end(). */
static inline size_t pr_begin(struct pbuf *b, uint32_t type, uint16_t misc)
{
	struct perf_event_header h = { .type = type, .misc = misc, .size = 0 };
	size_t at = b->len;

	pb_put(b, &h, sizeof(h));
	return at;
}

/* Finish a record: header.size from what was written. */
static inline void pr_end(struct pbuf *b, size_t at)
{
	uint16_t size = (uint16_t)(b->len - at);

	memcpy(b->p + at + offsetof(struct perf_event_header, size), &size, 2);
}

static inline void pr_sample_body(struct pbuf *b, uint64_t st,
				  const struct psample *s)
{
	if (st & PERF_SAMPLE_IDENTIFIER)
		pb_u64(b, s->id);
	if (st & PERF_SAMPLE_IP)
		pb_u64(b, s->ip);
	if (st & PERF_SAMPLE_TID) {
		pb_u32(b, s->pid);
		pb_u32(b, s->tid);
	}
	if (st & PERF_SAMPLE_TIME)
		pb_u64(b, s->time);
	if (st & PERF_SAMPLE_ADDR)
		pb_u64(b, s->addr);
	if (st & PERF_SAMPLE_ID)
		pb_u64(b, s->id);
	if (st & PERF_SAMPLE_STREAM_ID)
		pb_u64(b, s->stream_id);
	if (st & PERF_SAMPLE_CPU) {
		pb_u32(b, s->cpu);
		pb_u32(b, 0);
	}
	if (st & PERF_SAMPLE_PERIOD)
		pb_u64(b, s->period);
	if (st & PERF_SAMPLE_CALLCHAIN) {
		pb_u64(b, s->callchain_nr);
		for (uint32_t i = 0; i < s->callchain_nr; i++)
			pb_u64(b, 0xc0de0000u + i);
	}
	if (st & PERF_SAMPLE_RAW) {
		pb_u32(b, s->raw_size);
		for (uint32_t i = 0; i < s->raw_size; i++) {
			unsigned char c = (unsigned char)(0xa0 + i);

			pb_put(b, &c, 1);
		}
	}
	if (st & (PERF_SAMPLE_WEIGHT | PERF_SAMPLE_WEIGHT_STRUCT))
		pb_u64(b, s->weight);
	if (st & PERF_SAMPLE_DATA_SRC)
		pb_u64(b, s->data_src);
	if (st & PERF_SAMPLE_TRANSACTION)
		pb_u64(b, s->transaction);
	if (st & PERF_SAMPLE_PHYS_ADDR)
		pb_u64(b, s->phys_addr);
	if (st & PERF_SAMPLE_CGROUP)
		pb_u64(b, s->cgroup);
	if (st & PERF_SAMPLE_DATA_PAGE_SIZE)
		pb_u64(b, s->data_page_size);
	if (st & PERF_SAMPLE_CODE_PAGE_SIZE)
		pb_u64(b, s->code_page_size);
}

static inline void pr_sample(struct pbuf *b, uint64_t st, const struct psample *s)
{
	size_t at = pr_begin(b, PERF_RECORD_SAMPLE, PERF_RECORD_MISC_USER);

	pr_sample_body(b, st, s);
	pr_end(b, at);
}

/* The sample_id trailer of non-sample records (attr.sample_id_all). */
static inline void pr_sample_id(struct pbuf *b, uint64_t st,
				const struct psample *s)
{
	if (st & PERF_SAMPLE_TID) {
		pb_u32(b, s->pid);
		pb_u32(b, s->tid);
	}
	if (st & PERF_SAMPLE_TIME)
		pb_u64(b, s->time);
	if (st & PERF_SAMPLE_ID)
		pb_u64(b, s->id);
	if (st & PERF_SAMPLE_STREAM_ID)
		pb_u64(b, s->stream_id);
	if (st & PERF_SAMPLE_CPU) {
		pb_u32(b, s->cpu);
		pb_u32(b, 0);
	}
	if (st & PERF_SAMPLE_IDENTIFIER)
		pb_u64(b, s->id);
}

static inline void pr_lost(struct pbuf *b, uint64_t st, const struct psample *sid,
			   uint64_t id, uint64_t lost)
{
	size_t at = pr_begin(b, PERF_RECORD_LOST, 0);

	pb_u64(b, id);
	pb_u64(b, lost);
	pr_sample_id(b, st, sid);
	pr_end(b, at);
}

static inline void pr_lost_samples(struct pbuf *b, uint64_t st,
				   const struct psample *sid, uint64_t lost)
{
	size_t at = pr_begin(b, PERF_RECORD_LOST_SAMPLES, 0);

	pb_u64(b, lost);
	pr_sample_id(b, st, sid);
	pr_end(b, at);
}

static inline void pr_throttle(struct pbuf *b, uint64_t st,
			       const struct psample *sid, int unthrottle)
{
	size_t at = pr_begin(b, unthrottle ? PERF_RECORD_UNTHROTTLE :
				PERF_RECORD_THROTTLE, 0);

	pb_u64(b, sid->time);
	pb_u64(b, sid->id);
	pb_u64(b, sid->stream_id);
	pr_sample_id(b, st, sid);
	pr_end(b, at);
}

static inline void pr_mmap2(struct pbuf *b, uint64_t st, const struct psample *sid,
			    uint64_t addr, uint64_t len, const char *file)
{
	size_t at = pr_begin(b, PERF_RECORD_MMAP2, PERF_RECORD_MISC_USER);
	size_t n = strlen(file) + 1;
	static const unsigned char zero[8];

	pb_u32(b, sid->pid);
	pb_u32(b, sid->tid);
	pb_u64(b, addr);
	pb_u64(b, len);
	pb_u64(b, 0);		/* pgoff */
	pb_u32(b, 8);		/* maj */
	pb_u32(b, 1);		/* min */
	pb_u64(b, 123456);	/* ino */
	pb_u64(b, 0);		/* ino_generation */
	pb_u32(b, 5);		/* prot: PROT_READ | PROT_EXEC */
	pb_u32(b, 2);		/* flags: MAP_PRIVATE */
	pb_put(b, file, n);
	pb_put(b, zero, (8 - n % 8) % 8);
	pr_sample_id(b, st, sid);
	pr_end(b, at);
}

static inline void pr_comm(struct pbuf *b, uint64_t st, const struct psample *sid,
			   const char *comm)
{
	size_t at = pr_begin(b, PERF_RECORD_COMM, 0);
	size_t n = strlen(comm) + 1;
	static const unsigned char zero[8];

	pb_u32(b, sid->pid);
	pb_u32(b, sid->tid);
	pb_put(b, comm, n);
	pb_put(b, zero, (8 - n % 8) % 8);
	pr_sample_id(b, st, sid);
	pr_end(b, at);
}

#endif /* TIERMM_TESTS_PERF_RECORDS_H */
