// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Hints: a process-wide interval map of the caller's address space, read by
 * the tiering engine and statistics while application threads update it.
 *
 * The map is an immutable, sorted array (a snapshot). An update builds a new
 * array under a writer mutex, publishes it with a release store (what
 * rcu_assign_pointer() does), then waits for an RCU grace period and frees
 * the old one. Readers take no lock: rcu_read_lock, an acquire load (what
 * rcu_dereference() does), read, rcu_read_unlock. So readers never wait for
 * writers, and writers never wait for readers except for the read sections
 * that were already running when they published.
 *
 * Why liburcu-bp ("bulletproof"): a library cannot make its callers
 * register threads, and the readers here run in threads the library does
 * not own (statistics calls from any application thread, the LD_PRELOAD
 * shim's hosts). urcu-bp registers a thread on its first read lock and
 * cleans up when the thread exits; urcu-memb, urcu-mb and urcu-signal
 * require rcu_register_thread() in every reader thread, and urcu-qsbr also
 * needs quiescent-state reports. urcu-bp's read side costs a little more
 * (it checks the thread's registration), which does not matter at the rate
 * hints are read. call_rcu() is not used: its worker thread would need
 * fork handlers that liburcu advises against when callbacks free memory,
 * and a library must not start threads behind its caller's back. Writers
 * call synchronize_rcu() instead, outside the writer mutex.
 *
 * fork(): urcu-bp is fork-safe only with urcu_bp_before_fork() and friends
 * around the fork; they are registered with pthread_atfork() the first time
 * the map is used, together with the writer mutex, so a child can keep
 * using hints (it inherits its parent's map, as it inherits the memory).
 *
 * ThreadSanitizer cannot see liburcu's barriers (inline assembly, and the
 * writer side lives in an uninstrumented library); the publication uses
 * C11 atomics it understands, and the grace period is annotated: a reader
 * releases the snapshot before leaving its read section, the writer
 * acquires it after synchronize_rcu() and before free().
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-bp.h>

#include "internal.h"
#include "hints.h"

#define MAX_RANGES 65536	/* per process; more: -ENOSPC */

_Static_assert(TIERMM__HINT_DEFAULT == TIERMM_HINT_DEFAULT &&
	       TIERMM__HINT_HOT == TIERMM_HINT_HOT &&
	       TIERMM__HINT_COLD == TIERMM_HINT_COLD &&
	       TIERMM__HINT_PIN_FAST == TIERMM_HINT_PIN_FAST &&
	       TIERMM__HINT_PIN_SLOW == TIERMM_HINT_PIN_SLOW &&
	       TIERMM__HINT_NO_MIGRATE == TIERMM_HINT_NO_MIGRATE &&
	       TIERMM_HINT__COUNT == 6, "hints.h mirrors enum tiermm_hint");

#if defined(__SANITIZE_THREAD__)
#define TIERMM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TIERMM_TSAN 1
#endif
#endif
#ifdef TIERMM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define ann_acquire(p) __tsan_acquire(p)
#define ann_release(p) __tsan_release(p)
#else
#define ann_acquire(p) ((void)(p))
#define ann_release(p) ((void)(p))
#endif

struct snap {
	uint64_t gen;
	size_t n;
	struct tiermm__hint_range r[];
};

static struct snap *current_snap;	/* RCU-protected; NULL: no hint yet */
static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_gen;		/* under wlock */
static __thread int reading;		/* read sections of this thread */
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

static const char *const hint_names[] = {
	"default", "hot", "cold", "pin_fast", "pin_slow", "no_migrate",
};

static void fork_prepare(void)
{
	pthread_mutex_lock(&wlock);
	urcu_bp_before_fork();
}

static void fork_parent(void)
{
	urcu_bp_after_fork_parent();
	pthread_mutex_unlock(&wlock);
}

static void fork_child(void)
{
	urcu_bp_after_fork_child();
	pthread_mutex_unlock(&wlock);
}

static void setup(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static const struct snap *read_begin(void)
{
	pthread_once(&setup_once, setup);
	urcu_bp_read_lock();
	reading++;
	return __atomic_load_n(&current_snap, __ATOMIC_ACQUIRE);
}

static void read_end(const struct snap *s)
{
	if (s)
		ann_release((void *)s);
	reading--;
	urcu_bp_read_unlock();
}

/* First range of s whose end is above addr (s->n if none). */
static size_t first_above(const struct snap *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->r[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void push(struct snap *s, uint64_t start, uint64_t end, int hint)
{
	struct tiermm__hint_range *last = s->n ? &s->r[s->n - 1] : NULL;

	if (start >= end)
		return;
	/* Touching neighbours with the same hint become one range. */
	if (last && last->end == start && last->hint == hint) {
		last->end = end;
		return;
	}
	s->r[s->n].start = start;
	s->r[s->n].end = end;
	s->r[s->n].hint = hint;
	s->n++;
}

/*
 * Replace the hints of [start, end) by hint (DEFAULT: by none). On error
 * nothing changes.
 */
static int update(uint64_t start, uint64_t end, int hint)
{
	struct snap *old, *nw;
	size_t on, i, j;

	if (reading)
		return tiermm__fail(EDEADLK,
				    "hints cannot change inside a hint lookup of the same thread");
	pthread_once(&setup_once, setup);
	pthread_mutex_lock(&wlock);
	old = __atomic_load_n(&current_snap, __ATOMIC_RELAXED);
	on = old ? old->n : 0;
	if (hint == TIERMM_HINT_DEFAULT) {
		i = old ? first_above(old, start) : 0;
		if (i >= on || old->r[i].start >= end) {
			/* Nothing to remove: no new generation. */
			pthread_mutex_unlock(&wlock);
			return 0;
		}
	}
	nw = malloc(sizeof(*nw) + (on + 2) * sizeof(nw->r[0]));
	if (!nw) {
		pthread_mutex_unlock(&wlock);
		return tiermm__fail(ENOMEM, "out of memory");
	}
	nw->n = 0;
	for (i = 0; i < on && old->r[i].end <= start; i++)
		push(nw, old->r[i].start, old->r[i].end, old->r[i].hint);
	for (j = i; j < on && old->r[j].start < end; j++)
		push(nw, old->r[j].start, start, old->r[j].hint);	/* left rest */
	if (hint != TIERMM_HINT_DEFAULT)
		push(nw, start, end, hint);
	if (j > i && old->r[j - 1].end > end)
		push(nw, end, old->r[j - 1].end, old->r[j - 1].hint);	/* right rest */
	for (; j < on; j++)
		push(nw, old->r[j].start, old->r[j].end, old->r[j].hint);
	if (hint != TIERMM_HINT_DEFAULT && nw->n > MAX_RANGES) {
		pthread_mutex_unlock(&wlock);
		free(nw);
		return tiermm__fail(ENOSPC,
				    "tiermm_hint: more than %d separate hint ranges in this process",
				    MAX_RANGES);
	}
	nw->gen = ++last_gen;
	__atomic_store_n(&current_snap, nw, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&wlock);
	if (old) {
		urcu_bp_synchronize_rcu();
		ann_acquire(old);
		free(old);
	}
	return 0;
}

const char *tiermm_hint_name(enum tiermm_hint hint)
{
	if ((int)hint < 0 || hint >= TIERMM_HINT__COUNT) {
		tiermm__fail(EINVAL, "unknown hint %d", (int)hint);
		return NULL;
	}
	return hint_names[hint];
}

int tiermm_hint(const void *addr, size_t len, enum tiermm_hint hint,
		unsigned int flags)
{
	const unsigned int known = TIERMM_HINT_RECORD_ONLY;
	const struct tiermm_topo *topo = NULL;
	uint64_t start, end;
	bool pin = hint == TIERMM_HINT_PIN_FAST || hint == TIERMM_HINT_PIN_SLOW;
	int ret, saved = errno, tier = 0;

	if (flags & ~known)
		return tiermm__fail(EINVAL, "tiermm_hint: unknown flags 0x%x", flags & ~known);
	if ((int)hint < 0 || hint >= TIERMM_HINT__COUNT)
		return tiermm__fail(EINVAL, "tiermm_hint: unknown hint %d", (int)hint);
	ret = tiermm__range_check(addr, len, "tiermm_hint", &start, &end);
	if (ret)
		return ret;
	ret = tiermm__range_mapped(0, start, end);
	if (ret)
		return ret;
	if (pin && !(flags & TIERMM_HINT_RECORD_ONLY)) {
		topo = tiermm__live_topo();
		if (!topo)
			return -errno;
		if (hint == TIERMM_HINT_PIN_SLOW)
			tier = tiermm_topo_nr_tiers(topo) - 1;
	}
	ret = update(start, end, hint);
	if (ret)
		return ret;
	if (topo) {
		struct tiermm_move_result r = { .sz = sizeof(r) };

		/* Recorded first, so the engine leaves the range alone from now. */
		ret = tiermm_move_tier(topo, 0, addr, len, tier, 0, &r);
		if (ret)
			tiermm__log(TIERMM_LOG_WARN,
				    "tiermm_hint: %s recorded, but moving %#llx-%#llx to tier %d failed: %s",
				    hint_names[hint], (unsigned long long)start,
				    (unsigned long long)end, tier, tiermm_errmsg());
		else
			tiermm__log(r.failed ? TIERMM_LOG_WARN : TIERMM_LOG_DEBUG,
				    "tiermm_hint: %s %#llx-%#llx: %llu pages moved to tier %d, %llu already there, %llu failed",
				    hint_names[hint], (unsigned long long)start,
				    (unsigned long long)end, (unsigned long long)r.moved, tier,
				    (unsigned long long)r.already_there,
				    (unsigned long long)r.failed);
	}
	errno = saved;
	return 0;
}

int tiermm__hints_lookup(uint64_t start, uint64_t end, tiermm__hint_fn fn,
			 void *ctx)
{
	const struct snap *s = read_begin();
	int ret = 0;

	if (s) {
		for (size_t i = first_above(s, start); i < s->n && s->r[i].start < end; i++) {
			ret = fn(&s->r[i], ctx);
			if (ret)
				break;
		}
	}
	read_end(s);
	return ret;
}

int tiermm__hints_at(uint64_t addr)
{
	const struct snap *s = read_begin();
	int hint = TIERMM_HINT_DEFAULT;

	if (s) {
		size_t i = first_above(s, addr);

		if (i < s->n && s->r[i].start <= addr)
			hint = s->r[i].hint;
	}
	read_end(s);
	return hint;
}

int tiermm__hints_snapshot(uint64_t start, uint64_t end,
			   struct tiermm__hint_range **out, size_t *n,
			   uint64_t *gen)
{
	const struct snap *s = read_begin();
	size_t first = 0, k = 0;
	int ret = 0;

	*out = NULL;
	*n = 0;
	if (s) {
		first = first_above(s, start);
		while (first + k < s->n && s->r[first + k].start < end)
			k++;
	}
	if (k) {
		*out = malloc(k * sizeof(**out));
		if (*out) {
			memcpy(*out, &s->r[first], k * sizeof(**out));
			*n = k;
		} else {
			ret = -ENOMEM;
		}
	}
	if (gen)
		*gen = s ? s->gen : 0;
	read_end(s);
	if (ret)
		return tiermm__fail(ENOMEM, "out of memory");
	return 0;
}

uint64_t tiermm__hints_generation(void)
{
	const struct snap *s = read_begin();
	uint64_t gen = s ? s->gen : 0;

	read_end(s);
	return gen;
}

void tiermm__hints_clear(uint64_t start, uint64_t end)
{
	int saved = errno;

	if (start < end)
		update(start, end, TIERMM_HINT_DEFAULT);
	errno = saved;
}

void tiermm__hints_reset(void)
{
	tiermm__hints_clear(0, UINT64_MAX);
}
