// SPDX-License-Identifier: GPL-2.0
/*
 * tiermm.ko: TIERMM_CMD_PT_STAT and TIERMM_CMD_PT_DUMP, read-only walks of
 * a process's page tables.
 *
 * walk_page_range() and pte_offset_map() are not exported to modules, so
 * the walk is written here with the inline accessors: pgd/p4d/pud/pmd_offset
 * and pte_offset_kernel() on the PMD value read once.
 *
 * Locking and races:
 * - The target's mmap lock is held for reading, and only addresses inside
 *   its VMAs are walked. Under that lock no PGD/P4D/PUD/PMD table mapping
 *   a live VMA is freed (free_pgtables() runs only for detached VMAs), so
 *   those pointers stay valid; entries may still be filled in concurrently.
 * - A PTE table can be freed under the mmap read lock (THP collapse,
 *   retract_page_tables(): the PMD is cleared and the table is freed with
 *   pte_free_defer(), that is after an RCU grace period). Each PMD entry
 *   is therefore read once with pmdp_get_lockless() inside rcu_read_lock(),
 *   checked (present, not huge, not bad) and the PTE table derived from that
 *   value; if it has been unhooked meanwhile we read a table whose memory
 *   RCU keeps allocated, and entries are read with ptep_get(). The result
 *   is a snapshot: entries may change while we read them.
 * - VM_HUGETLB VMAs are skipped (shared PMD tables are freed by
 *   huge_pmd_unshare() without RCU, under a lock a module cannot take),
 *   and VM_PFNMAP / VM_IO VMAs too (their PFNs need not have a struct page).
 * - The walk drops RCU and calls cond_resched() after each PMD entry, and
 *   ends with -EINTR when a fatal signal is pending.
 * - Nothing is copied to user memory while the mmap lock is held (a fault
 *   on the caller's buffer would take the caller's own mmap lock, the same
 *   lock when the target is the caller): PT_STAT accumulates in kernel
 *   arrays, PT_DUMP fills a kernel buffer, drops the lock to copy it out
 *   and continues from the address where it stopped.
 *
 * Counting (PT_STAT): a table is counted once even when several VMAs of the
 * range share it; only entries inside the range and inside walked VMAs are
 * looked at. Leaf entries are present PTEs and present huge PMD/PUD entries
 * (NUMA-hinting PROT_NONE entries are present); swap and migration entries
 * are not data. A data page is a leaf's PFN in online memory (the shared
 * zero page included, device memory not); its node is page_to_nid().
 * pfn_to_online_page(), as DAMON uses, rather than pfn_valid(): a stale
 * entry read from an unhooked table may name memory offlined since.
 *
 * Replicas (a kernel with CONFIG_PGTABLE_REPLICATION, tiermm's patch
 * series): the statistics above describe the master tree, mm->pgd. With
 * TIERMM_PT_STAT_REPLICAS, each replica tree (mm->pgtable_repl->pgd[slot],
 * a slot being a node or, in the series' CPU-group mode, a group) is
 * walked the same way, over the same VMAs, after the master and under the
 * same hold of the mmap lock, counting its tables per level and those on
 * the slot's node (a group: a node of its CPUs). This relies on the
 * series' rules: replication is switched on and off (mm->pgtable_repl
 * set, replica trees built, rings detached and freed) with mmap_lock held
 * for write, so under our read lock the replicas and their upper tables
 * stay; a replica table is freed with its master, through the same
 * mmu_gather or with it after an RCU grace period (pte_free_defer()), so
 * the RCU rule above covers replica PTE tables too. Where a replica table
 * could not be allocated, the replica's entry points at the master's
 * table: that table is counted in the replica's tree, where it is.
 *
 * Locality (vMitosis' bottom-up majority): a PTE table votes with its data
 * pages, one vote per 4 KiB page on that page's node; a PMD table with its
 * non-empty PTE tables (one vote each, on the node of the table page) and
 * its 2 MiB leaves (one vote each, on the data's node); a PUD table likewise
 * with its PMD tables and 1 GiB leaves; a P4D table (5-level paging) with its
 * PUD tables, the PGD with its P4D tables or, when the P4D is folded, its PUD
 * tables. A table with no vote is empty; otherwise it is local when its own
 * node has at least as many votes as any other node, remote if not.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/errno.h>
#include <linux/minmax.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/nodemask.h>
#include <linux/pgtable.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#ifdef CONFIG_PGTABLE_REPLICATION
#include <linux/percpu.h>
#include <linux/pgtable_repl.h>
#endif

#include "tiermm_internal.h"

static_assert(sizeof(struct tiermm_pt_stat) == TIERMM_PT_STAT_SIZE_VER0);
static_assert(sizeof(struct tiermm_pt_dump) == TIERMM_PT_DUMP_SIZE_VER0);
static_assert(sizeof(struct tiermm_pt_dump_rec) == 32);
static_assert(sizeof(struct tiermm_pt_stat_repl) ==
	      (2 * TIERMM_PT_NR_LEVELS + 1) * sizeof(u64));
/* Records of struct tiermm_pt_stat_repl a caller may ask for. */
#define TIERMM_REPL_NR_MAX	4096
static_assert(PTRS_PER_PTE == 512 && PTRS_PER_PMD == 512 &&
	      PTRS_PER_PUD == 512 && PTRS_PER_PGD == 512);

