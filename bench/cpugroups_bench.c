// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cpugroups_bench: (a) the CPU-group probe on every CPU this process may
 * run on, with the real ping-pong measurement: wall time, pairs measured,
 * groups; (b) on synthetic machines (4 sockets, 8 to 192 vCPUs), how many
 * pair measurements the clustering needs against vMitosis's all-pairs.
 *
 *   cpugroups_bench [--synthetic-only] [--samples N] [--sample-ms MS]
 *
 * Exit status 0 when the probe ran and the synthetic target was met (see
 * run_synthetic), 1 otherwise.
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "internal.h"
#include "probes.h"

static void print_groups(const struct tiermm__cpugroups *g)
{
	for (int k = -1; k < g->ngroups; k++) {
		int cnt = 0;

		for (int i = 0; i < g->ncpus; i++)
			cnt += g->group[i] == k;
		if (!cnt)
			continue;
		if (k < 0)
			printf("  unclassified:");
		else
			printf("  group %d (%d CPUs):", k, cnt);
		for (int i = 0; i < g->ncpus; i++)
			if (g->group[i] == k)
				printf(" %d", g->cpu[i]);
		printf("\n");
	}
}

static void progress(const char *what, int done, int total, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "\r%s %d/%d   ", what, done, total);
	if (done == total)
		fprintf(stderr, "\n");
}

static int run_real(const struct tiermm__pingpong_params *pp)
{
	cpu_set_t set;
	int cpus[CPU_SETSIZE], n = 0, r;
	struct tiermm__cpugroups g;
	struct tiermm__cpugroups_params p = { .progress = progress };
	double t0;

	if (sched_getaffinity(0, sizeof(set), &set)) {
		perror("sched_getaffinity");
		return 1;
	}
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	printf("== real ping-pong probe on %d CPUs (%d samples x %.1f ms per pair)\n",
	       n, pp->samples, pp->sample_s * 1e3);
	if (n >= 2) {
		int pair[1][2] = { { cpus[0], cpus[1] } };
		double ns[5];

		printf("repeatability, CPUs %d-%d:", cpus[0], cpus[1]);
		for (int i = 0; i < 5; i++) {
			r = tiermm__pingpong_measure((const int (*)[2])pair, 1,
						     &ns[i], (void *)pp);
			if (r) {
				printf("\nerror: %s\n", tiermm_errmsg());
				return 1;
			}
			printf(" %.1f", ns[i]);
		}
		printf(" ns\n");
	}
	fflush(stdout);
	t0 = bench_mono_s();
	r = tiermm__cpugroups_find(cpus, n, tiermm__pingpong_measure,
				   (void *)pp, &p, &g);
	if (r) {
		printf("error %d: %s\n", r, tiermm_errmsg());
		return 1;
	}
	printf("wall time %.3f s, %llu pairs measured (all pairs: %d)\n",
	       bench_mono_s() - t0, (unsigned long long)g.pairs_measured,
	       n * (n - 1) / 2);
	printf("%d group(s), validated=%s, confidence %.2f, max in-group %.1f ns, min cross-group %.1f ns\n",
	       g.ngroups, g.validated ? "yes" : "no", g.confidence,
	       g.max_in_ns, g.min_cross_ns);
	print_groups(&g);
	printf("why: %s\n", g.why);
	tiermm__cpugroups_free(&g);
	return 0;
}

/* ---- synthetic machines ---- */

struct synth {
	int n, nsock;
	bool rr;		/* socket = cpu % nsock, else blocks */
	double noise;
	uint64_t rng;
	uint64_t pairs, batches;
	unsigned char *used;
};

static int synth_sock(const struct synth *s, int cpu)
{
	return s->rr ? cpu % s->nsock : cpu / ((s->n + s->nsock - 1) / s->nsock);
}

static int synth_measure(const int (*pairs)[2], int npairs, double *ns,
			 void *ctx)
{
	struct synth *s = ctx;

	memset(s->used, 0, (size_t)s->n);
	for (int i = 0; i < npairs; i++) {
		int a = pairs[i][0], b = pairs[i][1];

		if (a == b || s->used[a] || s->used[b]) {
			fprintf(stderr, "batch not disjoint at CPU %d/%d\n", a, b);
			abort();
		}
		s->used[a] = s->used[b] = 1;
		s->rng ^= s->rng << 13;
		s->rng ^= s->rng >> 7;
		s->rng ^= s->rng << 17;
		double u = (double)(s->rng >> 11) / (double)(1ULL << 53);

		ns[i] = (synth_sock(s, a) == synth_sock(s, b) ? 100 : 200) *
			(1 + s->noise * (2 * u - 1));
	}
	s->pairs += (uint64_t)npairs;
	s->batches++;
	return 0;
}

