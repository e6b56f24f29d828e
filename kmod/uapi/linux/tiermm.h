/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR LGPL-2.1-or-later) */
/*
 * tiermm.ko user-space interface: /dev/tiermm ioctls.
 *
 * This is the only definition of the interface. The module (kmod/) and
 * libtiermm (lib/) both include this file; it is never copied.
 *
 * Conventions (the same as VFIO and userfaultfd):
 * - every argument struct starts with __u32 argsz (the size the caller
 *   passes, at least the command's *_SIZE_VER0) and __u32 flags (unknown
 *   bits are rejected with -EINVAL);
 * - fields have fixed sizes, padding is explicit and reserved fields must be
 *   zero, or the call fails with -EINVAL;
 * - a caller may pass a larger struct than the module knows, as long as the
 *   bytes the module does not know are zero; the module writes back at most
 *   argsz bytes;
 * - fields marked "out" are ignored on input; on failure (other than
 *   -EFAULT while writing back) the caller's struct is left unchanged;
 * - unknown ioctl commands fail with -ENOTTY.
 *
 * Magic 0xB9 is not listed in Documentation/userspace-api/ioctl/ioctl-number.rst
 * of Linux 6.12.
 */
#ifndef _UAPI_LINUX_TIERMM_H
#define _UAPI_LINUX_TIERMM_H

#include <linux/const.h>
#include <linux/types.h>
#include <linux/ioctl.h>

#define TIERMM_DEVICE_NAME	"tiermm"
#define TIERMM_IOC_MAGIC	0xB9

/*
 * API version: bumped when a command is added or a struct grows. The
 * library refuses modules older than the version it needs; newer modules
 * keep answering the commands of older versions (see commands).
 */
#define TIERMM_API_VERSION	3

/* Command numbers (the nr field of the ioctl); bit n of commands = nr n. */
#define TIERMM_CMD_GET_API	0x00
#define TIERMM_CMD_PT_STAT	0x01	/* API 2 */
#define TIERMM_CMD_PT_DUMP	0x02	/* API 2 */
#define TIERMM_CMD_PT_MIGRATE	0x03	/* API 2 */
#define TIERMM_CMD_AB_SCAN	0x04	/* API 2 */
/*
 * API 3 adds no command: PT_STAT takes TIERMM_PT_STAT_REPLICAS, PT_MIGRATE
 * refuses a process with replicated page tables (-EBUSY), and AB_SCAN
 * clears the accessed bits of the replicas too.
 */

/**
 * struct tiermm_get_api - handshake: which API the loaded module speaks
 * @argsz:	in: sizeof(struct tiermm_get_api) as the caller knows it, at
 *		least TIERMM_GET_API_SIZE_VER0 and at most the page size;
 *		out: the number of bytes the module wrote back, that is
 *		min(argsz, the module's sizeof(struct tiermm_get_api))
 * @flags:	in: must be 0; out: 0
 * @api_version: out: TIERMM_API_VERSION of the module
 * @pad0:	must be 0
 * @features:	out: TIERMM_FEAT_* bits the module implements
 * @commands:	out: bit n set when command number n is supported
 * @reserved:	must be 0
 */
struct tiermm_get_api {
	__u32 argsz;
	__u32 flags;
	__u32 api_version;
	__u32 pad0;
	__u64 features;
	__u64 commands;
	__u64 reserved[4];
};

#define TIERMM_GET_API_SIZE_VER0	64

/* Feature bits reported in tiermm_get_api.features. */
#define TIERMM_FEAT_GET_API	_BITULL(0)	/* the handshake itself */
#define TIERMM_FEAT_PT_STAT	_BITULL(1)
#define TIERMM_FEAT_PT_DUMP	_BITULL(2)
#define TIERMM_FEAT_PT_MIGRATE	_BITULL(3)
#define TIERMM_FEAT_AB_SCAN	_BITULL(4)
/*
 * The module was built against a kernel with page-table replication
 * (CONFIG_PGTABLE_REPLICATION, tiermm's kernel patch series): PT_STAT with
 * TIERMM_PT_STAT_REPLICAS walks the replicas. Without it the flag is
 * accepted (API 3) and reports no replica.
 */
#define TIERMM_FEAT_PT_REPLICAS	_BITULL(5)

#define TIERMM_IOC_GET_API \
	_IOWR(TIERMM_IOC_MAGIC, TIERMM_CMD_GET_API, struct tiermm_get_api)

/*
 * Page-table levels, in the index order of every per-level array below.
 * On x86-64 with 4-level paging the P4D is folded into the PGD; the PGD
 * page itself is counted at TIERMM_PT_PGD.
 */
