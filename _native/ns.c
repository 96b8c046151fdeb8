/* ns.c — joining namespaces by fd, becoming root of the user namespace, hostname and domainname. */
#include "common.h"
#include "child.h"
#include <grp.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int pyrt_join_namespaces(const struct pyrt_plan *p, char *err, size_t errlen)
{
    int i;

    /* Python orders the list: the user namespace first, so the others are joined with its caps. */
    for (i = 0; i < p->n_join; i++) {
        if (setns(p->join[i].fd, p->join[i].nstype) < 0)
            return pyrt_fail(err, errlen, errno, "setns (namespace type 0x%x)", p->join[i].nstype);
        close(p->join[i].fd);
        if (p->join[i].nstype == CLONE_NEWUSER && syscall(SYS_setresgid, 0, 0, 0) < 0)
            return pyrt_fail(err, errlen, errno, "setresgid(0) in the joined user namespace");
        if (p->join[i].nstype == CLONE_NEWUSER && syscall(SYS_setresuid, 0, 0, 0) < 0)
            return pyrt_fail(err, errlen, errno, "setresuid(0) in the joined user namespace");
    }
    if ((p->clone_flags & CLONE_NEWUSER) && p->in_userns) {
        if (syscall(SYS_setresgid, 0, 0, 0) < 0)   /* raw: see caps.c, pyrt_switch_user */
            return pyrt_fail(err, errlen, errno, "setresgid(0) in the user namespace (is root mapped?)");
        if (syscall(SYS_setresuid, 0, 0, 0) < 0)
            return pyrt_fail(err, errlen, errno, "setresuid(0) in the user namespace (is root mapped?)");
    }
    return 0;
}

int pyrt_set_identity_names(const struct pyrt_plan *p, char *err, size_t errlen)
{
    if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
        return pyrt_fail(err, errlen, errno, "sethostname %s", p->hostname);
    if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0)
        return pyrt_fail(err, errlen, errno, "setdomainname %s", p->domainname);
    return 0;
}

/* A new network namespace starts with lo down; runc brings it up, and so do we. */
int pyrt_loopback_up(char *err, size_t errlen)
{
    struct ifreq ifr;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (s < 0)
        return pyrt_fail(err, errlen, errno, "bring lo up: socket");
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        int e = errno;
        close(s);
        return pyrt_fail(err, errlen, e, "bring lo up: SIOCGIFFLAGS");
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
        int e = errno;
        close(s);
        return pyrt_fail(err, errlen, e, "bring lo up: SIOCSIFFLAGS");
    }
    close(s);
    return 0;
}
