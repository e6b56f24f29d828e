// SPDX-License-Identifier: GPL-2.0
/*
 * tiermm.ko: TIERMM_CMD_AB_SCAN, test and clear the accessed bits of a
 * process's leaf page-table entries.
 *
 * What it mirrors: DAMON's virtual-address operations (mm/damon/vaddr.c,
 * damon_mkold_pmd_entry() with damon_ptep_mkold()/damon_pmdp_mkold() of
 * mm/damon/ops-common.c), which clear accessed bits under the mmap lock
 * held for reading, the PTE table's lock (pte_offset_map_lock()) for 4 KiB
 * entries and the PMD lock for a PMD-mapped THP, and mark the folio young
 * (PG_young) when a bit was set, so that reclaim's folio_referenced() still
 * counts the access we took away. /proc/PID/clear_refs clears the same bits
 * under the same locks.
 *
 * The module cannot call the kernel's helpers, so their steps are written
 * here from inline pieces:
 * - pte_offset_map_lock() (__pte_offset_map_lock() is not exported): under
 *   rcu_read_lock(), read the PMD once with pmdp_get_lockless(), check it
 *   points to a PTE table, take that table's lock (pte_lockptr()), and
 *   re-read the PMD: if it changed (THP collapse unhooked the table, which
 *   pte_free_defer() frees after an RCU grace period), retry.
 * - ptep_test_and_clear_young() / pmdp_test_and_clear_young() (not
 *   exported): on x86 both are "if young, test_and_clear_bit(
 *   _PAGE_BIT_ACCESSED) on the entry word", atomic against the CPU setting
 *   accessed and dirty bits concurrently.
 * - mmu_notifier_clear_young() cannot be called (its out-of-line part,
 *   __mmu_notifier_clear_young(), is not exported): accessed bits kept by
 *   secondary MMUs (KVM, devices) are neither reported nor cleared.
 * - No TLB flush per entry, as on x86 ptep_clear_flush_young(); with
 *   TIERMM_SCAN_FLUSH one flush of every CPU's TLB ends the call
 *   (flush_tlb_mm_range() is not exported).
 *
 * Replicated page tables (tiermm's kernel series, CONFIG_PGTABLE_REPLICATION):
 * the CPUs of each node set accessed bits in that node's copy of the
 * entry. The series' ptep_get()/pmdp_get() OR the copies' bits in, and
 * its ptep_test_and_clear_young() clears the master's bit and then the
 * copies' with pgtable_repl_clear_young() (exported), under the same
 * table lock; tiermm_clear_young() does the same here, so a replicated
 * process is scanned like any other.
 *
 * Not scanned: VM_HUGETLB VMAs (hugetlb entries need the hugetlb VMA lock,
 * which is not exported, and hugetlb PMD tables can be shared and freed
 * without RCU), VM_PFNMAP / VM_IO VMAs (no pages behind them), device
 * (DAX) huge PMDs and 1 GiB PUD leaves. Their pages count as neither
 * scanned nor accessed and their bits / counts are 0.
 *
 * Work: "scanned" counts the 4 KiB pages whose leaf entry was examined
 * (512 for a THP); address ranges without a PTE or PMD table cost nothing
 * and are passed over. The target's mmap lock is taken per chunk of the
 * output (16 KiB of bitmap or counts) and dropped to copy the chunk out.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/bitops.h>
#include <linux/errno.h>
#include <linux/minmax.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/page-flags.h>
#include <linux/pgtable.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "tiermm_internal.h"

static_assert(sizeof(struct tiermm_ab_scan) == TIERMM_AB_SCAN_SIZE_VER0);

#define TIERMM_SCAN_FLAGS	(TIERMM_SCAN_FLUSH | TIERMM_SCAN_COUNTS)
#define TIERMM_SCAN_MAX_PAGES	262144	/* max_pages 0: 1 GiB */
#define TIERMM_SCAN_KBUF	SZ_16K	/* output gathered per chunk */

/* The walk stopped at scan->stop because max_pages were examined. */
#define TIERMM_SCAN_STOP	1

struct tiermm_scan {
	struct mm_struct *mm;
	bool counts;		/* TIERMM_SCAN_COUNTS */
	unsigned long base;	/* address of the chunk's first bit or count */
	void *kbuf;		/* the chunk's bitmap or __u16 counts */
	u64 max;		/* max_pages */
	u64 scanned;
	u64 accessed;
	unsigned long stop;
};

