// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * perf ring-buffer records -> access observations.
 *
 * The record layouts are those of include/uapi/linux/perf_event.h (Linux
 * 6.12): a struct perf_event_header, then for PERF_RECORD_SAMPLE the fields
 * selected by sample_type in the fixed order perf_output_sample() writes
 * them. Every read is bounds-checked against the record's header.size and
 * the record against the buffer; a sample must fill its record exactly.
 * The input may come from a file or a fuzzer, so nothing is assumed about
 * its alignment: fields are read with memcpy.
 *
 * Self-contained (no other library file) so that the fuzz harness builds it
 * alone with clang.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <linux/perf_event.h>

#include "tiering.h"

/* Fields whose size depends on attributes this parser is not told. */
#define UNSIZED (PERF_SAMPLE_READ | PERF_SAMPLE_BRANCH_STACK | \
		 PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER | \
		 PERF_SAMPLE_REGS_INTR | PERF_SAMPLE_AUX)
/* Every bit up to PERF_SAMPLE_WEIGHT_STRUCT (Linux 5.12, still last). */
#define KNOWN ((uint64_t)PERF_SAMPLE_WEIGHT_STRUCT * 2 - 1)

/* Ring-buffer record types are the kernel's (perf.data user types are 64+). */
#define RECORD_TYPE_LIMIT 64

#define OBS_BATCH 128

struct parse {
	const struct tiermm__perf_stream *s;
	bool deliver;
	tiermm__obs_sink sink;
	void *ctx;
	struct tiermm__perf_counts *c;
	struct tiermm__obs batch[OBS_BATCH];
	size_t nbatch;
	uint64_t delivered;
};

/* A bounded reader over one record's body. */
struct cursor {
	const unsigned char *p;
	size_t len, pos;
};

static bool take(struct cursor *cur, size_t n, const unsigned char **at)
{
	if (n > cur->len - cur->pos)
		return false;
	*at = cur->p + cur->pos;
	cur->pos += n;
	return true;
}

static bool get_u64(struct cursor *cur, uint64_t *v)
{
	const unsigned char *at;

	if (!take(cur, 8, &at))
		return false;
	memcpy(v, at, 8);
	return true;
}

static bool skip_u64(struct cursor *cur)
{
	uint64_t v;

	return get_u64(cur, &v);
}

static int flush(struct parse *ps)
{
	int ret;

	if (!ps->nbatch)
		return 0;
	ret = ps->sink(ps->batch, ps->nbatch, ps->ctx);
	ps->delivered += ps->nbatch;
	ps->nbatch = 0;
	return ret < 0 ? ret : 0;
}

static int cmp_id(const void *key, const void *elem)
{
	uint64_t k = *(const uint64_t *)key;
	const struct tiermm__perf_id *e = elem;

	return k < e->id ? -1 : k > e->id;
}

