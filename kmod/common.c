// SPDX-License-Identifier: GPL-2.0
/*
 * tiermm.ko: helpers shared by the commands: argument copy-in, target
 * lookup with move_pages(2)-like permission checks, range validation, the
 * node of a page and a TLB flush on every CPU.
 */

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/errno.h>
#include <linux/mm.h>
#include <linux/pid.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>

#include <asm/tlbflush.h>

#ifdef CONFIG_PGTABLE_REPLICATION
#include <linux/pgtable_repl.h>
#endif

#include "tiermm_internal.h"

int tiermm_copy_arg(void *karg, size_t ksize, size_t ver0,
		    void __user *uarg, u32 *argszp)
{
	u32 argsz;
	int ret;

	if (get_user(argsz, (u32 __user *)uarg))
		return -EFAULT;
	if (argsz < ver0 || argsz > PAGE_SIZE)
		return -EINVAL;

	/*
	 * Only the argsz read above is used from here on: another thread may
	 * change the field in memory between the two reads.
	 */
	ret = copy_struct_from_user(karg, ksize, uarg, argsz);
	if (ret == -E2BIG)	/* non-zero bytes beyond what we know */
		return -EINVAL;
	if (ret)
		return ret;
	*argszp = argsz;
	return 0;
}

/*
 * The checks of ptrace_may_access(task, PTRACE_MODE_READ_REALCREDS), which
 * is not exported to modules: the caller's real uid and gid match all of
 * the target's, or CAP_SYS_PTRACE in the target's user namespace; the mm
 * is dumpable, or CAP_SYS_PTRACE in its user namespace; and the
 * capability LSM's rule (cap_ptrace_access_check()): the target holds no
 * permitted capability the caller lacks, unless CAP_SYS_PTRACE. The other
 * LSMs' ptrace_access_check and task_movememory hooks cannot be called from
 * a module (security_ptrace_access_check() and security_task_movememory()
 * are not exported), so they are not consulted.
 *
 * TIERMM_ACCESS_MODIFY adds the rule move_pages(2) is documented with: the
 * same user (caller's real or effective uid equal to the target's real or
 * saved uid) or CAP_SYS_NICE.
 */
static int tiermm_may_access(struct task_struct *task, struct mm_struct *mm,
			     enum tiermm_access access)
{
	const struct cred *cred = current_cred();
	const struct cred *tcred;
	bool ok;

	if (same_thread_group(task, current) || mm == current->mm)
		return 0;

	tcred = get_task_cred(task);
	ok = uid_eq(cred->uid, tcred->euid) &&
	     uid_eq(cred->uid, tcred->suid) &&
	     uid_eq(cred->uid, tcred->uid) &&
	     gid_eq(cred->gid, tcred->egid) &&
	     gid_eq(cred->gid, tcred->sgid) &&
	     gid_eq(cred->gid, tcred->gid);
	if (ok && (cred->user_ns != tcred->user_ns ||
		   !cap_issubset(tcred->cap_permitted, cred->cap_permitted)))
		ok = false;
	if (!ok)
		ok = ns_capable(tcred->user_ns, CAP_SYS_PTRACE);
	if (ok && access == TIERMM_ACCESS_MODIFY &&
	    !uid_eq(cred->euid, tcred->suid) &&
	    !uid_eq(cred->euid, tcred->uid) &&
	    !uid_eq(cred->uid, tcred->suid) &&
	    !uid_eq(cred->uid, tcred->uid))
		ok = capable(CAP_SYS_NICE);
	put_cred(tcred);
	if (!ok)
		return -EPERM;

	/*
	 * Dumpability read after the credentials, as __ptrace_may_access()
	 * does; pairs with the barrier in commit_creds().
	 */
	smp_rmb();
	if (get_dumpable(mm) != SUID_DUMP_USER &&
	    !ns_capable(mm->user_ns, CAP_SYS_PTRACE))
		return -EPERM;
	return 0;
}

int tiermm_get_target_mm(pid_t pid, enum tiermm_access access,
			 struct mm_struct **mmp)
{
	struct task_struct *task;
	struct mm_struct *mm;
	int ret;

	if (pid < 0)
		return -ESRCH;
	if (pid == 0) {
		task = current;
		get_task_struct(task);
	} else {
		struct pid *p = find_get_pid(pid);

		if (!p)
			return -ESRCH;
		task = get_pid_task(p, PIDTYPE_PID);
		put_pid(p);
		if (!task)
			return -ESRCH;
	}

	if (task->flags & PF_KTHREAD) {
		ret = -EINVAL;
		goto out;
	}

	/*
	 * As mm_access(): exec_update_lock keeps the mm and credentials
	 * checked below the ones of the task until we hold our reference.
	 */
	ret = down_read_killable(&task->signal->exec_update_lock);
	if (ret)
		goto out;
	mm = get_task_mm(task);
	if (!mm) {
		ret = -ESRCH;	/* exiting, or a zombie */
	} else {
		ret = tiermm_may_access(task, mm, access);
		if (ret)
			mmput(mm);
		else
			*mmp = mm;
	}
	up_read(&task->signal->exec_update_lock);
out:
	put_task_struct(task);
	return ret;
}

int tiermm_check_range(u64 start, u64 len)
{
	if (!len || !PAGE_ALIGNED(start) || !PAGE_ALIGNED(len))
		return -EINVAL;
	/* start + len <= TASK_SIZE_MAX, written so that it cannot overflow */
	if (start > TASK_SIZE_MAX || len > TASK_SIZE_MAX - start)
		return -EINVAL;
	return 0;
}

bool tiermm_mm_replicated(struct mm_struct *mm)
{
#ifdef CONFIG_PGTABLE_REPLICATION
	return READ_ONCE(mm->pgtable_repl);
#else
	return false;
#endif
}

bool tiermm_clear_young(unsigned long *entry)
{
	bool young = false;

	if (READ_ONCE(*entry) & _PAGE_ACCESSED)
		young = test_and_clear_bit(_PAGE_BIT_ACCESSED, entry);
#ifdef CONFIG_PGTABLE_REPLICATION
	if (pgtable_repl_on())
		young |= pgtable_repl_clear_young(entry);
#endif
	return young;
}

int tiermm_page_node(struct page *page)
{
	return page_to_nid(page);
}

static void tiermm_flush_tlb_local(void *unused)
{
	__flush_tlb_all();
}

void tiermm_flush_all_tlbs(void)
{
	on_each_cpu(tiermm_flush_tlb_local, NULL, 1);
}
