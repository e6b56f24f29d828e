// SPDX-License-Identifier: GPL-2.0
/*
 * tiermm.ko: page-table migration (TIERMM_CMD_PT_MIGRATE).
 *
 * Moves the PTE, PMD and PUD tables that map a range of a process to a NUMA
 * node, or with TIERMM_NODE_AUTO each to the node holding most of what it
 * maps, decided bottom-up as vMitosis does: a PTE table by the nodes of its
 * data pages; then, after the PTE level was moved, a PMD table by the nodes
 * of its child PTE tables and THPs; then a PUD table by its PMD tables and
 * 1 GiB leaves. A child counts only when it maps present data. On a tie the
 * table stays where it is. Data is counted as PT_STAT counts it (see
 * ptm_vma_counts()), so that after AUTO PT_STAT finds every table local. A
 * table is chosen when it maps part of the range; it votes with all it
 * maps. The PGD (and a P4D) is never moved.
 *
 * Replacing a table under a running process
 * =========================================
 *
 * Who can reach a user page table of mm, and how each is excluded while a
 * table is replaced (Linux 6.12, x86-64):
 *
 * 1. Page faults, GUP, madvise, mprotect, mremap, munmap, fork, khugepaged's
 *    collapse, NUMA hinting scans, /proc walkers, userfaultfd: they hold
 *    mmap_lock (read or write) or, for faults and userfaultfd with
 *    CONFIG_PER_VMA_LOCK, only the per-VMA read lock. We hold mmap_lock for
 *    write and call vma_start_write() on every VMA that intersects the
 *    address span of the tables being replaced (not only the range: a
 *    table is shared by all VMAs inside its span). vma_start_write() waits
 *    for the current per-VMA readers and makes lock_vma_under_rcu() fail
 *    until mmap_write_unlock(), so those faults fall back to mmap_lock and
 *    wait. vma_start_write() is an inline on down_write()/up_write().
 *
 * 2. rmap walkers: reclaim, page migration (try_to_migrate() and
 *    remove_migration_ptes()), THP split, folio_referenced(), KSM,
 *    memory-failure, truncation's unmap_mapping_range() and khugepaged's
 *    retract_page_tables(). They hold only an anon_vma lock or a file's
 *    i_mmap_rwsem, walk pgd..pmd with plain pointers, and rely on upper
 *    tables never being freed while the VMA is in the rmap trees. Worse,
 *    in 6.12 page_vma_mapped_walk() (without PVMW_SYNC) locks a PTE table
 *    found by pte_offset_map_nolock() without rechecking the PMD: a walker
 *    holding the old table would install e.g. a migration entry in the
 *    detached copy while the live table keeps mapping the page. So every
 *    table replacement is done holding, for write, the i_mmap_rwsem of
 *    every file and the root anon_vma lock of every anon_vma chained to
 *    every VMA in the span: no rmap walker is inside the span meanwhile,
 *    and those that come later walk down from the PGD and find the new
 *    table. These rwsems rank after mmap_lock and before the page-table
 *    spinlocks, as in mm/rmap.c. Several of one class are taken with
 *    trylock only, backing off and waiting for the busy one with nothing
 *    else of ours held, so no ordering against mm_take_all_locks() or
 *    another tiermm call is needed. No memory is allocated while they are
 *    held (direct reclaim could wait for them): new tables are allocated
 *    first.
 *
 * 3. Lockless walkers: GUP-fast (interrupts off), perf's page-size lookup
 *    (NMI), and pte_offset_map() users (rcu_read_lock). They only read, and
 *    GUP-fast rechecks the PMD/PTE it used after taking its reference.
 *    Every table entry is the same in the old and new table, so a walker
 *    that still reads the old one finds the same mappings. The TLB-flush
 *    IPI sent after the switch (below) cannot complete while a CPU has
 *    interrupts off, so it also waits for GUP-fast walkers that might have
 *    read the old parent entry; and the old table is freed only after
 *    synchronize_rcu(), which (since the RCU flavours were consolidated)
 *    waits for rcu_read_lock sections and for interrupt- and
 *    preemption-disabled regions alike. Freeing synchronously at the end
 *    of the ioctl also means no RCU callback of ours can outlive the
 *    module.
 *
 * 4. The CPUs' page walkers and TLBs (paging-structure caches included),
 *    which also set the accessed and dirty bits of entries in memory.
 *
 * The work goes by parent table: for one PMD table's PTE tables, one PUD
 * table's PMD tables, one PUD table, mmap_lock is taken for write; the
 * tables to move are chosen and their replacements allocated with only
 * that held (a call with nothing to do does not stop page faults); then
 * the VMA and rmap locks of 1-2 are taken for the span of those tables,
 * and per table:
 *
 *   a. lock the parent entry: the PMD table's split lock for a PTE table,
 *      mm->page_table_lock for a PMD table (PUD entry) and a PUD table (P4D
 *      or PGD entry); recheck the parent entry (else skipped, BUSY);
 *   b. lock the old table (its split ptlock; PUD tables have none) and
 *      construct the new one as the kernel does (pagetable_*_ctor(): page
 *      type, NR_PAGETABLE, its own split lock, which is locked too);
 *   c. copy the 512 entries; for a PMD table move the list of PTE tables
 *      deposited for its THPs (pmd_huge_pte) to the new table;
 *   d. write the parent entry: same flags, new frame (for a PUD table under
 *      a PGD entry with page-table isolation, the user copy too);
 *   e. flush all TLBs of all CPUs by IPI (__flush_tlb_all: every PCID and
 *      the paging-structure caches). Afterwards no CPU can walk the old
 *      table any more;
 *   f. merge the accessed/dirty bits the hardware set in the old table
 *      between (c) and (e) into the new table with an atomic OR;
 *   g. unlock; free the old table after synchronize_rcu() (its page type
 *      cleared and NR_PAGETABLE decremented as pagetable_*_dtor() does),
 *      at the end of the call or, outside mmap_lock, once 4096 wait.
 *
 * Why no accessed or dirty bit is lost: from (c) to (g) no software can
 * change either table (every software writer of these entries needs the
 * locks of (a)/(b) or one of 1-2 above). Hardware only ever sets A/D bits.
 * A bit set in the old table before (c) is copied; one set in it between
 * (c) and (e), by a CPU still using a cached path to the old table, is
 * merged by (f); after (e) nothing writes the old table. Bits the hardware
 * sets in the new table after (d) are kept by the atomic OR. Software that
 * reads A/D bits (reclaim, writeback's page_mkclean, zap) needs the new
 * table's lock, which is released only after (f). At every instant the
 * parent entry points to a complete table, so no walker ever sees the
 * mapping missing. mmu_gather is not used, so mm->tlb_flush_pending
 * stays untouched; the flush is a full one on every CPU.
 *
 * MMU notifiers: the mappings do not change, so secondary MMUs that
 * mirror them (KVM, HMM, ODP) need no invalidation; but an IOMMU sharing
 * the process's page tables (SVA) caches paging structures and would keep
 * walking a freed table. Linux 6.12 exports neither
 * __mmu_notifier_invalidate_range_start() nor the secondary-TLB
 * invalidation, so a process with MMU notifiers is refused (-EOPNOTSUPP).
 * Xen PV guests (page tables written by hypercalls) are refused too.
 *
 * Replicated page tables (a kernel with tiermm's replication series): each
 * table heads a ring of replicas on other nodes (ptdesc->pt_replica) that
 * the kernel keeps coherent and frees through its own paths; a table
 * replaced here would leave the ring pointing at a freed page. Such a
 * process is refused (-EBUSY), checked under each hold of mmap_lock.
 *
 * Split ptlocks: with a small spinlock_t (Debian's kernels) the lock is
 * embedded in struct ptdesc and the new table gets its own, initialized
 * by the ctor. With lockdep or spinlock debugging the lock is allocated
 * (ALLOC_SPLIT_PTLOCKS) by ptlock_alloc(), which is not exported; then the
 * old table's lock object is handed to the new table (one lock for both,
 * so nothing racing on the old table's lock can slip past the new one)
 * and the old table is freed without freeing that lock.
 *
 * THP deposits: x86 keeps, per PMD table, the PTE tables deposited for
 * its huge PMDs (used when a THP is split). They move with the PTE level:
 * under the PMD table's lock, which every deposit and withdraw holds, each
 * deposited table not on the target node is replaced in the list by a
 * copy on that node (with AUTO: the node holding most of the table's
 * THPs). They count in moved/skipped at the PTE level.
 *
 * Not moved: tables whose span includes a hugetlbfs VMA (its PMD tables
 * may be shared between processes and use their own locking) count as
 * skipped HUGE, as do huge PMD/PUD leaves where a table could be.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/compiler.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/hugetlb_inline.h>
#include <linux/memcontrol.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/mmu_notifier.h>
#include <linux/nodemask.h>
#include <linux/pgtable.h>
#include <linux/rcupdate.h>
#include <linux/rmap.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include <asm/cpufeature.h>

#include "tiermm_internal.h"

/* Entries per table at the levels we move. */
#define PTM_NR		512
static_assert(PTRS_PER_PTE == PTM_NR && PTRS_PER_PMD == PTM_NR &&
	      PTRS_PER_PUD == PTM_NR);