#define TIERMM_PT_PTE		0
#define TIERMM_PT_PMD		1
#define TIERMM_PT_PUD		2
#define TIERMM_PT_PGD		3	/* PGD, and P4D when not folded */
#define TIERMM_PT_NR_LEVELS	4

/*
 * Ranges: [start, start + len) in the target's user address space; start
 * and len page-aligned, len > 0, no overflow, the end at most
 * TASK_SIZE_MAX. Anything else is -EINVAL. Only VMAs without VM_HUGETLB,
 * VM_PFNMAP and VM_IO are walked; the rest of the range maps nothing.
 *
 * Permissions (as move_pages(2)): reading a process's page tables needs
 * ptrace_may_access(PTRACE_MODE_READ_REALCREDS); migrating them or clearing
 * accessed bits needs, in addition, the same user or CAP_SYS_NICE (-EPERM).
 * A module cannot call the LSM hooks (security_ptrace_access_check() and
 * security_task_movememory() are not exported): the credential,
 * dumpability and capability rules are checked, other LSMs are not asked.
 * An exited or unknown pid is -ESRCH, a kernel thread -EINVAL.
 *
 * Per-node arrays are user buffers of nr_nodes entries indexed by node id.
 */

/**
 * struct tiermm_pt_stat - page-table statistics of a range (TIERMM_CMD_PT_STAT)
 * @argsz:	in: sizeof(struct tiermm_pt_stat) as the caller knows it
 * @flags:	in: must be 0
 * @pid:	in: target process (0: the caller)
 * @nr_nodes:	in: entries in every per-node array; -ENOSPC (and the needed
 *		value written here; with @repl_nr the only fields this failure
 *		writes) when smaller than nr_node_ids; entries from nr_node_ids
 *		on are set 0
 * @start, @len: in: the range
 * @tables_ptr:	in: __u64[nr_nodes][TIERMM_PT_NR_LEVELS]: out: page-table
 *		pages per node and level that map some of the range
 * @leaf_ptr:	in: __u64[nr_nodes]: out: leaf entries (present PTEs, and
 *		PMD/PUD huge mappings) held in tables on each node
 * @data_ptr:	in: __u64[nr_nodes]: out: 4 KiB data pages mapped per node
 *		(a 2 MiB THP counts 512)
 * @tables_local: out: per level, tables on the node that holds the
 *		majority of the data they map (children tables for upper
 *		levels: the vMitosis bottom-up vote)
 * @tables_remote: out: per level, tables elsewhere
 * @tables_empty: out: per level, tables mapping no present data
 * @leaf_huge:	out: leaf entries that are huge: [TIERMM_PT_PMD] 2 MiB,
 *		[TIERMM_PT_PUD] 1 GiB; other slots 0
 * @repl_ptr:	in, with TIERMM_PT_STAT_REPLICAS (API 3): struct
 *		tiermm_pt_stat_repl[repl_nr]: out: record s describes the replica
 *		of slot s (see below), zeroed when there is none; must be 0
 *		without the flag
 * @repl_count:	out, with TIERMM_PT_STAT_REPLICAS: the number of replicas
 *		(0: the process's page tables are not replicated)
 * @repl_nr:	in, with TIERMM_PT_STAT_REPLICAS: records at @repl_ptr, 1 to
 *		4096; -ENOSPC when a replica's slot is not below it, and the
 *		number needed written here (with @nr_nodes the only fields
 *		this failure writes); must be 0 without the flag
 * @reserved:	must be 0
 *
 * Everything counts only entries inside the range, and each table once.
 * Data pages are present leaves whose PFN is online memory (the zero page
 * included), swap and migration entries are not. Votes: a PTE table's data
 * pages, one per 4 KiB page; for an upper table, one per non-empty child
 * table (on the child table's node) and one per huge leaf (on its data's
 * node). A table is local when its node has at least as many votes as any.
 *
 * Replicas (kernels with page-table replication, tiermm's patch series):
 * tables_ptr, leaf_ptr, data_ptr and the per-level counts describe the
 * master tree (mm->pgd), the one the kernel edits first. The kernel keeps
 * one replica per slot of the process's replication mask: a slot is a NUMA
 * node, or with kernel.pgtable_replication_groups set (NUMA-oblivious VMs)
 * a group of CPUs. With TIERMM_PT_STAT_REPLICAS the module also walks each
 * replica's tree from its PGD, over the same range and VMAs, and counts its
 * tables per level and those that are local: on the slot's node, or for a
 * CPU group on a node of the group's CPUs. Where the kernel could not
 * allocate a replica table, the replica points at the master's table,
 * which is counted where it is. A module built without replication
 * support (no TIERMM_FEAT_PT_REPLICAS) zeroes the records and @repl_count.
 */