/* One PERF_RECORD_SAMPLE body (after the header). */
static int sample(struct parse *ps, const unsigned char *body, size_t len)
{
	const struct tiermm__perf_stream *s = ps->s;
	uint64_t st = s->sample_type, id = 0, addr = 0, time = s->now_ns;
	uint64_t weight = 0, data_src = 0, v;
	uint32_t pid = 0, flags = s->flags;
	struct cursor cur = { body, len, 0 };
	const unsigned char *at;
	bool store;

	if ((st & PERF_SAMPLE_IDENTIFIER) && !get_u64(&cur, &id))
		return -EINVAL;
	if ((st & PERF_SAMPLE_IP) && !skip_u64(&cur))
		return -EINVAL;
	if (st & PERF_SAMPLE_TID) {
		if (!take(&cur, 8, &at))
			return -EINVAL;
		memcpy(&pid, at, 4);
	}
	if ((st & PERF_SAMPLE_TIME) && !get_u64(&cur, &time))
		return -EINVAL;
	if ((st & PERF_SAMPLE_ADDR) && !get_u64(&cur, &addr))
		return -EINVAL;
	if (st & PERF_SAMPLE_ID) {
		if (!get_u64(&cur, &v))
			return -EINVAL;
		if (!(st & PERF_SAMPLE_IDENTIFIER))
			id = v;
	}
	if ((st & PERF_SAMPLE_STREAM_ID) && !skip_u64(&cur))
		return -EINVAL;
	if ((st & PERF_SAMPLE_CPU) && !skip_u64(&cur))
		return -EINVAL;
	if ((st & PERF_SAMPLE_PERIOD) && !skip_u64(&cur))
		return -EINVAL;
	if (st & PERF_SAMPLE_CALLCHAIN) {
		uint64_t nr;

		if (!get_u64(&cur, &nr) || nr > (cur.len - cur.pos) / 8 ||
		    !take(&cur, (size_t)nr * 8, &at))
			return -EINVAL;
	}
	if (st & PERF_SAMPLE_RAW) {
		uint32_t size;

		/* u32 size, then size bytes; together a multiple of 8. */
		if (!take(&cur, 4, &at))
			return -EINVAL;
		memcpy(&size, at, 4);
		if ((4 + (uint64_t)size) % 8 || !take(&cur, size, &at))
			return -EINVAL;
	}
	if (st & (PERF_SAMPLE_WEIGHT | PERF_SAMPLE_WEIGHT_STRUCT)) {
		if (!get_u64(&cur, &weight))
			return -EINVAL;
		/* The struct's var1_dw (the load latency) is the low word. */
		if (st & PERF_SAMPLE_WEIGHT_STRUCT)
			weight &= 0xffffffffu;
	}
	if ((st & PERF_SAMPLE_DATA_SRC) && !get_u64(&cur, &data_src))
		return -EINVAL;
	if ((st & PERF_SAMPLE_TRANSACTION) && !skip_u64(&cur))
		return -EINVAL;
	if ((st & PERF_SAMPLE_PHYS_ADDR) && !skip_u64(&cur))
		return -EINVAL;
	if ((st & PERF_SAMPLE_CGROUP) && !skip_u64(&cur))
		return -EINVAL;
	if ((st & PERF_SAMPLE_DATA_PAGE_SIZE) && !skip_u64(&cur))
		return -EINVAL;
	if ((st & PERF_SAMPLE_CODE_PAGE_SIZE) && !skip_u64(&cur))
		return -EINVAL;
	if (cur.pos != cur.len)
		return -EINVAL;	/* the fields must fill the record */

	if (!ps->deliver)
		return 0;
	ps->c->samples++;
	if (s->ids) {
		const struct tiermm__perf_id *e = !s->nr_ids ? NULL :
			bsearch(&id, s->ids, s->nr_ids, sizeof(*s->ids), cmp_id);

		if (!e) {
			ps->c->unknown_id++;
			return 0;
		}
		flags = e->flags;
	}
	if (s->pid && pid != (uint32_t)s->pid) {
		ps->c->other_pid++;
		return 0;
	}
	if (flags & TIERMM__PERF_MEM_OP) {
		/* union perf_mem_data_src: mem_op is bits 0-4. */
		if (data_src & PERF_MEM_OP_LOAD)
			store = false;
		else if (data_src & PERF_MEM_OP_STORE)
			store = true;
		else {
			ps->c->no_addr++;
			return 0;
		}
	} else {
		store = flags & TIERMM__PERF_STORES;
	}
	/* No address, or one in the kernel half (IBS ops in the kernel). */
	if (!addr || (addr >> 63)) {
		ps->c->no_addr++;
		return 0;
	}
	if (weight) {
		ps->c->weight_sum += weight;
		ps->c->weight_n++;
	}
	if (store)
		ps->c->stores++;
	else
		ps->c->loads++;
	ps->batch[ps->nbatch++] = (struct tiermm__obs){
		.addr = addr,
		.weight = 1,
		.flags = store ? TIERMM__OBS_STORE : 0,
		.time_ns = time,
	};
	if (ps->nbatch == OBS_BATCH)
		return flush(ps);
	return 0;
}

/* Smallest body (after the header) of the record types read or skipped. */
static size_t min_body(uint32_t type)
{
	switch (type) {
	case PERF_RECORD_MMAP:		/* pid, tid, addr, len, pgoff */
		return 32;
	case PERF_RECORD_LOST:		/* id, lost */
		return 16;
	case PERF_RECORD_COMM:		/* pid, tid */
		return 8;
	case PERF_RECORD_EXIT:
	case PERF_RECORD_FORK:		/* pid, ppid, tid, ptid, time */
	case PERF_RECORD_THROTTLE:
	case PERF_RECORD_UNTHROTTLE:	/* time, id, stream_id */
		return 24;
	case PERF_RECORD_MMAP2:		/* ... pgoff, 24-byte union, prot, flags */
		return 64;
	case PERF_RECORD_LOST_SAMPLES:	/* lost */
		return 8;
	default:
		return 0;
	}
}

