// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer harness for tiermm__perf_parse() (lib/perf_parse.c), built with
 * clang -fsanitize=fuzzer,address,undefined when clang is available.
 *
 * Input: u64 sample_type, one mode byte, then the ring data.
 *   mode bit 0: TIERMM__PERF_STORES     bit 1: TIERMM__PERF_MEM_OP
 *   bit 2: keep pid 4242 only           bit 3: event ids 1001..1016 (loads
 *   bit 4: keep unsized sample_type bits      and stores alternating, or all
 *                                             MEM_OP with bit 1)
 * The stream is copied to a buffer of exactly its size, so any read past it
 * is an ASan report. Besides not crashing, the harness checks what the
 * parser promises: -EINVAL delivers nothing, a success delivers exactly the
 * loads + stores it counted, every observation is a sample (weight 1, hits
 * 0) at a user address.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/perf_event.h>

#include "tiering.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UNSIZED (PERF_SAMPLE_READ | PERF_SAMPLE_BRANCH_STACK | \
		 PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER | \
		 PERF_SAMPLE_REGS_INTR | PERF_SAMPLE_AUX)

static uint64_t seen;

static int sink(const struct tiermm__obs *obs, size_t n, void *ctx)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		if (obs[i].hits || obs[i].reserved || obs[i].weight != 1 || !obs[i].addr ||
		    (obs[i].addr >> 63) || (obs[i].flags & ~TIERMM__OBS_STORE))
			abort();
	}
	seen += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tiermm__perf_id ids[16];
	struct tiermm__perf_counts c;
	struct tiermm__perf_stream s;
	uint64_t st;
	uint8_t mode;
	unsigned char *copy;
	size_t len;
	int ret;

	if (size < 9)
		return 0;
	memcpy(&st, data, 8);
	mode = data[8];
	if (!(mode & 16))
		st &= ~(uint64_t)UNSIZED;
	st &= (uint64_t)PERF_SAMPLE_WEIGHT_STRUCT * 4 - 1;	/* a few unknown bits */
	memset(&s, 0, sizeof(s));
	s.sample_type = st;
	s.flags = mode & 3;
	s.pid = (mode & 4) ? 4242 : 0;
	if (mode & 8) {
		for (int i = 0; i < 16; i++)
			ids[i] = (struct tiermm__perf_id){
				.id = 1001 + (uint64_t)i,
				.flags = (mode & 2) ? TIERMM__PERF_MEM_OP :
					 (i % 2 ? TIERMM__PERF_STORES : 0),
			};
		s.ids = ids;
		s.nr_ids = 16;
	}
	len = size - 9;
	copy = malloc(len ? len : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 9, len);
	memset(&c, 0, sizeof(c));
	seen = 0;
	ret = tiermm__perf_parse(copy, len, &s, sink, NULL, &c);
	if (ret < 0 && seen)
		abort();	/* validated before delivery */
	if (ret >= 0 && (uint64_t)ret != seen)
		abort();
	if (ret >= 0 && c.loads + c.stores != seen)
		abort();
	if (ret < 0 && ret != -EINVAL && ret != -EOPNOTSUPP)
		abort();
	free(copy);
	return 0;
}
