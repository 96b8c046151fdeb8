/* util.c — error text and sync-socket messages shared by every step of the child; clone as fork. */
#include "common.h"
#include "child.h"
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/uio.h>

int pyrt_fail(char *err, size_t errlen, int errnum, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (errnum > 0 && n >= 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - n, ": %s", strerror(errnum));
    /* runc's messages use lower-case strerror text ("no such file or directory"); clients match on it. */
    if (errnum > 0 && n >= 0 && (size_t)n + 2 < errlen && err[n + 2] >= 'A' && err[n + 2] <= 'Z')
        err[n + 2] = (char)(err[n + 2] - 'A' + 'a');
    return errnum > 0 ? -errnum : -EINVAL;
}

int pyrt_send_msg(int fd, uint32_t type, int32_t errnum, const void *payload, uint32_t len, int pass_fd)
{
    struct pyrt_msg hdr = { .type = type, .err = errnum, .len = len, .pad = 0 };
    struct iovec iov[2] = { { &hdr, sizeof hdr }, { (void *)payload, len } };
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
    ssize_t n;

    if (pass_fd >= 0) {
        struct cmsghdr *c;
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof ctl.buf;
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    do
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

int pyrt_recv_msg(int fd, struct pyrt_msg *hdr, char *payload, uint32_t cap)
{
    struct iovec iov[2] = { { hdr, sizeof *hdr }, { payload, cap } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = payload ? 2 : 1 };
    ssize_t n;

    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n < (ssize_t)sizeof *hdr)
        return -EPIPE;            /* the other side went away */
    if (mh.msg_flags & MSG_TRUNC)
        return -EMSGSIZE;
    return (int)(n - sizeof *hdr);
}

/* Report an error to whoever waits (the parent over the sync socket, else stderr) and exit. */
void pyrt_child_die(int fd, int errnum, const char *text)
{
    if (fd < 0 || pyrt_send_msg(fd, PYRT_MSG_ERROR, errnum, text, (uint32_t)strlen(text), -1) < 0) {
        ssize_t w = write(2, text, strlen(text));
        w += write(2, "\n", 1);
        (void)w;
    }
    _exit(1);
}

/* clone(2) like fork, with namespace or CLONE_PARENT flags (no new stack, so the child returns here
 * too).  The argument order is per architecture: s390x takes the stack first and the flags second. */
long pyrt_clone(unsigned long flags)
{
#if defined(__s390x__)
    return syscall(SYS_clone, 0UL, flags, NULL, NULL, 0UL);
#else
    return syscall(SYS_clone, flags, NULL, NULL, NULL, 0UL);
#endif
}
