/* tty.c — process.terminal: a pty made inside the container (its devpts), the master sent to the
 * console socket with SCM_RIGHTS (as runc does), the slave made the controlling terminal and stdio. */
#include "common.h"
#include "child.h"
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <termios.h>

int pyrt_setup_console(const struct pyrt_plan *p, char *err, size_t errlen)
{
    int master, slave, unlock = 0, ptn = -1;
    char name[32];

    if (p->console_fd < 0)
        return pyrt_fail(err, errlen, EINVAL, "process.terminal is set but no console socket was given");
    master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return pyrt_fail(err, errlen, errno, "open /dev/ptmx");
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &ptn) < 0)
        return pyrt_fail(err, errlen, errno, "unlock pty");
    slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0)
        return pyrt_fail(err, errlen, errno, "open pty peer");
    snprintf(name, sizeof name, "/dev/pts/%d", ptn);
    /* The message carries the pty's name, the fd rides as SCM_RIGHTS (what runc's clients expect). */
    {
        struct iovec iov = { name, strlen(name) };
        union { struct cmsghdr a; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                             .msg_controllen = sizeof ctl.buf };
        struct cmsghdr *c;
        memset(&ctl, 0, sizeof ctl);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &master, sizeof(int));
        if (sendmsg(p->console_fd, &mh, MSG_NOSIGNAL) < 0)
            return pyrt_fail(err, errlen, errno, "send pty master to the console socket");
    }
    close(master);
    close(p->console_fd);
    if (p->console_rows || p->console_cols) {
        /* process.consoleSize: the size the program sees first (a later resize by the caller wins) */
        struct winsize ws;
        memset(&ws, 0, sizeof ws);
        ws.ws_row = (unsigned short)p->console_rows;
        ws.ws_col = (unsigned short)p->console_cols;
        if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
            return pyrt_fail(err, errlen, errno, "set the terminal size (process.consoleSize)");
    }
    if (fchown(slave, p->uid, (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM)
        return pyrt_fail(err, errlen, errno, "chown %s", name);
    if (getsid(0) != getpid() && setsid() < 0)
        return pyrt_fail(err, errlen, errno, "setsid");
    if (ioctl(slave, TIOCSCTTY, 0) < 0)
        return pyrt_fail(err, errlen, errno, "make %s the controlling terminal", name);
    if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
        return pyrt_fail(err, errlen, errno, "dup2 %s onto stdio", name);
    if (slave > 2)
        close(slave);
    return 0;
}