/* Levels of the walk: the uapi's four, and the P4D apart. */
enum tiermm_lv {
	TIERMM_LV_PTE,
	TIERMM_LV_PMD,
	TIERMM_LV_PUD,
	TIERMM_LV_P4D,		/* only with 5-level paging */
	TIERMM_LV_PGD,
	TIERMM_LV_NR,
};

/* The uapi counts a P4D table at TIERMM_PT_PGD. */
static const u32 tiermm_uapi_level[TIERMM_LV_NR] = {
	[TIERMM_LV_PTE] = TIERMM_PT_PTE,
	[TIERMM_LV_PMD] = TIERMM_PT_PMD,
	[TIERMM_LV_PUD] = TIERMM_PT_PUD,
	[TIERMM_LV_P4D] = TIERMM_PT_PGD,
	[TIERMM_LV_PGD] = TIERMM_PT_PGD,
};

/* What a walk step tells its caller, besides 0 (go on) and -errno. */
enum {
	TIERMM_WALK_FLUSH = 1,	/* PT_DUMP: kernel buffer full, copy it out */
	TIERMM_WALK_FULL,	/* PT_DUMP: the caller's buffer is full */
};

/* One dump record: header and the table's entries. */
#define TIERMM_DUMP_REC_SIZE	(sizeof(struct tiermm_pt_dump_rec) + \
				 PTRS_PER_PTE * sizeof(u64))
/* A whole path, PGD to PTE table (P4D included), so each call progresses. */
#define TIERMM_DUMP_MIN_RECS	(TIERMM_PT_NR_LEVELS + 1)
/* Records gathered under the mmap lock before it is dropped to copy out. */
#define TIERMM_DUMP_KBUF_RECS	8

struct tiermm_stat_acc {
	unsigned int nr;	/* nr_node_ids */
	u64 *tables;		/* [nr][TIERMM_PT_NR_LEVELS] */
	u64 *leaf;		/* [nr] */
	u64 *data;		/* [nr] */
	u64 *votes;		/* [TIERMM_LV_NR][nr]: of the current tables */
	u64 local[TIERMM_PT_NR_LEVELS];
	u64 remote[TIERMM_PT_NR_LEVELS];
	u64 empty[TIERMM_PT_NR_LEVELS];
	u64 huge[TIERMM_PT_NR_LEVELS];
};

struct tiermm_dump_acc {
	void *kbuf;		/* records not yet copied out */
	size_t kused;
	size_t ksize;
	u64 uused;		/* bytes already copied to the caller */
	u64 ulen;		/* the caller's buf_len */
	unsigned int user_pgd_ptrs;	/* PGD entries below TASK_SIZE_MAX */
	bool pfns;		/* show physical addresses (CAP_SYS_ADMIN) */
};