static int walk(struct parse *ps, const unsigned char *p, size_t len)
{
	size_t off = 0;
	int ret;

	while (off < len) {
		struct perf_event_header h;
		const unsigned char *body;
		size_t blen;
		uint64_t v;

		if (len - off < sizeof(h))
			return -EINVAL;
		memcpy(&h, p + off, sizeof(h));
		if (h.size < sizeof(h) || h.size % 8 || h.size > len - off ||
		    h.type == 0 || h.type >= RECORD_TYPE_LIMIT)
			return -EINVAL;
		body = p + off + sizeof(h);
		blen = h.size - sizeof(h);
		off += h.size;
		if (h.type == PERF_RECORD_SAMPLE) {
			ret = sample(ps, body, blen);
			if (ret)
				return ret;
			continue;
		}
		if (blen < min_body(h.type))
			return -EINVAL;
		if (!ps->deliver)
			continue;
		switch (h.type) {
		case PERF_RECORD_LOST:
			memcpy(&v, body + 8, 8);
			ps->c->lost += v;
			break;
		case PERF_RECORD_LOST_SAMPLES:
			memcpy(&v, body, 8);
			ps->c->lost_samples += v;
			break;
		case PERF_RECORD_THROTTLE:
			ps->c->throttle++;
			break;
		case PERF_RECORD_UNTHROTTLE:
			ps->c->unthrottle++;
			break;
		default:
			ps->c->other_records++;
			break;
		}
	}
	return 0;
}

int tiermm__perf_parse(const void *data, size_t len,
		       const struct tiermm__perf_stream *s,
		       tiermm__obs_sink sink, void *ctx,
		       struct tiermm__perf_counts *counts)
{
	struct tiermm__perf_counts scratch;
	struct parse *ps;
	bool need_src;
	uint64_t st;
	int ret;

	if ((!data && len) || !s || !sink)
		return -EINVAL;
	st = s->sample_type;
	if ((st & UNSIZED) || (st & ~KNOWN))
		return -EOPNOTSUPP;
	if (!(st & PERF_SAMPLE_ADDR))
		return -EOPNOTSUPP;	/* nothing to observe */
	if ((st & PERF_SAMPLE_WEIGHT) && (st & PERF_SAMPLE_WEIGHT_STRUCT))
		return -EINVAL;	/* perf_event_open refuses both */
	if (s->ids && !(st & (PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_ID)))
		return -EINVAL;
	if (s->pid && !(st & PERF_SAMPLE_TID))
		return -EINVAL;
	need_src = s->flags & TIERMM__PERF_MEM_OP;
	for (size_t i = 0; s->ids && i < s->nr_ids; i++)
		need_src |= s->ids[i].flags & TIERMM__PERF_MEM_OP;
	if (need_src && !(st & PERF_SAMPLE_DATA_SRC))
		return -EINVAL;
	for (size_t i = 1; s->ids && i < s->nr_ids; i++)
		if (s->ids[i - 1].id >= s->ids[i].id)
			return -EINVAL;	/* must be sorted, no duplicates */

	/* The batch is too big for some threads' stacks. */
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->s = s;
	ps->sink = sink;
	ps->ctx = ctx;
	ps->c = counts ? counts : &scratch;
	memset(&scratch, 0, sizeof(scratch));

	/* Validate everything first, then deliver. */
	ps->deliver = false;
	ret = walk(ps, data, len);
	if (!ret) {
		ps->deliver = true;
		ret = walk(ps, data, len);
		if (!ret)
			ret = flush(ps);
	}
	if (!ret)
		ret = ps->delivered > INT_MAX ? INT_MAX : (int)ps->delivered;
	free(ps);
	return ret;
}

ssize_t tiermm__perf_ring_drain(struct perf_event_mmap_page *meta,
				const unsigned char *data, uint64_t size,
				void *out, size_t outlen)
{
	uint64_t head, tail, avail, off, first;

	if (!size || (size & (size - 1)))
		return -EINVAL;
	/* Pairs with the kernel's smp_store_release() of data_head. */
	head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
	tail = __atomic_load_n(&meta->data_tail, __ATOMIC_RELAXED);
	avail = head - tail;
	if (!avail)
		return 0;
	if (avail > size || avail > outlen || avail % 8) {
		/* Cannot happen with a writable mapping: start over. */
		__atomic_store_n(&meta->data_tail, head, __ATOMIC_RELEASE);
		return -EIO;
	}
	off = tail & (size - 1);
	first = size - off < avail ? size - off : avail;
	memcpy(out, data + off, first);
	memcpy((unsigned char *)out + first, data, avail - first);
	/* Our reads of the records happen before the kernel may reuse them. */
	__atomic_store_n(&meta->data_tail, head, __ATOMIC_RELEASE);
	return (ssize_t)avail;
}