struct tiermm_pt_stat {
	__u32 argsz;
	__u32 flags;
	__s32 pid;
	__u32 nr_nodes;
	__u64 start;
	__u64 len;
	__u64 tables_ptr;
	__u64 leaf_ptr;
	__u64 data_ptr;
	__u64 tables_local[TIERMM_PT_NR_LEVELS];
	__u64 tables_remote[TIERMM_PT_NR_LEVELS];
	__u64 tables_empty[TIERMM_PT_NR_LEVELS];
	__u64 leaf_huge[TIERMM_PT_NR_LEVELS];
	__u64 repl_ptr;
	__u32 repl_count;
	__u32 repl_nr;
	__u64 reserved[2];
};

#define TIERMM_PT_STAT_SIZE_VER0	216

/* tiermm_pt_stat.flags (API 3): also walk the page-table replicas. */
#define TIERMM_PT_STAT_REPLICAS	_BITUL(0)

/* tiermm_pt_stat_repl.flags */
#define TIERMM_PT_REPLICA_PRESENT _BITUL(0)	/* the slot holds a replica */
#define TIERMM_PT_REPLICA_GROUP	_BITUL(1)	/* the slot is a CPU group */

/**
 * struct tiermm_pt_stat_repl - the page-table replica of one slot (PT_STAT)
 * @tables:	page-table pages of the replica's tree that map some of the
 *		range, per level (its PGD included)
 * @local:	of those, the ones on the slot's node (a CPU group: on a node
 *		of its CPUs)
 * @flags:	TIERMM_PT_REPLICA_* (0, and everything else 0, for a slot
 *		without a replica)
 * @pad0:	0
 */
struct tiermm_pt_stat_repl {
	__u64 tables[TIERMM_PT_NR_LEVELS];
	__u64 local[TIERMM_PT_NR_LEVELS];
	__u32 flags;
	__u32 pad0;
};

/**
 * struct tiermm_pt_dump - copy out the page tables of a range (TIERMM_CMD_PT_DUMP)
 * @argsz, @flags, @pid, @start, @len: as for struct tiermm_pt_stat
 * @pad0:	must be 0
 * @buf_ptr:	in: user buffer receiving struct tiermm_pt_dump_rec records
 * @buf_len:	in: its size in bytes: at least TIERMM_PT_NR_LEVELS + 1
 *		records of 512 entries (20640 bytes), else -EINVAL
 * @written:	out: bytes written
 * @next:	out: the address to pass as start to continue (the first
 *		address not dumped), or start + len when done
 * @reserved:	must be 0
 *
 * Tables are visited top-down, depth-first (a PGD, its first P4D/PUD table,
 * that one's first PMD table, ...). Only tables that map part of the range
 * are written; each is written whole (all 512 entries). A table that does not
 * fit ends the call with @next at the first address it maps. Every call
 * starts with the tables leading to its start address, so a call that
 * continues at @next repeats those of the previous call (same level and
 * pfn): the output of each call stands alone. The kernel half of the PGD
 * reads as 0; without CAP_SYS_ADMIN, as in /proc/PID/pagemap, the
 * physical-address bits of entries and @pfn read as 0. Of a process with
 * replicated page tables, only the master tree (mm->pgd) is dumped.
 */
struct tiermm_pt_dump {
	__u32 argsz;
	__u32 flags;
	__s32 pid;
	__u32 pad0;
	__u64 start;
	__u64 len;
	__u64 buf_ptr;
	__u64 buf_len;
	__u64 written;
	__u64 next;
	__u64 reserved[4];
};

#define TIERMM_PT_DUMP_SIZE_VER0	96

/**
 * struct tiermm_pt_dump_rec - one page-table page in a dump
 * @va:		first virtual address its entries map
 * @pfn:	page frame number of the table page
 * @level:	TIERMM_PT_* level of the table
 * @node:	NUMA node of the table page
 * @nr_entries:	entries that follow (512 on x86-64)
 * @pad0:	0
 * @entries:	the raw entries, as the MMU reads them
 */
struct tiermm_pt_dump_rec {
	__u64 va;
	__u64 pfn;
	__u32 level;
	__s32 node;
	__u32 nr_entries;
	__u32 pad0;
	__u64 entries[];
};

/* Target node value meaning "the node holding the majority of the data". */
#define TIERMM_NODE_AUTO	(-1)