/* PT_STAT with TIERMM_PT_STAT_REPLICAS: one replica tree being walked. */
struct tiermm_repl_acc {
	nodemask_t local_nodes;	/* where its tables are local */
	u64 tables[TIERMM_PT_NR_LEVELS];
	u64 local[TIERMM_PT_NR_LEVELS];
};

struct tiermm_walk {
	struct mm_struct *mm;
	pgd_t *pgd;		/* root of the tree walked: mm->pgd or a replica's */
	/* kernel address of the table being visited per level, or NULL */
	void *cur[TIERMM_LV_NR];
	int node[TIERMM_LV_NR];		/* and the node it is on */
	unsigned long stop;		/* where a stopped walk continues */
	struct tiermm_stat_acc *st;	/* PT_STAT, else NULL */
	struct tiermm_dump_acc *dp;	/* PT_DUMP, else NULL */
	struct tiermm_repl_acc *rp;	/* a replica tree, else NULL */
};

static void *tiermm_table_of(void *entry)
{
	return (void *)((unsigned long)entry & PAGE_MASK);
}

/* The level whose tables vote with tables of level lv. */
static int tiermm_parent_lv(int lv)
{
	if (lv == TIERMM_LV_PUD && !pgtable_l5_enabled())
		return TIERMM_LV_PGD;
	return lv + 1;
}

/* First virtual address the entries of a table at level lv map. */
static unsigned long tiermm_table_va(int lv, unsigned long addr)
{
	switch (lv) {
	case TIERMM_LV_PTE:
		return addr & PMD_MASK;
	case TIERMM_LV_PMD:
		return addr & PUD_MASK;
	case TIERMM_LV_PUD:
		return addr & P4D_MASK;
	case TIERMM_LV_P4D:
		return addr & PGDIR_MASK;
	default:
		return 0;
	}
}

/* A table has been left: count it local, remote or empty; vote upwards. */
static void tiermm_stat_finish(struct tiermm_walk *w, int lv)
{
	struct tiermm_stat_acc *st = w->st;
	u64 *votes = st->votes + lv * st->nr;
	u32 ulv = tiermm_uapi_level[lv];
	u64 best = 0, total = 0;
	unsigned int n;

	for (n = 0; n < st->nr; n++) {
		total += votes[n];
		best = max(best, votes[n]);
	}
	if (!total) {
		st->empty[ulv]++;
		return;
	}
	if (votes[w->node[lv]] == best)
		st->local[ulv]++;
	else
		st->remote[ulv]++;
	memset(votes, 0, st->nr * sizeof(*votes));
	if (lv < TIERMM_LV_PGD)
		st->votes[tiermm_parent_lv(lv) * st->nr + w->node[lv]]++;
}

/* Copy a table into the kernel buffer, or say why it cannot be. */
static int tiermm_dump_table(struct tiermm_walk *w, int lv, void *table,
			     int nid, unsigned long addr)
{
	struct tiermm_dump_acc *dp = w->dp;
	struct tiermm_pt_dump_rec *rec;
	const u64 *src = table;
	unsigned int i;

	if (dp->uused + dp->kused + TIERMM_DUMP_REC_SIZE > dp->ulen)
		return TIERMM_WALK_FULL;
	if (dp->kused + TIERMM_DUMP_REC_SIZE > dp->ksize)
		return TIERMM_WALK_FLUSH;

	rec = dp->kbuf + dp->kused;
	rec->va = tiermm_table_va(lv, addr);
	rec->pfn = dp->pfns ? PHYS_PFN(__pa(table)) : 0;
	rec->level = tiermm_uapi_level[lv];
	rec->node = nid;
	rec->nr_entries = PTRS_PER_PTE;
	rec->pad0 = 0;
	for (i = 0; i < PTRS_PER_PTE; i++) {
		u64 e = READ_ONCE(src[i]);

		/* The kernel half of the PGD is not the process's. */
		if (lv == TIERMM_LV_PGD && i >= dp->user_pgd_ptrs)
			e = 0;
		else if (!dp->pfns)
			e &= ~PTE_PFN_MASK;
		rec->entries[i] = e;
	}
	dp->kused += TIERMM_DUMP_REC_SIZE;
	return 0;
}