/* Record npages accessed pages from addr on. */
static void tiermm_scan_mark(struct tiermm_scan *s, unsigned long addr,
			     unsigned long npages)
{
	s->accessed += npages;
	if (s->counts) {
		u16 *counts = s->kbuf;

		counts[(addr - s->base) >> PMD_SHIFT] += npages;
	} else {
		/* x86 is little-endian: bit i is bit i % 8 of byte i / 8. */
		bitmap_set(s->kbuf, (addr - s->base) >> PAGE_SHIFT, npages);
	}
}

/*
 * An accessed bit was cleared on an entry mapping pfn: keep the access
 * visible to reclaim, as damon_ptep_mkold() does (LRU folios only). The
 * entry's table lock is held, so the mapped page cannot be freed.
 */
static void tiermm_scan_set_young(unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);
	struct folio *folio;

	if (!page)
		return;
	folio = page_folio(page);
	if (folio_test_lru(folio))
		folio_set_young(folio);
}

/*
 * The 4 KiB entries of [addr, end) in the PTE table pmd points to. 0, or
 * -EAGAIN when the PMD changed before its table was locked.
 */
static int tiermm_scan_ptes(struct tiermm_scan *s, pmd_t *pmdp, pmd_t pmd,
			    unsigned long addr, unsigned long end)
{
	spinlock_t *ptl = pte_lockptr(s->mm, &pmd);
	pte_t *ptep = pte_offset_kernel(&pmd, addr);

	spin_lock(ptl);
	if (unlikely(!pmd_same(pmd, pmdp_get_lockless(pmdp)))) {
		spin_unlock(ptl);
		return -EAGAIN;
	}
	for (; addr != end; addr += PAGE_SIZE, ptep++) {
		pte_t pte = ptep_get(ptep);

		if (!pte_present(pte) || !pte_young(pte))
			continue;
		if (!tiermm_clear_young((unsigned long *)&ptep->pte))
			continue;
		if (!pte_special(pte))
			tiermm_scan_set_young(pte_pfn(pte));
		tiermm_scan_mark(s, addr, 1);
	}
	spin_unlock(ptl);
	return 0;
}

/*
 * A PMD-mapped THP covering [addr, end). 0, or -EAGAIN when the PMD is no
 * longer a THP once locked.
 */
static int tiermm_scan_thp(struct tiermm_scan *s, pmd_t *pmdp,
			   unsigned long addr, unsigned long end)
{
	spinlock_t *ptl = pmd_lock(s->mm, pmdp);
	pmd_t pmd = pmdp_get(pmdp);

	if (unlikely(!pmd_present(pmd) || !pmd_trans_huge(pmd))) {
		spin_unlock(ptl);
		return -EAGAIN;
	}
	if (pmd_young(pmd) && tiermm_clear_young((unsigned long *)pmdp)) {
		tiermm_scan_set_young(pmd_pfn(pmd));
		tiermm_scan_mark(s, addr, (end - addr) >> PAGE_SHIFT);
	}
	spin_unlock(ptl);
	return 0;
}

/*
 * One PMD entry, covering [addr, end): 0 when done, TIERMM_SCAN_STOP when
 * the budget ends the walk (s->stop set).
 */
static int tiermm_scan_pmd_entry(struct tiermm_scan *s, pmd_t *pmdp,
				 unsigned long addr, unsigned long end)
{
	unsigned long npages = (end - addr) >> PAGE_SHIFT;
	unsigned long n;
	pmd_t pmd;
	int ret;

	/*
	 * With counts, calls end at 2 MiB boundaries only, and a region is
	 * scanned whole even if that exceeds the budget.
	 */
	if (s->counts) {
		if (IS_ALIGNED(addr, PMD_SIZE) && s->scanned &&
		    s->scanned + PTRS_PER_PMD > s->max)
			goto stop;
	} else if (s->scanned >= s->max) {
		goto stop;
	}
again:
	rcu_read_lock();
	pmd = pmdp_get_lockless(pmdp);
	ret = 0;
	if (!pmd_present(pmd)) {
		/* no table, no data, no cost */
	} else if (pmd_leaf(pmd)) {
		if (!pmd_trans_huge(pmd)) {
			/* device (DAX) huge PMD: not scanned */
		} else if (!s->counts && s->scanned &&
			   s->scanned + npages > s->max) {
			rcu_read_unlock();
			goto stop;	/* the THP is not split across calls */
		} else {
			ret = tiermm_scan_thp(s, pmdp, addr, end);
			if (!ret)
				s->scanned += npages;
		}
	} else if (!pmd_bad(pmd)) {
		n = npages;
		if (!s->counts)
			n = min_t(u64, n, s->max - s->scanned);
		ret = tiermm_scan_ptes(s, pmdp, pmd, addr,
				       addr + (n << PAGE_SHIFT));
		if (!ret) {
			s->scanned += n;
			if (n < npages) {
				rcu_read_unlock();
				addr += n << PAGE_SHIFT;
				goto stop;
			}
		}
	}
	rcu_read_unlock();
	if (ret == -EAGAIN)
		goto again;
	return 0;
stop:
	s->stop = addr;
	return TIERMM_SCAN_STOP;
}

