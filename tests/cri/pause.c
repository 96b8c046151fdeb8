/* The CRI lane's pause image: a pod sandbox's first process, built with gcc -static.
 * It holds the pod's namespaces, reaps whatever is re-parented to it, and exits 0 on SIGTERM/SIGINT. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	if (signal(SIGTERM, stop) == SIG_ERR || signal(SIGINT, stop) == SIG_ERR || signal(SIGCHLD, reap) == SIG_ERR)
		return 1;
	for (;;)
		pause();
}
