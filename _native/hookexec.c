/* hookexec.c — startContainer hooks: run inside the container (after pivot_root, before the user
 * program) with the state JSON on stdin, each bounded by its timeout.  The only place the child forks. */
#include "common.h"
#include "child.h"
#include <poll.h>
#include <sys/wait.h>
#include <time.h>

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int run_one(const struct pyrt_plan *p, const struct pyrt_hook *h, int idx, char *err, size_t errlen)
{
    int in[2], ers[2], status = 0, timed_out = 0;
    char tail[512];
    size_t tl = 0;
    long deadline = h->timeout > 0 ? now_ms() + h->timeout * 1000L : -1;
    pid_t pid;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(ers, O_CLOEXEC | O_NONBLOCK) < 0)
        return pyrt_fail(err, errlen, errno, "startContainer hook %s: pipe", h->path);
    pid = fork();
    if (pid < 0)
        return pyrt_fail(err, errlen, errno, "startContainer hook %s: fork", h->path);
    if (pid == 0) {
        if (dup2(in[0], 0) < 0 || dup2(ers[1], 2) < 0 || dup2(ers[1], 1) < 0)
            _exit(127);
        execve(h->path, h->argv, h->envp);
        dprintf(2, "exec %s: %s", h->path, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(ers[1]);
    if (p->state_len && write(in[1], p->state_buf, p->state_len) < 0 && errno != EPIPE) {
        /* a hook that does not read its stdin is fine */
    }
    close(in[1]);
    for (;;) {
        struct pollfd pf = { .fd = ers[0], .events = POLLIN };
        long left = deadline < 0 ? 100 : deadline - now_ms();
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (deadline >= 0 && left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            timed_out = 1;
            break;
        }
        if (poll(&pf, 1, left > 50 ? 50 : (int)left) > 0) {
            char buf[256];
            ssize_t n = read(ers[0], buf, sizeof buf);
            if (n > 0) {
                size_t k = (size_t)n;     /* keep the last bytes: k < sizeof tail */
                if (tl + k >= sizeof tail) {
                    size_t drop = tl + k - (sizeof tail - 1);
                    memmove(tail, tail + drop, tl - drop);
                    tl -= drop;
                }
                memcpy(tail + tl, buf, k);
                tl += k;
            }
        }
    }
    {
        ssize_t n = read(ers[0], tail + tl, sizeof tail - 1 - tl);
        if (n > 0)
            tl += (size_t)n;
    }
    close(ers[0]);
    tail[tl] = 0;
    while (tl && (tail[tl - 1] == '\n' || tail[tl - 1] == ' '))
        tail[--tl] = 0;
    if (timed_out)
        return pyrt_fail(err, errlen, 0, "startContainer hook #%d %s: timed out after %ds", idx, h->path, h->timeout);
    if (WIFSIGNALED(status))
        return pyrt_fail(err, errlen, 0, "startContainer hook #%d %s: killed by signal %d%s%s", idx, h->path,
                         WTERMSIG(status), tl ? ": " : "", tail);
    if (WEXITSTATUS(status) != 0)
        return pyrt_fail(err, errlen, 0, "startContainer hook #%d %s: exit status %d%s%s", idx, h->path,
                         WEXITSTATUS(status), tl ? ": " : "", tail);
    return 0;
}

int pyrt_run_start_hooks(const struct pyrt_plan *p, char *err, size_t errlen)
{
    int i, rc;
    for (i = 0; i < p->n_start_hooks; i++)
        if ((rc = run_one(p, &p->start_hooks[i], i, err, errlen)) < 0)
            return rc;
    return 0;
}