static int tiermm_scan_pmd(struct tiermm_scan *s, pud_t pud,
			   unsigned long addr, unsigned long end)
{
	pmd_t *pmdp = pmd_offset(&pud, addr);
	unsigned long next;
	int ret;

	do {
		next = pmd_addr_end(addr, end);
		ret = tiermm_scan_pmd_entry(s, pmdp, addr, next);
		if (ret)
			return ret;
		cond_resched();
	} while (pmdp++, addr = next, addr != end);
	return 0;
}

static int tiermm_scan_pud(struct tiermm_scan *s, p4d_t p4d,
			   unsigned long addr, unsigned long end)
{
	pud_t *pudp = pud_offset(&p4d, addr);
	unsigned long next;
	int ret;

	do {
		pud_t pud = pudp_get(pudp);

		next = pud_addr_end(addr, end);
		/* 1 GiB leaves (DAX) are not scanned */
		if (!pud_present(pud) || pud_leaf(pud) || pud_bad(pud))
			continue;
		ret = tiermm_scan_pmd(s, pud, addr, next);
		if (ret)
			return ret;
	} while (pudp++, addr = next, addr != end);
	return 0;
}

static int tiermm_scan_p4d(struct tiermm_scan *s, pgd_t *pgdp,
			   unsigned long addr, unsigned long end)
{
	p4d_t *p4dp = p4d_offset(pgdp, addr);
	unsigned long next;
	int ret;

	do {
		p4d_t p4d = p4dp_get(p4dp);

		next = p4d_addr_end(addr, end);
		if (p4d_none(p4d) || p4d_bad(p4d))
			continue;
		ret = tiermm_scan_pud(s, p4d, addr, next);
		if (ret)
			return ret;
	} while (p4dp++, addr = next, addr != end);
	return 0;
}

static int tiermm_scan_pgd(struct tiermm_scan *s, unsigned long addr,
			   unsigned long end)
{
	pgd_t *pgdp = pgd_offset(s->mm, addr);
	unsigned long next;
	int ret;

	do {
		pgd_t pgd = pgdp_get(pgdp);

		next = pgd_addr_end(addr, end);
		if (pgd_none(pgd) || pgd_bad(pgd))
			continue;
		ret = tiermm_scan_p4d(s, pgdp, addr, next);
		if (ret)
			return ret;
	} while (pgdp++, addr = next, addr != end);
	return 0;
}

/* [addr, end) under the mmap read lock: 0, or TIERMM_SCAN_STOP. */
static int tiermm_scan_range(struct tiermm_scan *s, unsigned long addr,
			     unsigned long end)
{
	struct vm_area_struct *vma;
	int ret;

	while (addr < end) {
		vma = find_vma(s->mm, addr);
		if (!vma || vma->vm_start >= end)
			break;
		if (!(vma->vm_flags & (VM_PFNMAP | VM_IO | VM_HUGETLB))) {
			ret = tiermm_scan_pgd(s, max(addr, vma->vm_start),
					      min(end, vma->vm_end));
			if (ret)
				return ret;
		}
		addr = vma->vm_end;
	}
	return 0;
}

/*
 * Copy bitmap bits [first, last) (page indexes from the range start) to the
 * caller's bitmap; kbuf's bit 0 is bit round_down(first, 8). Bits of the
 * edge bytes outside [first, last) keep the caller's values.
 */
static int tiermm_scan_put_bits(u8 __user *ubits, u8 *kbuf, u64 first,
				u64 last)
{
	u64 b0 = first / BITS_PER_BYTE;
	u64 b1 = DIV_ROUND_UP(last, BITS_PER_BYTE);
	u8 old, keep;

	if (first % BITS_PER_BYTE) {
		if (get_user(old, ubits + b0))
			return -EFAULT;
		keep = GENMASK(first % BITS_PER_BYTE - 1, 0);
		kbuf[0] = (kbuf[0] & ~keep) | (old & keep);
	}
	if (last % BITS_PER_BYTE) {
		if (get_user(old, ubits + b1 - 1))
			return -EFAULT;
		keep = (u8)~GENMASK(last % BITS_PER_BYTE - 1, 0);
		kbuf[b1 - b0 - 1] = (kbuf[b1 - b0 - 1] & ~keep) | (old & keep);
	}
	if (copy_to_user(ubits + b0, kbuf, b1 - b0))
		return -EFAULT;
	return 0;
}