/*
 * The target: every result that says validated is right, every machine of
 * >= 64 vCPUs is found and validated, and 192 vCPUs take <= 10% of the
 * pairs of all-pairs. Returns 0 when met.
 */
static int run_synthetic(double sample_cost_s)
{
	static const int sizes[] = { 8, 64, 128, 192 };
	int missed = 0;

	printf("\n== synthetic: 4 sockets, in-socket 100 ns, cross 200 ns, noise +-5%%\n");
	printf("(est. s: batches x one pair measurement, every batch running its pairs\n"
	       " concurrently; vMit. s: vMitosis all-pairs, n-1 rounds of n/2 pairs)\n");
	printf("%5s %-12s %7s %9s %7s %7s %8s %8s %6s %s\n", "vCPUs", "numbering",
	       "pairs", "all-pairs", "ratio", "batches", "est. s", "vMit. s",
	       "groups", "result");
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		for (int rr = 0; rr < 2; rr++) {
			struct synth s = { .n = sizes[k], .nsock = 4, .rr = rr,
					   .noise = 0.05, .rng = 42 };
			struct tiermm__cpugroups g;
			int *cpus = calloc((size_t)s.n, sizeof(int));
			uint64_t all = (uint64_t)s.n * (uint64_t)(s.n - 1) / 2;
			bool correct = true;
			int r;

			s.used = calloc((size_t)s.n, 1);
			if (!cpus || !s.used)
				return 1;
			for (int i = 0; i < s.n; i++)
				cpus[i] = i;
			r = tiermm__cpugroups_find(cpus, s.n, synth_measure, &s,
						   NULL, &g);
			if (r) {
				printf("error: %s\n", tiermm_errmsg());
				return 1;
			}
			for (int i = 0; i < s.n; i++)
				for (int j = 0; j < s.n; j++)
					if ((g.group[i] == g.group[j]) !=
					    (synth_sock(&s, i) == synth_sock(&s, j)))
						correct = false;
			/*
			 * Wall-time estimate: one batch runs its pairs
			 * concurrently (n/2 <= allowed CPUs/2), so it costs one
			 * pair measurement; vMitosis needs n-1 rounds of n/2.
			 */
			printf("%5d %-12s %7llu %9llu %6.1f%% %7llu %8.1f %8.1f %6d %s%s\n",
			       s.n, rr ? "round-robin" : "sequential",
			       (unsigned long long)g.pairs_measured,
			       (unsigned long long)all,
			       100.0 * (double)g.pairs_measured / (double)all,
			       (unsigned long long)s.batches,
			       (double)s.batches * sample_cost_s,
			       (double)(s.n - 1) * sample_cost_s, g.ngroups,
			       correct ? "correct" :
			       g.validated ? "WRONG" : "differs",
			       g.validated ? ", validated" : ", not validated");
			if (!correct || !g.validated)
				printf("      why: %s\n", g.why);
			if ((g.validated && !correct) ||
			    (s.n >= 64 && !(correct && g.validated)) ||
			    (s.n == 192 && g.pairs_measured * 10 > all))
				missed++;
			tiermm__cpugroups_free(&g);
			free(s.used);
			free(cpus);
		}
	}
	printf("target (validated => right; >= 64 vCPUs found and validated; 192 vCPUs in <= 10%% of all-pairs): %s\n",
	       missed ? "MISSED" : "met");
	return missed ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct tiermm__pingpong_params pp = { .samples = 10, .sample_s = 0.01 };
	bool real = true;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--synthetic-only")) {
			real = false;
		} else if (!strcmp(argv[i], "--samples") && i + 1 < argc) {
			pp.samples = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--sample-ms") && i + 1 < argc) {
			pp.sample_s = atof(argv[++i]) / 1e3;
		} else {
			fprintf(stderr,
				"usage: %s [--synthetic-only] [--samples N] [--sample-ms MS]\n",
				argv[0]);
			return 2;
		}
	}
	if (real && run_real(&pp))
		return 1;
	/* One pair measurement: warm-up 1 ms + samples x sample_s. */
	return run_synthetic(0.001 + pp.samples * pp.sample_s);
}
