/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tiermm.ko internal interfaces shared by its source files.
 */
#ifndef _TIERMM_INTERNAL_H
#define _TIERMM_INTERNAL_H

#include <linux/mm_types.h>
#include <linux/types.h>

#include <linux/tiermm.h>

/* What a command wants to do with the target process. */
enum tiermm_access {
	TIERMM_ACCESS_READ,	/* read its page tables */
	TIERMM_ACCESS_MODIFY,	/* migrate tables, clear accessed bits */
};

/*
 * common.c: read a command's argument struct: argsz (the first __u32 of
 * uarg) must be at least ver0 and at most PAGE_SIZE; the struct is copied
 * with copy_struct_from_user() into karg (ksize bytes, zero-filled when the
 * caller's is shorter) and *argszp receives argsz. -EFAULT, or -EINVAL
 * for a bad argsz or non-zero bytes beyond ksize. Flags, padding and
 * reserved fields are the caller's to check.
 */
int tiermm_copy_arg(void *karg, size_t ksize, size_t ver0,
		    void __user *uarg, u32 *argszp);

/*
 * common.c: look up pid (0: current) and check permissions as
 * move_pages(2) does; on success *mmp holds a reference the caller drops
 * with mmput(). -ESRCH (no such process, or it has exited), -EINVAL (a
 * kernel thread), -EPERM / -EACCES (not allowed).
 */
int tiermm_get_target_mm(pid_t pid, enum tiermm_access access,
			 struct mm_struct **mmp);

/*
 * common.c: validate a user range: page-aligned start and len, len > 0,
 * no overflow, end <= TASK_SIZE. 0 or -EINVAL.
 */
int tiermm_check_range(u64 start, u64 len);

/*
 * common.c: whether mm's page tables are replicated (a kernel with
 * CONFIG_PGTABLE_REPLICATION, tiermm's patch series; always false
 * otherwise). The series changes that only with mmap_lock held for write:
 * the answer holds while the caller holds it in either mode.
 */
bool tiermm_mm_replicated(struct mm_struct *mm);

/*
 * common.c: test and clear the accessed bit of a present leaf entry (a PTE
 * or a huge PMD), as ptep_test_and_clear_young() does without its VMA:
 * the entry's own bit and, with page-table replication, its copies' bits.
 * The caller holds the entry's page-table lock. True if a bit was set.
 */
bool tiermm_clear_young(unsigned long *entry);

/*
 * common.c: the node of a page-table page given the struct page (or the
 * folio) holding it; NUMA_NO_NODE never occurs for valid pages.
 */
int tiermm_page_node(struct page *page);

/*
 * common.c: flush every CPU's TLB (flush_tlb_mm_range is not exported:
 * an IPI running __flush_tlb_all on each online CPU).
 */
void tiermm_flush_all_tlbs(void);

/*
 * The command handlers. arg is the user pointer of the ioctl; each reads
 * the struct with copy_struct_from_user() after checking argsz against
 * its *_SIZE_VER0, rejects unknown flags and non-zero reserved/pad fields
 * with -EINVAL, and writes the struct back (at most argsz bytes) on success.
 */
long tiermm_ioctl_pt_stat(void __user *arg);		/* pt_walk.c */
long tiermm_ioctl_pt_dump(void __user *arg);		/* pt_walk.c */
long tiermm_ioctl_ab_scan(void __user *arg);		/* pt_scan.c */
long tiermm_ioctl_pt_migrate(void __user *arg);		/* pt_migrate.c */

#endif /* _TIERMM_INTERNAL_H */