/* Levels a migration moves (bits of tiermm_pt_migrate.levels). */
#define TIERMM_PT_MIGRATE_PTE	_BITUL(TIERMM_PT_PTE)
#define TIERMM_PT_MIGRATE_PMD	_BITUL(TIERMM_PT_PMD)
#define TIERMM_PT_MIGRATE_PUD	_BITUL(TIERMM_PT_PUD)
#define TIERMM_PT_MIGRATE_ALL	(TIERMM_PT_MIGRATE_PTE | \
				 TIERMM_PT_MIGRATE_PMD | \
				 TIERMM_PT_MIGRATE_PUD)

/*
 * Why tables were not moved: indexes of tiermm_pt_migrate.skipped. Each
 * table (a PTE table deposited for a THP included) is counted once per
 * call, under one reason or in moved[]:
 * - ALREADY: the table is on the target node (with TIERMM_NODE_AUTO: its
 *   current node has as many votes as any other);
 * - NO_DATA: TIERMM_NODE_AUTO and the table maps no present data (for a
 *   deposited table: its PMD table maps no THP), so there is no vote;
 * - NOMEM: no page for the copy on the target node (allocated on that
 *   node only, with __GFP_NORETRY, and charged to the process's memory
 *   cgroup, whose limit therefore counts too);
 * - HUGE: where a table could be there is a huge leaf (a 2 MiB THP or
 *   hugetlb page, a 1 GiB page), or a THP being migrated (a non-present
 *   PMD): one per such entry; or a PMD or PUD table whose span (1 GiB,
 *   512 GiB) includes a hugetlbfs VMA, whose tables may be shared;
 * - BUSY: the parent entry changed between choosing the table and taking
 *   the locks (a page fault under a per-VMA lock, khugepaged), or THPs
 *   were deposited meanwhile; or the rmap locks of the span could not all
 *   be taken: one stayed contended for 16 rounds, or the span has more
 *   anon_vma roots and files than the module holds at once (32 with
 *   lockdep, 4096 otherwise), and then every table chosen under that
 *   parent table counts here. Trying again later usually moves them.
 */
#define TIERMM_SKIP_ALREADY	0	/* already on the target node */
#define TIERMM_SKIP_NO_DATA	1	/* auto: maps no present data */
#define TIERMM_SKIP_NOMEM	2	/* no free page on the target node */
#define TIERMM_SKIP_HUGE	3	/* a huge leaf, not a table */
#define TIERMM_SKIP_BUSY	4	/* changed under us; try again */
#define TIERMM_SKIP_NR		8

/**
 * struct tiermm_pt_migrate - move page-table pages (TIERMM_CMD_PT_MIGRATE)
 * @argsz, @flags, @pid, @start, @len: as for struct tiermm_pt_stat
 * @node:	in: target node, or TIERMM_NODE_AUTO (bottom-up majority)
 * @levels:	in: TIERMM_PT_MIGRATE_* bits, at least one
 * @moved:	out: tables moved, per level
 * @skipped:	out: tables not moved, by TIERMM_SKIP_* reason (all levels);
 *		slots 5 to 7 are 0
 * @reserved:	must be 0
 *
 * A table is moved whole when it maps part of the range; with
 * TIERMM_NODE_AUTO it votes with everything it maps. PTE tables deposited
 * for THPs move and count with the PTE level. The PGD (and a folded P4D)
 * is never moved. Tables not moved are no error (see TIERMM_SKIP_*).
 *
 * Returns 0, or:
 * -EBUSY:	(API 3) the target's page tables are replicated (kernels
 *		with page-table replication): moving a master table would
 *		break its ring of replicas, which only the kernel's own paths
 *		may change. Disable replication first;
 * -EINVAL:	a bad argsz, flags, pad0, reserved field or range; levels
 *		empty or with other bits (the PGD's included); a node that
 *		does not exist or has no memory; a kernel thread;
 * -EOPNOTSUPP: the target's mm has MMU notifiers (KVM, an IOMMU sharing
 *		its page tables (SVA), HMM/ODP drivers): a secondary MMU may
 *		cache paging structures, and the invalidation calls a module
 *		would need are not exported. mm_has_notifiers() stays true
 *		until the mm is freed, so a process that ever registered one
 *		is refused until it exits or execs. The check is made each
 *		time mmap_lock is taken: a process that registers a notifier
 *		during the call may have had some tables moved already. Also
 *		in a Xen PV guest (page tables written by hypercalls), before
 *		anything is done;
 * -ESRCH, -EPERM: no such process (or exiting), not allowed (see above);
 * -ENOMEM:	no memory for the module's bookkeeping (a missing page for
 *		a table copy is TIERMM_SKIP_NOMEM, not an error);
 * -EINTR:	a fatal signal arrived while waiting for the target's locks;
 * -EFAULT:	the argument could not be read or written back.
 * On an error after work began, tables moved until then stay moved and
 * @moved/@skipped are not written: count again with PT_STAT.
 */