/*
 * The walk reaches table (at level lv) at address addr. The first time it
 * does, the tables of this level and below that were being visited are
 * finished, and the new one is counted or dumped.
 */
static int tiermm_walk_enter(struct tiermm_walk *w, int lv, void *table,
			     unsigned long addr)
{
	int nid, l, ret;

	if (w->cur[lv] == table)
		return 0;

	nid = tiermm_page_node(virt_to_page(table));
	if (w->dp) {
		ret = tiermm_dump_table(w, lv, table, nid, addr);
		if (ret) {
			w->stop = addr;
			return ret;
		}
	}
	for (l = 0; l <= lv; l++) {
		if (w->cur[l] && w->st)
			tiermm_stat_finish(w, l);
		w->cur[l] = NULL;
	}
	w->cur[lv] = table;
	w->node[lv] = nid;
	if (w->st)
		w->st->tables[nid * TIERMM_PT_NR_LEVELS +
			      tiermm_uapi_level[lv]]++;
	if (w->rp) {
		w->rp->tables[tiermm_uapi_level[lv]]++;
		if (node_isset(nid, w->rp->local_nodes))
			w->rp->local[tiermm_uapi_level[lv]]++;
	}
	return 0;
}

/* PT_STAT: a data page (npages 4 KiB pages) that the table at lv maps. */
static void tiermm_stat_data(struct tiermm_walk *w, int lv, unsigned long pfn,
			     unsigned long npages)
{
	struct tiermm_stat_acc *st = w->st;
	struct page *page = pfn_to_online_page(pfn);
	int nid;

	if (!page)
		return;
	nid = tiermm_page_node(page);
	if (unlikely(nid < 0 || nid >= st->nr))
		return;
	st->data[nid] += npages;
	st->votes[lv * st->nr + nid]++;
}

/* PT_STAT: a huge leaf at level lv (PMD or PUD) mapping [addr, end). */
static void tiermm_stat_huge(struct tiermm_walk *w, int lv, unsigned long pfn,
			     unsigned long addr, unsigned long end)
{
	w->st->leaf[w->node[lv]]++;
	w->st->huge[tiermm_uapi_level[lv]]++;
	tiermm_stat_data(w, lv, pfn, (end - addr) >> PAGE_SHIFT);
}

static int tiermm_walk_pte(struct tiermm_walk *w, pmd_t pmd,
			   unsigned long addr, unsigned long end)
{
	pte_t *ptep = pte_offset_kernel(&pmd, addr);
	struct tiermm_stat_acc *st = w->st;
	int ret;

	ret = tiermm_walk_enter(w, TIERMM_LV_PTE, tiermm_table_of(ptep), addr);
	if (ret || !st)
		return ret;

	for (; addr != end; addr += PAGE_SIZE, ptep++) {
		pte_t pte = ptep_get(ptep);

		if (!pte_present(pte))
			continue;
		st->leaf[w->node[TIERMM_LV_PTE]]++;
		tiermm_stat_data(w, TIERMM_LV_PTE, pte_pfn(pte), 1);
	}
	return 0;
}

/* Between PMD entries, outside RCU: let others run, give up when killed. */
static int tiermm_walk_resched(void)
{
	cond_resched();
	if (fatal_signal_pending(current))
		return -EINTR;
	return 0;
}

static int tiermm_walk_pmd(struct tiermm_walk *w, pud_t pud,
			   unsigned long addr, unsigned long end)
{
	pmd_t *pmdp = pmd_offset(&pud, addr);
	unsigned long next;
	int ret;

	ret = tiermm_walk_enter(w, TIERMM_LV_PMD, tiermm_table_of(pmdp), addr);
	if (ret)
		return ret;
	do {
		pmd_t pmd;

		next = pmd_addr_end(addr, end);
		rcu_read_lock();
		pmd = pmdp_get_lockless(pmdp);
		/* Not present: none, swap or migration entry, no data. */
		if (pmd_present(pmd) && pmd_leaf(pmd)) {
			if (w->st)
				tiermm_stat_huge(w, TIERMM_LV_PMD, pmd_pfn(pmd),
						 addr, next);
		} else if (pmd_present(pmd) && !pmd_bad(pmd)) {
			ret = tiermm_walk_pte(w, pmd, addr, next);
		}
		rcu_read_unlock();
		if (!ret)
			ret = tiermm_walk_resched();
		if (ret)
			return ret;
	} while (pmdp++, addr = next, addr != end);
	return 0;
}