static_assert(sizeof(pte_t) == sizeof(u64) && sizeof(pmd_t) == sizeof(u64) &&
	      sizeof(pud_t) == sizeof(u64) && sizeof(p4d_t) == sizeof(u64));

/* Entry bits the MMU sets in memory behind software's back. */
#define PTM_HW_BITS	((u64)(_PAGE_ACCESSED | _PAGE_DIRTY))

/* The frame of a non-leaf entry (keeps the encryption bit in the flags). */
#define PTM_PFN_MASK	((u64)PTE_PFN_MASK)

/* PGD entries that page-table isolation does not copy (6.12.y backport). */
#ifdef _PAGE_NOPTISHADOW
#define PTM_NOPTISHADOW		((u64)_PAGE_NOPTISHADOW)
#else
#define PTM_NOPTISHADOW		0ULL
#endif

/* The new table takes over the old table's allocated split lock. */
#if defined(CONFIG_SPLIT_PTE_PTLOCKS) && ALLOC_SPLIT_PTLOCKS
#define PTM_PTE_PTL_HANDOVER	1
#else
#define PTM_PTE_PTL_HANDOVER	0
#endif
#if defined(CONFIG_SPLIT_PMD_PTLOCKS) && ALLOC_SPLIT_PTLOCKS
#define PTM_PMD_PTL_HANDOVER	1
#else
#define PTM_PMD_PTL_HANDOVER	0
#endif

/*
 * rmap rwsems held at once. Lockdep tracks at most MAX_LOCK_DEPTH (48)
 * held locks per task; a span needing more is skipped as BUSY there.
 */
#ifdef CONFIG_LOCKDEP
#define PTM_MAX_RMAP_LOCKS	32
#else
#define PTM_MAX_RMAP_LOCKS	4096
#endif
/* Rounds of trylock-all before a span is given up as BUSY. */
#define PTM_LOCK_TRIES		16
/* Replaced tables kept before a grace period frees them (16 MiB). */
#define PTM_FREE_BATCH		4096

/* A table chosen for moving, and its replacement. */
struct ptm_item {
	unsigned long addr;	/* an address the table maps */
	u64 entry;		/* the parent entry when it was chosen */
	int node;		/* target node */
	struct ptdesc *new;	/* the new table, on that node */
};

/* An old table waiting for the grace period. */
struct ptm_old {
	struct ptdesc *pt;
	int level;
};

struct ptm_ctx {
	struct mm_struct *mm;
	struct mem_cgroup *memcg;	/* charged for the new tables */
	int node;			/* target, or TIERMM_NODE_AUTO */
	u64 moved[TIERMM_PT_NR_LEVELS];
	u64 skipped[TIERMM_SKIP_NR];

	unsigned int *votes;		/* [nr_node_ids] */

	struct ptm_item *items;		/* [PTM_NR], one parent table's */
	unsigned int nr_items;

	/* replacements for deposited tables, one PMD table's */
	struct ptdesc **dep;		/* [PTM_NR] */
	unsigned int nr_dep;
	int dep_node;
	bool dep_nomem;

	struct rw_semaphore **rmap;	/* the span's rmap locks */
	unsigned int nr_rmap, max_rmap;
	bool rmap_too_many;		/* more than PTM_MAX_RMAP_LOCKS */

	struct ptm_old *old;		/* freed after a grace period */
	size_t nr_old, max_old;
};

/* ---- Votes -------------------------------------------------------------- */

static void ptm_vote_reset(struct ptm_ctx *ctx)
{
	memset(ctx->votes, 0, nr_node_ids * sizeof(*ctx->votes));
}

static void ptm_vote(struct ptm_ctx *ctx, int nid)
{
	if (nid >= 0 && nid < nr_node_ids)
		ctx->votes[nid]++;
}

/*
 * The winner: the node with the most votes; on a tie cur if it is among
 * the best, else the lowest node id. NUMA_NO_NODE without votes.
 */