struct tiermm_pt_migrate {
	__u32 argsz;
	__u32 flags;
	__s32 pid;
	__s32 node;
	__u64 start;
	__u64 len;
	__u32 levels;
	__u32 pad0;
	__u64 moved[TIERMM_PT_NR_LEVELS];
	__u64 skipped[TIERMM_SKIP_NR];
	__u64 reserved[4];
};

#define TIERMM_PT_MIGRATE_SIZE_VER0	168

/*
 * tiermm_ab_scan.flags: TIERMM_SCAN_FLUSH flushes TLBs after clearing, so
 * the next scan sees new accesses; TIERMM_SCAN_COUNTS returns per-2 MiB
 * __u16 counts instead of a bitmap.
 */
#define TIERMM_SCAN_FLUSH	_BITUL(0)
#define TIERMM_SCAN_COUNTS	_BITUL(1)

/**
 * struct tiermm_ab_scan - test and clear accessed bits (TIERMM_CMD_AB_SCAN)
 * @argsz, @pid, @start, @len: as for struct tiermm_pt_stat
 * @flags:	in: TIERMM_SCAN_* bits
 * @max_pages:	in: stop after this many 4 KiB pages were examined (bounded
 *		work per call; 0: 262144 = 1 GiB); a page is examined when its
 *		leaf entry is (a THP: 512, never split across calls), address
 *		ranges without a PTE table or THP are passed over for free
 * @cursor:	in: where to start, page-aligned, in [start, start + len)
 *		(2 MiB aligned with TIERMM_SCAN_COUNTS, whose calls cover whole
 *		2 MiB regions); out: where the next call continues; start + len
 *		when the range is done
 * @out_ptr:	in: user buffer: without TIERMM_SCAN_COUNTS, a bitmap with
 *		one bit per 4 KiB page of [start, start + len) (bit i = page at
 *		start + i * 4096); with it, __u16 per 2 MiB region
 *		(entry i = region at start + i * 2 MiB, start 2 MiB aligned)
 *		holding the number of accessed 4 KiB pages (512 for an
 *		accessed THP). Only the part covered by this call is written
 *		(bits outside it keep their values). Bit i is bit i % 8 of
 *		byte i / 8.
 * @out_len:	in: its size in bytes; too small for the range is -EINVAL
 *		(bitmap: ceil(len / 4096 / 8) bytes; counts: 2 per region)
 * @scanned:	out: pages examined in this call
 * @accessed:	out: pages found accessed (and cleared) in this call
 * @pad0, @reserved: must be 0
 *
 * Only present 4 KiB entries and PMD-mapped THPs are scanned (a THP as a
 * whole, even if the range covers part of it); 1 GiB leaves are not.
 * Accessed bits kept by secondary MMUs (mmu notifiers) are not cleared.
 *
 * A process whose page tables are replicated (API 3 built against a
 * kernel with replication): an entry is accessed when the master or any
 * replica has its accessed bit set, and all of them are cleared, as the
 * kernel's ptep_test_and_clear_young() does.
 */
struct tiermm_ab_scan {
	__u32 argsz;
	__u32 flags;
	__s32 pid;
	__u32 pad0;
	__u64 start;
	__u64 len;
	__u64 max_pages;
	__u64 cursor;
	__u64 out_ptr;
	__u64 out_len;
	__u64 scanned;
	__u64 accessed;
	__u64 reserved[4];
};

#define TIERMM_AB_SCAN_SIZE_VER0	112

#define TIERMM_IOC_PT_STAT \
	_IOWR(TIERMM_IOC_MAGIC, TIERMM_CMD_PT_STAT, struct tiermm_pt_stat)
#define TIERMM_IOC_PT_DUMP \
	_IOWR(TIERMM_IOC_MAGIC, TIERMM_CMD_PT_DUMP, struct tiermm_pt_dump)
#define TIERMM_IOC_PT_MIGRATE \
	_IOWR(TIERMM_IOC_MAGIC, TIERMM_CMD_PT_MIGRATE, struct tiermm_pt_migrate)
#define TIERMM_IOC_AB_SCAN \
	_IOWR(TIERMM_IOC_MAGIC, TIERMM_CMD_AB_SCAN, struct tiermm_ab_scan)

#endif /* _UAPI_LINUX_TIERMM_H */