static int tiermm_walk_pud(struct tiermm_walk *w, p4d_t p4d,
			   unsigned long addr, unsigned long end)
{
	pud_t *pudp = pud_offset(&p4d, addr);
	unsigned long next;
	int ret;

	ret = tiermm_walk_enter(w, TIERMM_LV_PUD, tiermm_table_of(pudp), addr);
	if (ret)
		return ret;
	do {
		pud_t pud = pudp_get(pudp);

		next = pud_addr_end(addr, end);
		if (!pud_present(pud))
			continue;
		if (pud_leaf(pud)) {
			if (w->st)
				tiermm_stat_huge(w, TIERMM_LV_PUD, pud_pfn(pud),
						 addr, next);
		} else if (!pud_bad(pud)) {
			ret = tiermm_walk_pmd(w, pud, addr, next);
			if (ret)
				return ret;
		}
	} while (pudp++, addr = next, addr != end);
	return 0;
}

static int tiermm_walk_p4d(struct tiermm_walk *w, pgd_t *pgdp,
			   unsigned long addr, unsigned long end)
{
	p4d_t *p4dp = p4d_offset(pgdp, addr);
	unsigned long next;
	int ret;

	if (pgtable_l5_enabled()) {
		ret = tiermm_walk_enter(w, TIERMM_LV_P4D, tiermm_table_of(p4dp),
					addr);
		if (ret)
			return ret;
	}
	do {
		p4d_t p4d = p4dp_get(p4dp);

		next = p4d_addr_end(addr, end);
		if (p4d_none(p4d) || p4d_bad(p4d))
			continue;
		ret = tiermm_walk_pud(w, p4d, addr, next);
		if (ret)
			return ret;
	} while (p4dp++, addr = next, addr != end);
	return 0;
}

static int tiermm_walk_pgd(struct tiermm_walk *w, unsigned long addr,
			   unsigned long end)
{
	pgd_t *pgdp = pgd_offset_pgd(w->pgd, addr);
	unsigned long next;
	int ret;

	ret = tiermm_walk_enter(w, TIERMM_LV_PGD, w->pgd, addr);
	if (ret)
		return ret;
	do {
		pgd_t pgd = pgdp_get(pgdp);

		next = pgd_addr_end(addr, end);
		if (pgd_none(pgd) || pgd_bad(pgd))
			continue;
		ret = tiermm_walk_p4d(w, pgdp, addr, next);
		if (ret)
			return ret;
	} while (pgdp++, addr = next, addr != end);
	return 0;
}

/*
 * Walk [addr, end) restricted to the VMAs that may be walked, in address
 * order. The caller holds the mmap lock for reading.
 */
static int tiermm_walk_range(struct tiermm_walk *w, unsigned long addr,
			     unsigned long end)
{
	struct vm_area_struct *vma;
	int ret;

	while (addr < end) {
		vma = find_vma(w->mm, addr);
		if (!vma || vma->vm_start >= end)
			break;
		if (!(vma->vm_flags & (VM_PFNMAP | VM_IO | VM_HUGETLB))) {
			ret = tiermm_walk_pgd(w, max(addr, vma->vm_start),
					      min(end, vma->vm_end));
			if (ret)
				return ret;
		}
		addr = vma->vm_end;
	}
	return 0;
}

#ifdef CONFIG_PGTABLE_REPLICATION
/*
 * The series' slots are CPU groups (kernel.pgtable_replication_groups):
 * in node mode every CPU's slot is its node.
 */
