// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shim_forkexec: a program that forks and executes in every way the shim
 * intercepts or must survive, and prints what happened in a fixed order
 * (each child is waited for before the next starts), so that the output
 * and the exit status (3) can be compared with and without
 * libtiermm-preload.so:
 *   fork + _exit; fork + execv of itself; fork + execlp(echo); fork +
 *   execle with an environment; vfork + execve; system(); popen();
 *   posix_spawn(); fork without exec (the child maps memory and goes on);
 *   fork while two threads map and unmap memory; _Fork + execv; an exec
 *   that fails.
 * A child started as `shim_forkexec child N` reports whether the shim is
 * mapped in it and still in its LD_PRELOAD, then exits with status N.
 * `shim_forkexec daemon FILE` calls daemon(3) and, in the daemon, writes
 * its pid to FILE, lives 0.3 s and exits. `shim_forkexec forks N` forks N
 * children one after the other, the first at once (while the shim's
 * thread may still be starting), each of which exit()s at once (running
 * the destructors, the shim's too); a child still there after 20 s is
 * reported and killed (status 1).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static bool shim_mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "libtiermm-preload.so") != NULL;
	fclose(f);
	return found;
}

static int child(const char *status)
{
	const char *lp = getenv("LD_PRELOAD");

	printf("child: shim mapped %s, in LD_PRELOAD %s\n", shim_mapped() ? "yes" : "no",
	       lp && strstr(lp, "libtiermm-preload.so") ? "yes" : "no");
	return atoi(status);
}

static void report(const char *what, int st)
{
	if (WIFEXITED(st))
		printf("%s: status %d\n", what, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("%s: signal %d\n", what, WTERMSIG(st));
	else
		printf("%s: ?\n", what);
	fflush(stdout);
}

static int wait_for(pid_t pid)
{
	int st = -1;

	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

/* forks N: see the top. */
static int forks(int n)
{
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		int st = -1, t;

		if (pid < 0)
			return 1;
		if (!pid)
			exit(0);
		for (t = 0; t < 2000 && waitpid(pid, &st, WNOHANG) != pid; t++)
			usleep(10000);
		if (t == 2000) {
			printf("fork %d: child %d still running after 20 s\n", i, (int)pid);
			kill(pid, SIGKILL);
			wait_for(pid);
			return 1;
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			report("forks: child", st);
			return 1;
		}
	}
	printf("forks: %d children exited\n", n);
	return 0;
}

static volatile int stop;

static void *mapper(void *arg)
{
	(void)arg;
	while (!stop) {
		void *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p != MAP_FAILED) {
			memset(p, 1, 65536);
			munmap(p, 65536);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	char self[4096];
	ssize_t n;
	pid_t pid;
	int st;

	if (argc == 3 && !strcmp(argv[1], "child"))
		return child(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "daemon")) {
		FILE *f;

		if (daemon(1, 1))
			return 1;
		f = fopen(argv[2], "w");
		if (!f)
			return 1;
		fprintf(f, "%d\n", (int)getpid());
		if (fclose(f))
			return 1;
		/* Live a little: the runtime's statistics need a moment. */
		usleep(300000);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "forks"))
		return forks(atoi(argv[2]));
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* 1. fork + _exit */
	pid = fork();
	if (!pid)
		_exit(5);
	report("fork+_exit", wait_for(pid));

	/* 2. fork + execv of ourselves */
	pid = fork();
	if (!pid) {
		execv(self, (char *[]){ self, "child", "6", NULL });
		_exit(127);
	}
	report("fork+execv", wait_for(pid));

	/* 3. fork + execlp, searched in PATH */
	pid = fork();
	if (!pid) {
		execlp("echo", "echo", "hello from execlp", (char *)NULL);
		_exit(127);
	}
	report("fork+execlp", wait_for(pid));

	/* 4. fork + execle with the environment */
	pid = fork();
	if (!pid) {
		execle(self, self, "child", "7", (char *)NULL, environ);
		_exit(127);
	}
	report("fork+execle", wait_for(pid));

	/* 5. vfork + execve */
	pid = vfork();
	if (!pid) {
		execve(self, (char *[]){ self, "child", "8", NULL }, environ);
		_exit(127);
	}
	report("vfork+execve", wait_for(pid));

	/* 6. system() */
	st = system("echo from system; exit 9");
	report("system", st);

	/* 7. popen() */
	{
		FILE *p = popen("echo from popen", "r");
		char line[128] = "";

		if (p) {
			if (fgets(line, sizeof(line), p))
				printf("popen read: %s", line);
			report("popen", pclose(p));
		}
	}

	/* 8. posix_spawn() */
	if (!posix_spawn(&pid, self, NULL, NULL, (char *[]){ self, "child", "10", NULL }, environ))
		report("posix_spawn", wait_for(pid));

	/* 9. fork without exec: the child maps, writes, unmaps and reports. */
	pid = fork();
	if (!pid) {
		size_t len = 4 << 20;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *q;

		if (p == MAP_FAILED)
			_exit(1);
		memset(p, 7, len);
		q = mremap(p, len, 2 * len, MREMAP_MAYMOVE);
		if (q == MAP_FAILED || q[len - 1] != 7)
			_exit(1);
		munmap(q, 2 * len);
		printf("forked child without exec: mapped, moved and unmapped 4 MiB\n");
		fflush(stdout);
		_exit(11);
	}
	report("fork", wait_for(pid));

	/* 10. fork while other threads map and unmap: no deadlock in the child. */
	{
		pthread_t t[2];

		for (int i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, mapper, NULL);
		for (int i = 0; i < 20; i++) {
			pid = fork();
			if (!pid) {
				void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
					       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

				_exit(p == MAP_FAILED || munmap(p, 8192) ? 1 : 12);
			}
			st = wait_for(pid);
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 12)
				break;
		}
		stop = 1;
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		report("fork x20 with threads mapping", st);
	}

	/* 11. _Fork (no fork handlers) + execv */
	pid = _Fork();
	if (!pid) {
		execv(self, (char *[]){ self, "child", "13", NULL });
		_exit(127);
	}
	report("_Fork+execv", wait_for(pid));

	/* 12. An exec that fails: the program goes on. */
	errno = 0;
	execv("/nonexistent/program", (char *[]){ "x", NULL });
	printf("failed exec: %s\n", strerror(errno));
	return 3;
}