static int ptm_vote_result(struct ptm_ctx *ctx, int cur)
{
	unsigned int best = 0;
	int nid, win = NUMA_NO_NODE;

	for (nid = 0; nid < nr_node_ids; nid++) {
		if (ctx->votes[nid] > best) {
			best = ctx->votes[nid];
			win = nid;
		}
	}
	if (win != NUMA_NO_NODE && cur >= 0 && cur < nr_node_ids &&
	    ctx->votes[cur] == best)
		win = cur;
	return win;
}

/*
 * What votes, exactly as PT_STAT (pt_walk.c) counts data, so that AUTO
 * makes tables local by the measure users see: present leaves (NUMA-hinting
 * PROT_NONE ones included, swap and migration entries not) whose frame is
 * online memory (the zero pages included), inside VMAs other than hugetlb,
 * PFN-map and I/O ones. A table votes with all it maps, not only with the
 * part inside the range.
 */
static bool ptm_vma_counts(struct vm_area_struct *vma)
{
	return !(vma->vm_flags & (VM_HUGETLB | VM_PFNMAP | VM_IO));
}

static int ptm_pfn_node(unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);

	return page ? page_to_nid(page) : NUMA_NO_NODE;
}

/* The node of the data of a huge leaf mapping addr, or NUMA_NO_NODE. */
static int ptm_leaf_node(struct ptm_ctx *ctx, unsigned long addr,
			 unsigned long pfn)
{
	struct vm_area_struct *vma = find_vma(ctx->mm, addr);

	if (!vma || vma->vm_start > addr || !ptm_vma_counts(vma))
		return NUMA_NO_NODE;
	return ptm_pfn_node(pfn);
}

static struct page *ptm_entry_page(u64 entry)
{
	return pfn_to_page((entry & PTM_PFN_MASK) >> PAGE_SHIFT);
}

/*
 * The data pages the PTE table mapping addr holds: with vote, each votes
 * and the count is returned; without, 1 at the first one, else 0. Under
 * rcu_read_lock(): without the rmap locks, retract_page_tables() may free
 * the table meanwhile (pte_free_defer()); its contents then no longer
 * matter.
 */
static unsigned int ptm_pte_table_scan(struct ptm_ctx *ctx, const pte_t *table,
				       unsigned long addr, bool vote)
{
	unsigned long start = addr & PMD_MASK, end = start + PMD_SIZE, a, e;
	struct vm_area_struct *vma;
	unsigned int n = 0;
	pte_t pte;
	int nid;

	VMA_ITERATOR(vmi, ctx->mm, start);

	for_each_vma_range(vmi, vma, end) {
		if (!ptm_vma_counts(vma))
			continue;
		e = min(end, vma->vm_end);
		for (a = max(start, vma->vm_start); a < e; a += PAGE_SIZE) {
			pte = ptep_get((pte_t *)&table[pte_index(a)]);
			if (!pte_present(pte))
				continue;
			nid = ptm_pfn_node(pte_pfn(pte));
			if (nid == NUMA_NO_NODE)
				continue;
			if (!vote)
				return 1;
			ptm_vote(ctx, nid);
			n++;
		}
	}
	return n;
}

static int ptm_vote_pte_table(struct ptm_ctx *ctx, const pte_t *table,
			      unsigned long addr, int cur)
{
	ptm_vote_reset(ctx);
	ptm_pte_table_scan(ctx, table, addr, true);
	return ptm_vote_result(ctx, cur);
}

/*
 * The vote of the PMD entry mapping addr for its table: the node of a
 * non-empty child PTE table or of a huge leaf's data; else NUMA_NO_NODE.
 */
static int ptm_pmd_entry_node(struct ptm_ctx *ctx, pmd_t pmd,
			      unsigned long addr)
{
	int nid = NUMA_NO_NODE;
	struct page *pt;

	if (pmd_none(pmd))
		return NUMA_NO_NODE;
	if (pmd_leaf(pmd))
		return pmd_present(pmd) ?
		       ptm_leaf_node(ctx, addr, pmd_pfn(pmd)) : NUMA_NO_NODE;
	if (!pmd_present(pmd) || pmd_bad(pmd))
		return NUMA_NO_NODE;
	pt = pmd_page(pmd);
	rcu_read_lock();
	if (ptm_pte_table_scan(ctx, page_address(pt), addr, false))
		nid = tiermm_page_node(pt);
	rcu_read_unlock();
	return nid;
}

/* The PMD table mapping addr: with vote, as ptm_pte_table_scan(). */
static unsigned int ptm_pmd_table_scan(struct ptm_ctx *ctx, const pmd_t *table,
				       unsigned long addr, bool vote)
{
	unsigned long a = addr & PUD_MASK;
	unsigned int i, n = 0;
	int nid;

	for (i = 0; i < PTM_NR; i++, a += PMD_SIZE) {
		nid = ptm_pmd_entry_node(ctx, pmdp_get_lockless((pmd_t *)&table[i]),
					 a);
		if (nid == NUMA_NO_NODE)
			continue;
		if (!vote)
			return 1;
		ptm_vote(ctx, nid);
		n++;
	}
	return n;
}

static int ptm_vote_pmd_table(struct ptm_ctx *ctx, const pmd_t *table,
			      unsigned long addr, int cur)
{
	ptm_vote_reset(ctx);
	ptm_pmd_table_scan(ctx, table, addr, true);
	return ptm_vote_result(ctx, cur);
}

static int ptm_vote_pud_table(struct ptm_ctx *ctx, const pud_t *table,
			      unsigned long addr, int cur)
{
	unsigned long a = addr & P4D_MASK;
	struct page *pt;
	unsigned int i;
	pud_t pud;

	ptm_vote_reset(ctx);
	for (i = 0; i < PTM_NR; i++, a += PUD_SIZE) {
		pud = READ_ONCE(table[i]);
		if (pud_none(pud) || !pud_present(pud))
			continue;
		if (pud_leaf(pud)) {
			ptm_vote(ctx, ptm_leaf_node(ctx, a, pud_pfn(pud)));
			continue;
		}
		if (pud_bad(pud))
			continue;
		pt = pud_page(pud);
		if (ptm_pmd_table_scan(ctx, page_address(pt), a, false))
			ptm_vote(ctx, tiermm_page_node(pt));
	}
	return ptm_vote_result(ctx, cur);
}

/* ---- Locks of a span ------------------------------------------------------ */

static bool ptm_span_has_hugetlb(struct mm_struct *mm, unsigned long start,
				 unsigned long end)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, start);

	for_each_vma_range(vmi, vma, end)
		if (is_vm_hugetlb_page(vma))
			return true;
	return false;
}

static void ptm_lock_vmas(struct mm_struct *mm, unsigned long start,
			  unsigned long end)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, start);

	for_each_vma_range(vmi, vma, end)
		vma_start_write(vma);
}