static bool tiermm_repl_groups(void)
{
	int cpu;

	for_each_online_cpu(cpu)
		if (per_cpu(pgtable_repl_slot, cpu) != cpu_to_node(cpu))
			return true;
	return false;
}

/* The nodes where a table of slot's replica is local. */
static void tiermm_repl_local_nodes(int slot, bool groups, nodemask_t *nodes)
{
	int cpu;

	nodes_clear(*nodes);
	if (!groups) {
		node_set(slot, *nodes);
		return;
	}
	for_each_online_cpu(cpu)
		if (per_cpu(pgtable_repl_slot, cpu) == slot)
			node_set(cpu_to_node(cpu), *nodes);
}

/*
 * The records PT_STAT needs for mm's replicas: the highest slot + 1, 0 if
 * not replicated. The caller holds the mmap lock.
 */
static unsigned int tiermm_repl_needed(struct mm_struct *mm)
{
	struct pgtable_repl *pr = mm->pgtable_repl;
	unsigned int need = 0;
	int slot;

	if (!pr || !READ_ONCE(pr->active))
		return 0;
	for_each_node_mask(slot, pr->nodes)
		need = slot + 1;
	return need;
}

/*
 * PT_STAT: walk every replica tree of mm over [start, end) into repl[]
 * (nr records by slot, zeroed by the caller, nr >= tiermm_repl_needed()),
 * counting the replicas in *count. The caller holds the mmap lock for
 * reading (see the top of the file).
 */
static int tiermm_stat_replicas(struct mm_struct *mm, unsigned long start,
				unsigned long end,
				struct tiermm_pt_stat_repl *repl,
				unsigned int nr, u32 *count)
{
	struct pgtable_repl *pr = mm->pgtable_repl;
	struct tiermm_repl_acc *acc;
	bool groups;
	int slot, ret = 0;

	if (!pr || !READ_ONCE(pr->active))
		return 0;
	/* A nodemask is large: not on the stack. */
	acc = kmalloc(sizeof(*acc), GFP_KERNEL);
	if (!acc)
		return -ENOMEM;
	groups = tiermm_repl_groups();
	for_each_node_mask(slot, pr->nodes) {
		struct tiermm_walk w = {};

		if (slot >= nr || !pr->pgd[slot])
			continue;
		memset(acc, 0, sizeof(*acc));
		tiermm_repl_local_nodes(slot, groups, &acc->local_nodes);
		w.mm = mm;
		w.pgd = pr->pgd[slot];
		w.rp = acc;
		ret = tiermm_walk_range(&w, start, end);
		if (ret)
			break;
		repl[slot].flags = TIERMM_PT_REPLICA_PRESENT |
				   (groups ? TIERMM_PT_REPLICA_GROUP : 0);
		memcpy(repl[slot].tables, acc->tables, sizeof(acc->tables));
		memcpy(repl[slot].local, acc->local, sizeof(acc->local));
		(*count)++;
	}
	kfree(acc);
	return ret;
}
#else
static unsigned int tiermm_repl_needed(struct mm_struct *mm)
{
	return 0;
}

static int tiermm_stat_replicas(struct mm_struct *mm, unsigned long start,
				unsigned long end,
				struct tiermm_pt_stat_repl *repl,
				unsigned int nr, u32 *count)
{
	return 0;
}
#endif

/* Zero size bytes of user memory, in pieces, as a long loop should. */
static int tiermm_clear_user(void __user *p, u64 size)
{
	while (size) {
		size_t n = min_t(u64, size, SZ_64K);

		if (clear_user(p, n))
			return -EFAULT;
		p += n;
		size -= n;
		cond_resched();
		if (fatal_signal_pending(current))
			return -EINTR;
	}
	return 0;
}

/* Copy a per-node array of nr u64 rows of width u64s, zero the rest. */
static int tiermm_put_node_array(u64 uptr, const u64 *src, unsigned int nr,
				 u32 nr_nodes, unsigned int width)
{
	void __user *dst = u64_to_user_ptr(uptr);
	size_t used = (size_t)nr * width * sizeof(u64);

	if (copy_to_user(dst, src, used))
		return -EFAULT;
	return tiermm_clear_user(dst + used,
				 (u64)(nr_nodes - nr) * width * sizeof(u64));
}

