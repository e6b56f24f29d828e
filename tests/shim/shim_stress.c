// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shim_stress [THREADS [ROUNDS]]: threads that malloc/realloc/free and
 * mmap/munmap/mremap (grow, shrink, move, MREMAP_FIXED into a reservation,
 * partial munmap, MAP_FIXED over their own mappings, file mappings) and
 * check their data after every step. What each thread does depends on its
 * seed only, so the output is the same on every run whatever the
 * interleaving, with or without libtiermm-preload.so: the tests compare it.
 * It keeps KEEP_BYTES mapped at exit (the shim's exit record must count
 * them). Exit status 0, or 1 after printing what did not verify.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SLOTS 48
#define PAGE 4096UL
#define KEEP_BYTES (8UL << 20)

enum kind { EMPTY, HEAP, MAP };

struct obj {
	enum kind kind;
	unsigned char *p;
	size_t len;
	uint32_t id;
};

struct worker {
	int idx;
	uint64_t rng;
	long rounds;
	struct obj o[SLOTS];
	uint64_t ops[10], checksum;
	long failures;
	const unsigned char *exe;
	size_t exe_len;
};

static uint64_t next(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static unsigned char pat(uint32_t id, size_t off)
{
	return (unsigned char)(id * 131u + off * 7u + (off >> 12));
}

static void fill(struct obj *o, size_t from)
{
	for (size_t i = from; i < o->len; i++)
		o->p[i] = pat(o->id, i);
}

static int check(struct worker *w, const struct obj *o, size_t i, const char *what)
{
	if (o->p[i] != pat(o->id, i)) {
		printf("FAIL thread %d: %s: object %u byte %zu is %u, expected %u\n", w->idx, what,
		       o->id, i, o->p[i], pat(o->id, i));
		w->failures++;
		return -1;
	}
	w->checksum += o->p[i];
	return 0;
}

/* Check every 512th byte and the last one; add them to the checksum. */
static int verify(struct worker *w, const struct obj *o, const char *what)
{
	for (size_t i = 0; i < o->len; i += 512)
		if (check(w, o, i, what))
			return -1;
	return check(w, o, o->len - 1, what);
}

static void drop(struct worker *w, struct obj *o)
{
	verify(w, o, "before release");
	if (o->kind == HEAP)
		free(o->p);
	else if (munmap(o->p, o->len))
		w->failures++;
	o->kind = EMPTY;
}

static void step(struct worker *w, uint32_t id)
{
	struct obj *o = &w->o[next(&w->rng) % SLOTS];
	unsigned int op = (unsigned int)(next(&w->rng) % 10);

	if (o->kind == EMPTY) {
		/* Fill the slot: heap or mapping. */
		o->id = id;
		if (op < 5) {
			o->len = 1 + next(&w->rng) % (256 * 1024);
			o->p = malloc(o->len);
			o->kind = HEAP;
			w->ops[0]++;
		} else {
			o->len = PAGE * (1 + next(&w->rng) % 64);
			o->p = mmap(NULL, o->len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (o->p == MAP_FAILED) {
				printf("FAIL thread %d: mmap: %s\n", w->idx, strerror(errno));
				w->failures++;
				o->kind = EMPTY;
				return;
			}
			o->kind = MAP;
			w->ops[1]++;
		}
		if (o->kind == HEAP && !o->p) {
			w->failures++;
			o->kind = EMPTY;
			return;
		}
		fill(o, 0);
		return;
	}
	if (verify(w, o, "step") < 0)
		return;
	if (o->kind == HEAP) {
		if (op < 6) {
			drop(w, o);
			w->ops[2]++;
		} else {
			size_t nl = 1 + next(&w->rng) % (512 * 1024), old = o->len;
			unsigned char *np = realloc(o->p, nl);

			if (!np) {
				w->failures++;
				return;
			}
			o->p = np;
			o->len = nl;
			if (nl > old)
				fill(o, old);
			w->ops[3]++;
		}
		return;
	}
	switch (op) {
	case 0:
	case 1:
	case 2:
		drop(w, o);
		w->ops[4]++;
		break;
	case 3: {
		/* Grow, maybe moving. */
		size_t nl = o->len + PAGE * (1 + next(&w->rng) % 32), old = o->len;
		void *np = mremap(o->p, o->len, nl, MREMAP_MAYMOVE);

		if (np == MAP_FAILED) {
			printf("FAIL thread %d: mremap grow: %s\n", w->idx, strerror(errno));
			w->failures++;
			return;
		}
		o->p = np;
		o->len = nl;
		fill(o, old);
		w->ops[5]++;
		break;
	}
	case 4:
		/* Shrink in place. */
		if (o->len > PAGE) {
			size_t nl = PAGE * (1 + next(&w->rng) % (o->len / PAGE - 1 + 1));

			if (nl >= o->len)
				nl = o->len - PAGE;
			if (mremap(o->p, o->len, nl, 0) != o->p) {
				w->failures++;
				return;
			}
			o->len = nl;
			w->ops[6]++;
		}
		break;
	case 5: {
		/* Move into a reservation with MREMAP_FIXED. */
		void *res = mmap(NULL, o->len + PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		void *np;

		if (res == MAP_FAILED) {
			w->failures++;
			return;
		}
		np = mremap(o->p, o->len, o->len, MREMAP_MAYMOVE | MREMAP_FIXED,
			    (char *)res + PAGE);
		if (np != (char *)res + PAGE) {
			printf("FAIL thread %d: mremap fixed: %s\n", w->idx, strerror(errno));
			w->failures++;
			munmap(res, o->len + PAGE);
			return;
		}
		/* The reservation's first page is left: unmap it. */
		munmap(res, PAGE);
		o->p = np;
		w->ops[7]++;
		break;
	}
	case 6:
		/* Unmap the tail. */
		if (o->len > PAGE) {
			size_t keep = PAGE * (1 + next(&w->rng) % (o->len / PAGE - 1));

			if (munmap(o->p + keep, o->len - keep)) {
				w->failures++;
				return;
			}
			o->len = keep;
			w->ops[8]++;
		}
		break;
	case 7: {
		/*
		 * MAP_FIXED over the whole object (over a part, it would split the
		 * mapping, and mremap() refuses ranges that span several):
		 * fresh zeroes, refilled.
		 */
		void *np = mmap(o->p, o->len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

		if (np != o->p) {
			w->failures++;
			return;
		}
		if (o->p[0] != 0 || o->p[o->len - 1] != 0) {
			printf("FAIL thread %d: MAP_FIXED mapping not zeroed\n", w->idx);
			w->failures++;
		}
		fill(o, 0);
		w->ops[9]++;
		break;
	}
	default: {
		/* A file mapping, read and dropped. */
		int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
		unsigned char *f;

		if (fd < 0)
			return;
		f = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
		close(fd);
		if (f == MAP_FAILED || memcmp(f, "\177ELF", 4)) {
			printf("FAIL thread %d: file mapping\n", w->idx);
			w->failures++;
		}
		if (f != MAP_FAILED)
			munmap(f, PAGE);
		break;
	}
	}
}

static void *run(void *arg)
{
	struct worker *w = arg;

	for (long r = 0; r < w->rounds; r++)
		step(w, (uint32_t)(w->idx * 1000003 + r));
	for (int i = 0; i < SLOTS; i++)
		if (w->o[i].kind != EMPTY)
			drop(w, &w->o[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 4;
	long rounds = argc > 2 ? atol(argv[2]) : 3000;
	static const char *names[10] = { "malloc", "mmap", "free", "realloc", "munmap",
					  "mremap-grow", "mremap-shrink", "mremap-fixed",
					  "munmap-tail", "map-fixed" };
	uint64_t ops[10] = { 0 }, checksum = 0;
	long failures = 0;
	struct worker *w;
	pthread_t *t;
	unsigned char *keep;

	if (nthreads < 1 || nthreads > 64 || rounds < 1) {
		fprintf(stderr, "usage: shim_stress [THREADS(1-64) [ROUNDS]]\n");
		return 2;
	}
	w = calloc((size_t)nthreads, sizeof(*w));
	t = calloc((size_t)nthreads, sizeof(*t));
	if (!w || !t)
		return 1;
	for (int i = 0; i < nthreads; i++) {
		w[i].idx = i;
		w[i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		w[i].rounds = rounds;
		if (pthread_create(&t[i], NULL, run, &w[i]))
			return 1;
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		for (int k = 0; k < 10; k++)
			ops[k] += w[i].ops[k];
		checksum += w[i].checksum;
		failures += w[i].failures;
	}
	printf("threads %d, rounds %ld\n", nthreads, rounds);
	for (int k = 0; k < 10; k++)
		printf("%-14s %" PRIu64 "\n", names[k], ops[k]);
	printf("checksum %" PRIu64 "\n", checksum);
	keep = mmap(NULL, KEEP_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (keep == MAP_FAILED)
		return 1;
	memset(keep, 1, KEEP_BYTES);
	printf("kept %lu bytes mapped\n", KEEP_BYTES);
	printf("%s\n", failures ? "FAILED" : "verified");
	free(w);
	free(t);
	return failures ? 1 : 0;
}