static int ptm_rmap_add(struct ptm_ctx *ctx, struct rw_semaphore *sem)
{
	struct rw_semaphore **p;
	unsigned int i, max;

	for (i = 0; i < ctx->nr_rmap; i++)
		if (ctx->rmap[i] == sem)
			return 0;
	if (ctx->nr_rmap == PTM_MAX_RMAP_LOCKS)
		return -EBUSY;
	if (ctx->nr_rmap == ctx->max_rmap) {
		max = min(max(2 * ctx->max_rmap, 16U), PTM_MAX_RMAP_LOCKS);
		p = krealloc_array(ctx->rmap, max, sizeof(*p), GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		ctx->rmap = p;
		ctx->max_rmap = max;
	}
	ctx->rmap[ctx->nr_rmap++] = sem;
	return 0;
}

/*
 * The rmap locks of every VMA in [start, end): i_mmap_rwsem of files
 * first, then the root anon_vma of each anon_vma chained to the VMAs
 * (the order of mm/rmap.c). The chains are stable: they change under
 * mmap_lock for write or, in faults, under the VMA lock we hold.
 */
static int ptm_rmap_collect(struct ptm_ctx *ctx, unsigned long start,
			    unsigned long end)
{
	struct vm_area_struct *vma;
	struct anon_vma_chain *avc;

	VMA_ITERATOR(vmi, ctx->mm, start);
	int ret;

	ctx->nr_rmap = 0;
	for_each_vma_range(vmi, vma, end) {
		if (!vma->vm_file)
			continue;
		ret = ptm_rmap_add(ctx, &vma->vm_file->f_mapping->i_mmap_rwsem);
		if (ret)
			return ret;
	}
	vma_iter_set(&vmi, start);
	for_each_vma_range(vmi, vma, end) {
		list_for_each_entry(avc, &vma->anon_vma_chain, same_vma) {
			ret = ptm_rmap_add(ctx, &avc->anon_vma->root->rwsem);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static bool ptm_rmap_lock(struct ptm_ctx *ctx)
{
	struct rw_semaphore *busy;
	unsigned int i, tries;

	if (ctx->rmap_too_many)
		return false;
	for (tries = 0; tries < PTM_LOCK_TRIES; tries++) {
		for (i = 0; i < ctx->nr_rmap; i++)
			if (!down_write_trylock(ctx->rmap[i]))
				break;
		if (i == ctx->nr_rmap)
			return true;
		busy = ctx->rmap[i];
		while (i--)
			up_write(ctx->rmap[i]);
		/* Wait for its holder with none of the others held. */
		down_write(busy);
		up_write(busy);
		cond_resched();
	}
	return false;
}

static void ptm_rmap_unlock(struct ptm_ctx *ctx)
{
	unsigned int i = ctx->nr_rmap;

	while (i--)
		up_write(ctx->rmap[i]);
}

/* ---- Table pages ---------------------------------------------------------- */

/*
 * A page for a table on node nid, charged to the target's memory cgroup
 * as its own tables are. Not zeroed: every entry is copied over it.
 */
static struct ptdesc *ptm_alloc(struct ptm_ctx *ctx, int nid)
{
	struct mem_cgroup *prev;
	struct page *page;

	prev = set_active_memcg(ctx->memcg);
	page = alloc_pages_node(nid, GFP_KERNEL_ACCOUNT | __GFP_THISNODE |
				__GFP_NORETRY | __GFP_NOWARN, 0);
	set_active_memcg(prev);
	return page ? page_ptdesc(page) : NULL;
}

/* Construct new, a PTE table replacing old (locked if it has a lock). */
static void ptm_pte_ctor(struct ptdesc *new, struct ptdesc *old)
{
#if PTM_PTE_PTL_HANDOVER
	new->ptl = old->ptl;
	__folio_set_pgtable(ptdesc_folio(new));
	lruvec_stat_add_folio(ptdesc_folio(new), NR_PAGETABLE);
#else
	/* Cannot fail: the lock is embedded (or mm->page_table_lock). */
	WARN_ON_ONCE(!pagetable_pte_ctor(new));
#endif
}

static void ptm_pmd_ctor(struct ptdesc *new, struct ptdesc *old)
{
#if PTM_PMD_PTL_HANDOVER
	new->pmd_huge_pte = NULL;
	new->ptl = old->ptl;
	__folio_set_pgtable(ptdesc_folio(new));
	ptdesc_pmd_pts_init(new);
	lruvec_stat_add_folio(ptdesc_folio(new), NR_PAGETABLE);
#else
	WARN_ON_ONCE(!pagetable_pmd_ctor(new));
#endif
}

/* Undo the ctor of an old table that no one can reach any more. */
static void ptm_dtor(struct ptdesc *pt, int level)
{
	switch (level) {
	case TIERMM_PT_PTE:
#if PTM_PTE_PTL_HANDOVER
		pt->ptl = NULL;		/* the lock now belongs to the new table */
		__folio_clear_pgtable(ptdesc_folio(pt));
		lruvec_stat_sub_folio(ptdesc_folio(pt), NR_PAGETABLE);
#else
		pagetable_pte_dtor(pt);
#endif
		break;
	case TIERMM_PT_PMD:
#if PTM_PMD_PTL_HANDOVER
		pt->ptl = NULL;
		__folio_clear_pgtable(ptdesc_folio(pt));
		lruvec_stat_sub_folio(ptdesc_folio(pt), NR_PAGETABLE);
#else
		pagetable_pmd_dtor(pt);
#endif
		break;
	default:
		pagetable_pud_dtor(pt);
		break;
	}
}

/* The lock that protects the entries of table pt at level. */
static spinlock_t *ptm_table_lock(struct mm_struct *mm, int level,
				  struct ptdesc *pt)
{
	switch (level) {
	case TIERMM_PT_PTE:
		return ptep_lockptr(mm, ptdesc_address(pt));
	case TIERMM_PT_PMD:
		return pmd_lockptr(mm, ptdesc_address(pt));
	default:
		return pud_lockptr(mm, ptdesc_address(pt));
	}
}

static void ptm_keep_old(struct ptm_ctx *ctx, struct ptdesc *pt, int level)
{
	/* Room was reserved before the locks were taken. */
	if (WARN_ON_ONCE(ctx->nr_old == ctx->max_old))
		return;		/* leak rather than free a live table */
	ctx->old[ctx->nr_old].pt = pt;
	ctx->old[ctx->nr_old].level = level;
	ctx->nr_old++;
}

static int ptm_reserve_old(struct ptm_ctx *ctx, size_t more)
{
	struct ptm_old *p;
	size_t max;

	if (ctx->nr_old + more <= ctx->max_old)
		return 0;
	max = max(ctx->nr_old + more, 2 * ctx->max_old);
	p = kvrealloc(ctx->old, max * sizeof(*p), GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	ctx->old = p;
	ctx->max_old = max;
	return 0;
}

/* Free the replaced tables once no lockless walker can still see them. */
static void ptm_free_old(struct ptm_ctx *ctx)
{
	size_t i;

	if (!ctx->nr_old)
		return;
	synchronize_rcu();
	for (i = 0; i < ctx->nr_old; i++) {
		ptm_dtor(ctx->old[i].pt, ctx->old[i].level);
		pagetable_free(ctx->old[i].pt);
	}
	ctx->nr_old = 0;
}

/* ---- The switch ----------------------------------------------------------- */

static void ptm_copy_table(u64 *dst, const u64 *src)
{
	int i;

	for (i = 0; i < PTM_NR; i++)
		dst[i] = READ_ONCE(src[i]);
}

/*
 * Step (f): src is the old table, quiescent since the flush; dst the new
 * one, locked (no software writer) but walked by the MMU.
 */
static void ptm_merge_hw_bits(u64 *dst, const u64 *src)
{
	u64 o, n;
	int i;

	for (i = 0; i < PTM_NR; i++) {
		o = READ_ONCE(src[i]);
		n = READ_ONCE(dst[i]);
		if (o == n)
			continue;
		/* Anything but A/D differing means a writer we did not exclude. */
		if (WARN_ON_ONCE((o ^ n) & ~PTM_HW_BITS))
			continue;
		if (o & ~n & PTM_HW_BITS)
			atomic64_or(o & ~n & PTM_HW_BITS, (atomic64_t *)&dst[i]);
	}
}

/* Step (d) for a P4D entry, or a PGD entry when the P4D is folded. */
static void ptm_set_p4d(u64 *slot, u64 val)
{
#ifdef CONFIG_MITIGATION_PAGE_TABLE_ISOLATION
	/*
	 * With 4 levels the entry is in the PGD, which page-table isolation
	 * duplicates for user mode (__pti_set_user_pgtbl(), not exported):
	 * switch the frame of the user copy too, keeping each copy's flags.
	 * With 5 levels P4D tables are shared by both copies.
	 */
	if (!pgtable_l5_enabled() && static_cpu_has(X86_FEATURE_PTI) &&
	    pgdp_maps_userspace(slot) && !(val & PTM_NOPTISHADOW)) {
		u64 *user = (u64 *)kernel_to_user_pgdp((pgd_t *)slot);
		u64 uval = READ_ONCE(*user);

		if (uval & _PAGE_PRESENT)
			WRITE_ONCE(*user, (uval & ~PTM_PFN_MASK) |
					  (val & PTM_PFN_MASK));
	}
#endif
	WRITE_ONCE(*slot, val);
}

/*
 * Replace the table at parent entry *slot, which read expect when the
 * table was chosen, by new (steps a-g). level is the table's level.
 * Returns false, with nothing changed, if the entry changed meanwhile.
 */
static bool ptm_replace(struct ptm_ctx *ctx, int level, u64 *slot, u64 expect,
			struct ptdesc *new)
{
	struct mm_struct *mm = ctx->mm;
	spinlock_t *pl, *cl, *nl;
	struct ptdesc *old;
	u64 *src, *dst;
	u64 cur, val;

	/* (a) the parent entry */
	if (level == TIERMM_PT_PTE)
		pl = pmd_lockptr(mm, (pmd_t *)slot);
	else
		pl = pud_lockptr(mm, (pud_t *)slot);
	spin_lock(pl);
	/*
	 * The MMU sets the accessed bit of upper entries, and MGLRU clears it
	 * (mmap_lock held): only the rest must be unchanged.
	 */
	cur = READ_ONCE(*slot);
	if ((cur ^ expect) & ~PTM_HW_BITS) {
		spin_unlock(pl);
		return false;
	}
	old = page_ptdesc(ptm_entry_page(expect));
	src = ptdesc_address(old);
	dst = ptdesc_address(new);

	/* (b) the old table's lock, the new table's construction and lock */
	cl = ptm_table_lock(mm, level, old);
	if (cl != pl)
		spin_lock_nested(cl, SINGLE_DEPTH_NESTING);
	if (level == TIERMM_PT_PTE)
		ptm_pte_ctor(new, old);
	else if (level == TIERMM_PT_PMD)
		ptm_pmd_ctor(new, old);
	else
		pagetable_pud_ctor(new);
	nl = ptm_table_lock(mm, level, new);
	/* Only for an embedded lock, which lockdep never sees: own class. */
	if (nl != pl && nl != cl)
		spin_lock(nl);

	/* (c) the entries, and the deposited tables of a PMD table */
	ptm_copy_table(dst, src);
#if defined(CONFIG_TRANSPARENT_HUGEPAGE) && defined(CONFIG_SPLIT_PMD_PTLOCKS)
	if (level == TIERMM_PT_PMD) {
		new->pmd_huge_pte = old->pmd_huge_pte;
		old->pmd_huge_pte = NULL;
	}
#endif
	/* The table's contents before the entry that publishes it. */
	smp_wmb();

	/* (d) */
	val = (cur & ~PTM_PFN_MASK) | PFN_PHYS(page_to_pfn(ptdesc_page(new)));
	if (level == TIERMM_PT_PUD)
		ptm_set_p4d(slot, val);
	else
		WRITE_ONCE(*slot, val);

	/* (e) no CPU walks the old table after this */
	tiermm_flush_all_tlbs();

	/* (f) */
	ptm_merge_hw_bits(dst, src);

	/* (g) */
	if (nl != pl && nl != cl)
		spin_unlock(nl);
	if (cl != pl)
		spin_unlock(cl);
	spin_unlock(pl);
	ptm_keep_old(ctx, old, level);
	return true;
}

/* ---- One parent table's children ------------------------------------------ */

static void ptm_skip(struct ptm_ctx *ctx, int reason)
{
	ctx->skipped[reason]++;
}

static void ptm_add_item(struct ptm_ctx *ctx, unsigned long addr, u64 entry,
			 int node)
{
	struct ptm_item *it = &ctx->items[ctx->nr_items++];

	it->addr = addr;
	it->entry = entry;
	it->node = node;
	it->new = NULL;
}

/*
 * Allocate the new tables of the chosen items (NOMEM drops an item) and
 * reserve room for the old ones.
 */
static int ptm_alloc_items(struct ptm_ctx *ctx, unsigned int extra)
{
	unsigned int i, n = 0;
	struct ptm_item *it;

	for (i = 0; i < ctx->nr_items; i++) {
		it = &ctx->items[i];
		it->new = ptm_alloc(ctx, it->node);
		if (!it->new) {
			ptm_skip(ctx, TIERMM_SKIP_NOMEM);
			continue;
		}
		ctx->items[n++] = *it;
	}
	ctx->nr_items = n;
	return ptm_reserve_old(ctx, n + extra);
}

static void ptm_free_items(struct ptm_ctx *ctx)
{
	unsigned int i;

	for (i = 0; i < ctx->nr_items; i++)
		if (ctx->items[i].new)
			pagetable_free(ctx->items[i].new);
	ctx->nr_items = 0;
	for (i = 0; i < ctx->nr_dep; i++)
		pagetable_free(ctx->dep[i]);
	ctx->nr_dep = 0;
}

/* Replace the chosen tables; each replacement takes its new table. */
static void ptm_replace_items(struct ptm_ctx *ctx, int level, void *parent,
			      unsigned long shift)
{
	unsigned int i;
	struct ptm_item *it;
	u64 *slot;

	for (i = 0; i < ctx->nr_items; i++) {
		it = &ctx->items[i];
		slot = (u64 *)parent + ((it->addr >> shift) & (PTM_NR - 1));
		if (ptm_replace(ctx, level, slot, it->entry, it->new)) {
			ctx->moved[level]++;
			it->new = NULL;
		} else {
			ptm_skip(ctx, TIERMM_SKIP_BUSY);
		}
		cond_resched();
	}
}

static int ptm_lock_span(struct ptm_ctx *ctx, unsigned long start,
			 unsigned long end)
{
	int ret;

	ptm_lock_vmas(ctx->mm, start, end);
	ret = ptm_rmap_collect(ctx, start, end);
	ctx->rmap_too_many = ret == -EBUSY;
	return ret == -EBUSY ? 0 : ret;
}

/* The items of a span whose rmap locks we cannot take. */
static void ptm_all_busy(struct ptm_ctx *ctx)
{
	ctx->skipped[TIERMM_SKIP_BUSY] += ctx->nr_items;
}

#if defined(CONFIG_TRANSPARENT_HUGEPAGE) && defined(CONFIG_SPLIT_PMD_PTLOCKS)
/*
 * The PTE tables deposited under the huge PMDs of PMD table pmdt (x86:
 * one FIFO ring per PMD table, linked through page->lru, its head in
 * pmd_huge_pte; see pgtable_trans_huge_deposit()). Count those to move
 * and allocate their replacements; returns how many tables the ring holds
 * if some are to move, else 0 (and they are counted as skipped).
 */
static unsigned int ptm_deposit_plan(struct ptm_ctx *ctx, pmd_t *pmdt,
				     unsigned long base)
{
	struct page *head, *p;
	unsigned int n = 0, total = 0, i;
	spinlock_t *ptl;	/* the PMD table's */
	int nid = ctx->node;

	ctx->nr_dep = 0;
	ctx->dep_nomem = false;
	if (nid == TIERMM_NODE_AUTO) {
		/* The node of most of the THPs of the table. */
		ptm_vote_reset(ctx);
		for (i = 0; i < PTM_NR; i++) {
			pmd_t pmd = pmdp_get_lockless(&pmdt[i]);

			if (pmd_leaf(pmd) && pmd_present(pmd))
				ptm_vote(ctx, ptm_leaf_node(ctx, base + i * PMD_SIZE,
							    pmd_pfn(pmd)));
		}
		nid = ptm_vote_result(ctx, NUMA_NO_NODE);
	}
	ctx->dep_node = nid;

	ptl = pmd_lock(ctx->mm, pmdt);
	head = pmd_huge_pte(ctx->mm, pmdt);
	p = head;
	while (p && total < PTM_NR) {
		total++;
		if (nid != NUMA_NO_NODE && page_to_nid(p) != nid)
			n++;
		p = list_next_entry(p, lru);
		if (p == head)
			break;
	}
	spin_unlock(ptl);
	if (!n) {
		ctx->skipped[nid == NUMA_NO_NODE ? TIERMM_SKIP_NO_DATA :
			     TIERMM_SKIP_ALREADY] += total;
		return 0;
	}

	for (i = 0; i < n; i++) {
		ctx->dep[i] = ptm_alloc(ctx, nid);
		if (!ctx->dep[i]) {
			ctx->dep_nomem = true;
			break;
		}
	}
	ctx->nr_dep = i;
	return total;
}

/*
 * Under the PMD table's lock, replace each deposited table not on the
 * target node by a copy from ctx->dep, in its place in the ring (the
 * order of withdrawal is kept). Deposited tables are reached only through
 * this ring, under this lock: no walker or TLB can see them, so no flush
 * is needed; the old ones are still freed after the grace period.
 */
static void ptm_deposit_move(struct ptm_ctx *ctx, pmd_t *pmdt)
{
	struct page *first, *p, *next, *np;
	struct ptdesc *new, *old;
	unsigned int i = 0, used = 0;
	spinlock_t *ptl;	/* the PMD table's */
	bool last;

	ptl = pmd_lock(ctx->mm, pmdt);
	first = pmd_huge_pte(ctx->mm, pmdt);
	p = first;
	while (p) {
		next = list_next_entry(p, lru);
		last = next == first || ++i == PTM_NR;
		if (ctx->dep_node == NUMA_NO_NODE) {
			ptm_skip(ctx, TIERMM_SKIP_NO_DATA);
		} else if (page_to_nid(p) == ctx->dep_node) {
			ptm_skip(ctx, TIERMM_SKIP_ALREADY);
		} else if (used == ctx->nr_dep) {
			ptm_skip(ctx, ctx->dep_nomem ? TIERMM_SKIP_NOMEM :
					TIERMM_SKIP_BUSY);
		} else {
			new = ctx->dep[used++];
			np = ptdesc_page(new);
			old = page_ptdesc(p);
			ptm_pte_ctor(new, old);
			ptm_copy_table(ptdesc_address(new), ptdesc_address(old));
			if (next == p)		/* alone in the ring */
				INIT_LIST_HEAD(&np->lru);
			else
				list_replace(&p->lru, &np->lru);
			if (p == first) {
				first = np;
				pmd_huge_pte(ctx->mm, pmdt) = np;
			}
			ptm_keep_old(ctx, old, TIERMM_PT_PTE);
			ctx->moved[TIERMM_PT_PTE]++;
		}
		if (last)
			break;
		p = next;
	}
	spin_unlock(ptl);

	/* Replacements left over (the ring shrank meanwhile). */
	for (i = used; i < ctx->nr_dep; i++)
		pagetable_free(ctx->dep[i]);
	ctx->nr_dep = 0;
}
#else
static unsigned int ptm_deposit_plan(struct ptm_ctx *ctx, pmd_t *pmdt,
				     unsigned long base)
{
	ctx->nr_dep = 0;
	return 0;
}

static void ptm_deposit_move(struct ptm_ctx *ctx, pmd_t *pmdt)
{
}
#endif

/* The entry of the P4D level (the PGD entry with 4 levels), or NULL. */
static p4d_t *ptm_p4d(struct mm_struct *mm, unsigned long addr)
{
	pgd_t *pgd = pgd_offset(mm, addr);
	p4d_t *p4d;

	if (pgd_none(*pgd) || pgd_bad(*pgd))
		return NULL;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(*p4d) || p4d_bad(*p4d))
		return NULL;
	return p4d;
}

/* The PUD entry pointing to a PMD table, or NULL. */
static pud_t *ptm_pud(struct mm_struct *mm, unsigned long addr)
{
	p4d_t *p4d = ptm_p4d(mm, addr);
	pud_t *pud;
	pud_t v;

	if (!p4d)
		return NULL;
	pud = pud_offset(p4d, addr);
	v = READ_ONCE(*pud);
	if (pud_none(v) || !pud_present(v) || pud_leaf(v) || pud_bad(v))
		return NULL;
	return pud;
}

/*
 * The PTE tables of [addr, end), all under one PMD table, and that PMD
 * table's deposited tables. mmap_lock held for write.
 */
static int ptm_pte_chunk(struct ptm_ctx *ctx, unsigned long addr,
			 unsigned long end)
{
	unsigned long a, start = addr & PMD_MASK;
	unsigned int deposits;
	pmd_t *pmdt, pmd;
	pud_t *pud;
	int nid, cur, ret;

	pud = ptm_pud(ctx->mm, addr);
	if (!pud)
		return 0;
	pmdt = pmd_offset(pud, 0);
	end = ALIGN(end, PMD_SIZE);

	/*
	 * Choose without the VMA locks, so that a call with nothing to do
	 * does not stop page faults: what changes meanwhile is rechecked.
	 */
	ctx->nr_items = 0;
	for (a = start; a < end; a += PMD_SIZE) {
		pmd = pmdp_get_lockless(pmd_offset(pud, a));
		if (pmd_none(pmd))
			continue;
		if (pmd_leaf(pmd) || !pmd_present(pmd)) {
			ptm_skip(ctx, TIERMM_SKIP_HUGE);  /* or migrating */
			continue;
		}
		if (pmd_bad(pmd))
			continue;
		cur = tiermm_page_node(pmd_page(pmd));
		nid = ctx->node;
		if (nid == TIERMM_NODE_AUTO) {
			rcu_read_lock();
			nid = ptm_vote_pte_table(ctx, (pte_t *)pmd_page_vaddr(pmd),
						 a, cur);
			rcu_read_unlock();
			if (nid == NUMA_NO_NODE) {
				ptm_skip(ctx, TIERMM_SKIP_NO_DATA);
				continue;
			}
		}
		if (nid == cur) {
			ptm_skip(ctx, TIERMM_SKIP_ALREADY);
			continue;
		}
		ptm_add_item(ctx, a, native_pmd_val(pmd), nid);
	}

	deposits = ptm_deposit_plan(ctx, pmdt, addr & PUD_MASK);
	if (!ctx->nr_items && !deposits)
		return 0;
	ret = ptm_alloc_items(ctx, ctx->nr_dep);
	if (ret)
		goto out;
	if (ctx->nr_items) {
		ret = ptm_lock_span(ctx, start, end);
		if (ret)
			goto out;
		if (ptm_rmap_lock(ctx)) {
			ptm_replace_items(ctx, TIERMM_PT_PTE, pmdt, PMD_SHIFT);
			ptm_rmap_unlock(ctx);
		} else {
			ptm_all_busy(ctx);
		}
	}
	/* Deposits need only the PMD table's lock. */
	if (deposits)
		ptm_deposit_move(ctx, pmdt);
out:
	ptm_free_items(ctx);
	return ret;
}

/* The PMD tables of [addr, end), all under one PUD table. */
static int ptm_pmd_chunk(struct ptm_ctx *ctx, unsigned long addr,
			 unsigned long end)
{
	unsigned long a, start = addr & PUD_MASK;
	pud_t *pudt, *pudp, pud;
	struct page *pt;
	p4d_t *p4d;
	int nid, cur, ret;

	p4d = ptm_p4d(ctx->mm, addr);
	if (!p4d)
		return 0;
	pudt = pud_offset(p4d, 0);
	end = ALIGN(end, PUD_SIZE);

	ctx->nr_items = 0;
	for (a = start; a < end; a += PUD_SIZE) {
		pudp = pud_offset(p4d, a);
		pud = READ_ONCE(*pudp);
		if (pud_none(pud))
			continue;
		if (pud_leaf(pud)) {
			ptm_skip(ctx, TIERMM_SKIP_HUGE);
			continue;
		}
		if (!pud_present(pud) || pud_bad(pud))
			continue;
		if (ptm_span_has_hugetlb(ctx->mm, a, a + PUD_SIZE)) {
			ptm_skip(ctx, TIERMM_SKIP_HUGE);
			continue;
		}
		pt = pud_page(pud);
		cur = tiermm_page_node(pt);
		nid = ctx->node;
		if (nid == TIERMM_NODE_AUTO) {
			nid = ptm_vote_pmd_table(ctx, page_address(pt), a, cur);
			if (nid == NUMA_NO_NODE) {
				ptm_skip(ctx, TIERMM_SKIP_NO_DATA);
				continue;
			}
		}
		if (nid == cur) {
			ptm_skip(ctx, TIERMM_SKIP_ALREADY);
			continue;
		}
		ptm_add_item(ctx, a, native_pud_val(pud), nid);
	}

	if (!ctx->nr_items)
		return 0;
	ret = ptm_alloc_items(ctx, 0);
	if (!ret)
		ret = ptm_lock_span(ctx, start, end);
	if (ret)
		goto out;
	if (ptm_rmap_lock(ctx)) {
		ptm_replace_items(ctx, TIERMM_PT_PMD, pudt, PUD_SHIFT);
		ptm_rmap_unlock(ctx);
	} else {
		ptm_all_busy(ctx);
	}
out:
	ptm_free_items(ctx);
	return ret;
}

/* The PUD table mapping addr (one P4D or PGD entry). */
static int ptm_pud_chunk(struct ptm_ctx *ctx, unsigned long addr,
			 unsigned long end)
{
	unsigned long start = addr & P4D_MASK;
	struct page *pt;
	p4d_t *p4d;
	int nid, cur, ret;

	p4d = ptm_p4d(ctx->mm, addr);
	if (!p4d)
		return 0;
	end = min(start + P4D_SIZE, TASK_SIZE_MAX);
	if (ptm_span_has_hugetlb(ctx->mm, start, end)) {
		ptm_skip(ctx, TIERMM_SKIP_HUGE);
		return 0;
	}

	ctx->nr_items = 0;
	pt = virt_to_page(p4d_pgtable(*p4d));
	cur = tiermm_page_node(pt);
	nid = ctx->node;
	if (nid == TIERMM_NODE_AUTO) {
		nid = ptm_vote_pud_table(ctx, page_address(pt), start, cur);
		if (nid == NUMA_NO_NODE) {
			ptm_skip(ctx, TIERMM_SKIP_NO_DATA);
			return 0;
		}
	}
	if (nid == cur) {
		ptm_skip(ctx, TIERMM_SKIP_ALREADY);
		return 0;
	}
	ptm_add_item(ctx, addr, native_p4d_val(READ_ONCE(*p4d)), nid);

	ret = ptm_alloc_items(ctx, 0);
	if (!ret && ctx->nr_items)
		ret = ptm_lock_span(ctx, start, end);
	if (ret || !ctx->nr_items)
		goto out;
	if (!ptm_rmap_lock(ctx)) {
		ptm_all_busy(ctx);
		goto out;
	}
	/* The item's slot is p4d itself (ptm_replace_items() wants a table). */
	if (ptm_replace(ctx, TIERMM_PT_PUD, (u64 *)p4d, ctx->items[0].entry,
			ctx->items[0].new)) {
		ctx->moved[TIERMM_PT_PUD]++;
		ctx->items[0].new = NULL;
	} else {
		ptm_skip(ctx, TIERMM_SKIP_BUSY);
	}
	ptm_rmap_unlock(ctx);
out:
	ptm_free_items(ctx);
	return ret;
}

typedef int (*ptm_chunk_fn)(struct ptm_ctx *ctx, unsigned long addr,
			    unsigned long end);

/*
 * One level over [start, end): one parent table at a time, each under its
 * own hold of mmap_lock, skipping address space without VMAs.
 */
static int ptm_level(struct ptm_ctx *ctx, int level, unsigned long start,
		     unsigned long end)
{
	static const ptm_chunk_fn fns[] = { ptm_pte_chunk, ptm_pmd_chunk,
					    ptm_pud_chunk };
	unsigned long size = level == TIERMM_PT_PTE ? PUD_SIZE : P4D_SIZE;
	struct mm_struct *mm = ctx->mm;
	struct vm_area_struct *vma;
	unsigned long addr = start, next;
	int ret = 0;

	while (addr < end) {
		if (mmap_write_lock_killable(mm))
			return -EINTR;
		/* Registration takes mmap_lock for write: stable until unlock. */
		if (mm_has_notifiers(mm)) {
			mmap_write_unlock(mm);
			return -EOPNOTSUPP;
		}
		/*
		 * Replicated page tables: every table has a ring of replicas
		 * that only the kernel's own paths may change or free (and
		 * replication is switched under mmap_lock held for write).
		 */
		if (tiermm_mm_replicated(mm)) {
			mmap_write_unlock(mm);
			return -EBUSY;
		}
		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start >= end) {
			mmap_write_unlock(mm);
			break;
		}
		addr = max(addr, vma->vm_start);
		next = min((addr | (size - 1)) + 1, end);
		ret = fns[level](ctx, addr, next);
		mmap_write_unlock(mm);
		if (ret)
			return ret;
		/* Do not hold on to a second copy of a big process's tables. */
		if (ctx->nr_old >= PTM_FREE_BATCH)
			ptm_free_old(ctx);
		if (fatal_signal_pending(current))
			return -EINTR;
		addr = next;
		cond_resched();
	}
	return 0;
}

static int ptm_run(struct ptm_ctx *ctx, unsigned long start, unsigned long end,
		   u32 levels)
{
	int level, ret = 0;

	for (level = TIERMM_PT_PTE; level <= TIERMM_PT_PUD && !ret; level++)
		if (levels & (1U << level))
			ret = ptm_level(ctx, level, start, end);
	ptm_free_old(ctx);
	return ret;
}

long tiermm_ioctl_pt_migrate(void __user *uarg)
{
	struct tiermm_pt_migrate arg = {};
	struct ptm_ctx ctx = {};
	struct mm_struct *mm;
	u32 argsz;
	int ret;

	ret = tiermm_copy_arg(&arg, sizeof(arg), TIERMM_PT_MIGRATE_SIZE_VER0,
			      uarg, &argsz);
	if (ret)
		return ret;
	if (arg.flags || arg.pad0 ||
	    memchr_inv(arg.reserved, 0, sizeof(arg.reserved)))
		return -EINVAL;
	if (!arg.levels || (arg.levels & ~TIERMM_PT_MIGRATE_ALL))
		return -EINVAL;
	if (arg.node != TIERMM_NODE_AUTO &&
	    (arg.node < 0 || arg.node >= nr_node_ids ||
	     !node_state(arg.node, N_MEMORY)))
		return -EINVAL;
	ret = tiermm_check_range(arg.start, arg.len);
	if (ret)
		return ret;
	if (cpu_feature_enabled(X86_FEATURE_XENPV))
		return -EOPNOTSUPP;

	ret = tiermm_get_target_mm(arg.pid, TIERMM_ACCESS_MODIFY, &mm);
	if (ret)
		return ret;

	ctx.mm = mm;
	ctx.node = arg.node;
	ctx.votes = kcalloc(nr_node_ids, sizeof(*ctx.votes), GFP_KERNEL);
	ctx.items = kvmalloc_array(PTM_NR, sizeof(*ctx.items), GFP_KERNEL);
	ctx.dep = kvmalloc_array(PTM_NR, sizeof(*ctx.dep), GFP_KERNEL);
	if (!ctx.votes || !ctx.items || !ctx.dep) {
		ret = -ENOMEM;
		goto out;
	}
	ctx.memcg = get_mem_cgroup_from_mm(mm);

	ret = ptm_run(&ctx, arg.start, arg.start + arg.len, arg.levels);

	mem_cgroup_put(ctx.memcg);
out:
	kvfree(ctx.old);
	kfree(ctx.rmap);
	kvfree(ctx.dep);
	kvfree(ctx.items);
	kfree(ctx.votes);
	mmput(mm);
	if (ret)
		return ret;

	memcpy(arg.moved, ctx.moved, sizeof(arg.moved));
	memcpy(arg.skipped, ctx.skipped, sizeof(arg.skipped));
	if (copy_to_user(uarg, &arg, min_t(u32, argsz, sizeof(arg))))
		return -EFAULT;
	return 0;
}