long tiermm_ioctl_pt_stat(void __user *uarg)
{
	struct tiermm_pt_stat __user *uptr = uarg;
	struct tiermm_pt_stat_repl *repl = NULL;
	struct tiermm_pt_stat arg = {};
	struct tiermm_stat_acc st = {};
	struct tiermm_walk w = {};
	struct mm_struct *mm;
	unsigned int nr = nr_node_ids;
	unsigned int repl_need = 0;
	bool want_repl;
	u32 nr_repl = 0;
	u64 *mem;
	u32 argsz;
	int ret, l;

	ret = tiermm_copy_arg(&arg, sizeof(arg), TIERMM_PT_STAT_SIZE_VER0,
			      uarg, &argsz);
	if (ret)
		return ret;
	want_repl = arg.flags & TIERMM_PT_STAT_REPLICAS;
	if ((arg.flags & ~TIERMM_PT_STAT_REPLICAS) ||
	    (want_repl ? !arg.repl_nr || arg.repl_nr > TIERMM_REPL_NR_MAX :
			 arg.repl_ptr || arg.repl_nr) ||
	    memchr_inv(arg.reserved, 0, sizeof(arg.reserved)))
		return -EINVAL;
	ret = tiermm_check_range(arg.start, arg.len);
	if (ret)
		return ret;
	if (arg.nr_nodes < nr) {
		/* The one failure that writes something: the size needed. */
		if (put_user(nr, &uptr->nr_nodes))
			return -EFAULT;
		return -ENOSPC;
	}

	ret = tiermm_get_target_mm(arg.pid, TIERMM_ACCESS_READ, &mm);
	if (ret)
		return ret;

	/* tables, leaf, data, votes */
	mem = kvcalloc((size_t)nr * (TIERMM_PT_NR_LEVELS + 2 + TIERMM_LV_NR),
		       sizeof(u64), GFP_KERNEL);
	if (want_repl)
		repl = kvcalloc(arg.repl_nr, sizeof(*repl), GFP_KERNEL);
	if (!mem || (want_repl && !repl)) {
		kvfree(repl);
		kvfree(mem);
		mmput(mm);
		return -ENOMEM;
	}
	st.nr = nr;
	st.tables = mem;
	st.leaf = st.tables + nr * TIERMM_PT_NR_LEVELS;
	st.data = st.leaf + nr;
	st.votes = st.data + nr;
	w.mm = mm;
	w.pgd = mm->pgd;
	w.st = &st;

	ret = mmap_read_lock_killable(mm);
	if (!ret && want_repl) {
		repl_need = tiermm_repl_needed(mm);
		if (repl_need > arg.repl_nr) {
			mmap_read_unlock(mm);
			ret = -ENOSPC;
		}
	}
	if (!ret) {
		ret = tiermm_walk_range(&w, arg.start, arg.start + arg.len);
		for (l = 0; l < TIERMM_LV_NR; l++)
			if (w.cur[l])
				tiermm_stat_finish(&w, l);
		if (!ret && want_repl)
			ret = tiermm_stat_replicas(mm, arg.start,
						   arg.start + arg.len, repl,
						   arg.repl_nr, &nr_repl);
		mmap_read_unlock(mm);
	}
	mmput(mm);
	if (ret == -ENOSPC && repl_need > arg.repl_nr) {
		/* The other failure that writes: the records needed. */
		kvfree(repl);
		kvfree(mem);
		if (put_user(repl_need, &uptr->repl_nr))
			return -EFAULT;
		return -ENOSPC;
	}

	if (!ret)
		ret = tiermm_put_node_array(arg.tables_ptr, st.tables, nr,
					    arg.nr_nodes, TIERMM_PT_NR_LEVELS);
	if (!ret)
		ret = tiermm_put_node_array(arg.leaf_ptr, st.leaf, nr,
					    arg.nr_nodes, 1);
	if (!ret)
		ret = tiermm_put_node_array(arg.data_ptr, st.data, nr,
					    arg.nr_nodes, 1);
	if (!ret && want_repl)
		ret = tiermm_put_node_array(arg.repl_ptr, (u64 *)repl,
					    arg.repl_nr, arg.repl_nr,
					    sizeof(*repl) / sizeof(u64));
	kvfree(repl);
	kvfree(mem);
	if (ret)
		return ret;

	/* Inputs as given, outputs filled in, everything else zero. */
	memcpy(arg.tables_local, st.local, sizeof(arg.tables_local));
	memcpy(arg.tables_remote, st.remote, sizeof(arg.tables_remote));
	memcpy(arg.tables_empty, st.empty, sizeof(arg.tables_empty));
	memcpy(arg.leaf_huge, st.huge, sizeof(arg.leaf_huge));
	arg.repl_count = nr_repl;
	arg.argsz = min_t(u32, argsz, sizeof(arg));
	if (copy_to_user(uarg, &arg, arg.argsz))
		return -EFAULT;
	return 0;
}

