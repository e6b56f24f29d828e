// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shim_workload MIB PASSES: a program with a hot set, for the tiering
 * runtime to find. It maps MIB MiB, fills them, then makes PASSES passes
 * of random writes over the first eighth (the hot set) and, every eighth
 * pass, reads one byte of every page (the cold rest). It prints the sizes
 * and a checksum of the whole buffer: the output depends on the arguments
 * only, so runs with and without the shim (pages moving under the
 * program) can be compared. Exit status 0, 2 on bad arguments.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 64, passes = argc > 2 ? atol(argv[2]) : 100;
	size_t size, hot;
	uint64_t rng = 0x2545f4914f6cdd1dULL, sum = 0, cold = 0;
	unsigned char *p;

	if (mib < 1 || mib > 65536 || passes < 0) {
		fprintf(stderr, "usage: shim_workload MIB PASSES\n");
		return 2;
	}
	size = (size_t)mib << 20;
	hot = size / 8;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("shim_workload: mmap");
		return 1;
	}
	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)(i * 2654435761u >> 13);
	for (long pass = 0; pass < passes; pass++) {
		for (size_t k = 0; k < hot / 64; k++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			p[rng % hot]++;
		}
		if (pass % 8 == 0)
			for (size_t i = 0; i < size; i += 4096)
				cold += p[i];
	}
	for (size_t i = 0; i < size; i++)
		sum = sum * 31 + p[i];
	printf("shim_workload: %ld MiB, hot set %zu MiB, %ld passes\n", mib, hot >> 20, passes);
	printf("checksum %016" PRIx64 ", cold reads %" PRIu64 "\n", sum, cold);
	munmap(p, size);
	return 0;
}