long tiermm_ioctl_ab_scan(void __user *uarg)
{
	struct tiermm_ab_scan arg = {};
	struct tiermm_scan s = {};
	unsigned long start, end, cursor, span, chunk_end, stop;
	void __user *out;
	struct mm_struct *mm;
	u64 need;
	u32 argsz;
	int ret;

	ret = tiermm_copy_arg(&arg, sizeof(arg), TIERMM_AB_SCAN_SIZE_VER0,
			      uarg, &argsz);
	if (ret)
		return ret;
	if ((arg.flags & ~TIERMM_SCAN_FLAGS) || arg.pad0 ||
	    memchr_inv(arg.reserved, 0, sizeof(arg.reserved)))
		return -EINVAL;
	ret = tiermm_check_range(arg.start, arg.len);
	if (ret)
		return ret;
	start = arg.start;
	end = arg.start + arg.len;
	cursor = arg.cursor;
	s.counts = arg.flags & TIERMM_SCAN_COUNTS;
	if (cursor < start || cursor >= end || !PAGE_ALIGNED(cursor))
		return -EINVAL;
	if (s.counts) {
		if (!IS_ALIGNED(start, PMD_SIZE) || !IS_ALIGNED(cursor, PMD_SIZE))
			return -EINVAL;
		need = DIV_ROUND_UP(arg.len, PMD_SIZE) * sizeof(u16);
		span = TIERMM_SCAN_KBUF / sizeof(u16) * PMD_SIZE;
	} else {
		need = DIV_ROUND_UP(arg.len >> PAGE_SHIFT, BITS_PER_BYTE);
		span = TIERMM_SCAN_KBUF * BITS_PER_BYTE * PAGE_SIZE;
	}
	if (arg.out_len < need)
		return -EINVAL;
	out = u64_to_user_ptr(arg.out_ptr);
	s.max = arg.max_pages ? arg.max_pages : TIERMM_SCAN_MAX_PAGES;

	ret = tiermm_get_target_mm(arg.pid, TIERMM_ACCESS_MODIFY, &mm);
	if (ret)
		return ret;
	s.mm = mm;
	s.kbuf = kvmalloc(TIERMM_SCAN_KBUF, GFP_KERNEL);
	if (!s.kbuf) {
		mmput(mm);
		return -ENOMEM;
	}

	while (cursor < end) {
		/* The chunk starts at the output's unit holding the cursor. */
		if (s.counts)
			s.base = cursor;
		else
			s.base = start + round_down((cursor - start) >> PAGE_SHIFT,
						    BITS_PER_BYTE) * PAGE_SIZE;
		chunk_end = end - s.base > span ? s.base + span : end;
		memset(s.kbuf, 0, TIERMM_SCAN_KBUF);

		ret = mmap_read_lock_killable(mm);
		if (ret)
			break;
		ret = tiermm_scan_range(&s, cursor, chunk_end);
		mmap_read_unlock(mm);
		stop = ret == TIERMM_SCAN_STOP ? s.stop : chunk_end;

		if (s.counts) {
			if (copy_to_user(out + ((cursor - start) >> PMD_SHIFT) *
					 sizeof(u16), s.kbuf,
					 DIV_ROUND_UP(stop - cursor, PMD_SIZE) *
					 sizeof(u16)))
				ret = -EFAULT;
		} else if (stop > cursor) {
			if (tiermm_scan_put_bits(out, s.kbuf,
						 (cursor - start) >> PAGE_SHIFT,
						 (stop - start) >> PAGE_SHIFT))
				ret = -EFAULT;
		}
		if (ret < 0)
			break;
		cursor = stop;
		if (ret == TIERMM_SCAN_STOP || fatal_signal_pending(current))
			break;
		cond_resched();
	}
	kvfree(s.kbuf);
	mmput(mm);

	/* Cleared bits stay cleared on failure: flush for them too. */
	if ((arg.flags & TIERMM_SCAN_FLUSH) && s.accessed)
		tiermm_flush_all_tlbs();
	if (ret < 0)
		return ret;

	arg.cursor = cursor;
	arg.scanned = s.scanned;
	arg.accessed = s.accessed;
	arg.argsz = min_t(u32, argsz, sizeof(arg));
	if (copy_to_user(uarg, &arg, arg.argsz))
		return -EFAULT;
	return 0;
}