long tiermm_ioctl_pt_dump(void __user *uarg)
{
	struct tiermm_pt_dump arg = {};
	struct tiermm_dump_acc dp = {};
	struct tiermm_walk w = {};
	unsigned long addr, end, next = 0;
	struct mm_struct *mm;
	u32 argsz;
	int ret;

	ret = tiermm_copy_arg(&arg, sizeof(arg), TIERMM_PT_DUMP_SIZE_VER0,
			      uarg, &argsz);
	if (ret)
		return ret;
	if (arg.flags || arg.pad0 ||
	    memchr_inv(arg.reserved, 0, sizeof(arg.reserved)))
		return -EINVAL;
	ret = tiermm_check_range(arg.start, arg.len);
	if (ret)
		return ret;
	if (arg.buf_len < TIERMM_DUMP_MIN_RECS * TIERMM_DUMP_REC_SIZE)
		return -EINVAL;

	ret = tiermm_get_target_mm(arg.pid, TIERMM_ACCESS_READ, &mm);
	if (ret)
		return ret;

	dp.ksize = min_t(u64, arg.buf_len / TIERMM_DUMP_REC_SIZE,
			 TIERMM_DUMP_KBUF_RECS) * TIERMM_DUMP_REC_SIZE;
	dp.kbuf = kvmalloc(dp.ksize, GFP_KERNEL);
	if (!dp.kbuf) {
		mmput(mm);
		return -ENOMEM;
	}
	dp.ulen = arg.buf_len;
	dp.user_pgd_ptrs = pgd_index(TASK_SIZE_MAX - 1) + 1;
	/* Physical addresses only for those who may see them in pagemap. */
	dp.pfns = ns_capable_noaudit(&init_user_ns, CAP_SYS_ADMIN);
	w.mm = mm;
	w.pgd = mm->pgd;
	w.dp = &dp;

	addr = arg.start;
	end = arg.start + arg.len;
	for (;;) {
		ret = mmap_read_lock_killable(mm);
		if (ret)
			break;
		ret = tiermm_walk_range(&w, addr, end);
		mmap_read_unlock(mm);
		if (ret < 0)
			break;
		if (dp.kused &&
		    copy_to_user(u64_to_user_ptr(arg.buf_ptr + dp.uused),
				 dp.kbuf, dp.kused)) {
			ret = -EFAULT;
			break;
		}
		dp.uused += dp.kused;
		dp.kused = 0;
		if (ret == TIERMM_WALK_FLUSH) {
			addr = w.stop;
			continue;
		}
		next = ret == TIERMM_WALK_FULL ? w.stop : end;
		ret = 0;
		break;
	}
	kvfree(dp.kbuf);
	mmput(mm);
	if (ret)
		return ret;

	arg.written = dp.uused;
	arg.next = next;
	arg.argsz = min_t(u32, argsz, sizeof(arg));
	if (copy_to_user(uarg, &arg, arg.argsz))
		return -EFAULT;
	return 0;
}
