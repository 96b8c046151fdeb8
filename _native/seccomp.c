/* seccomp.c — linux.seccomp -> BPF, in the runtime process, with libseccomp.
 *
 * Why in the parent: the container init must not allocate or parse anything between clone() and
 * execve(), and a profile like podman's (several hundred rules, several ABIs) takes libseccomp real
 * work to compile.  So Python drives these wrappers rule by rule (every error maps to a JSON path),
 * the program is exported with seccomp_export_bpf() into a memfd, and the init only hands the bytes
 * to seccomp(SECCOMP_SET_MODE_FILTER) (caps.c).  The load-time attributes of libseccomp (NNP,
 * TSYNC, LOG, SSB) are therefore irrelevant here: the matching SECCOMP_FILTER_FLAG_* values travel
 * in plan->seccomp_flags instead.
 */
#include "common.h"
#include <seccomp.h>
#include <linux/seccomp.h>
#include "cdef/seccomp.h"

int pyrt_sc_version(unsigned int *major, unsigned int *minor, unsigned int *micro)
{
    const struct scmp_version *v = seccomp_version();
    if (v == NULL)
        return -1;
    *major = v->major;
    *minor = v->minor;
    *micro = v->micro;
    return 0;
}

void *pyrt_sc_new(uint32_t def_action)
{
    scmp_filter_ctx ctx = seccomp_init(def_action);
    if (ctx == NULL)
        return NULL;
    /* A binary tree instead of a linear list of syscall checks: podman's profile allows ~370
     * syscalls, and every syscall of the container walks this program.  Older libseccomp
     * versions lack the attribute; the filter is then correct, only slower, so a failure
     * here is deliberately not fatal. */
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    return ctx;
}

void pyrt_sc_release(void *ctx)
{
    if (ctx != NULL)
        seccomp_release((scmp_filter_ctx)ctx);
}

int pyrt_sc_arch_add(void *ctx, uint32_t arch_token)
{
    int rc = seccomp_arch_add((scmp_filter_ctx)ctx, arch_token);
    /* The native ABI is in every new filter; listing it again in "architectures" is normal. */
    if (rc == -EEXIST)
        return 0;
    return rc;
}

uint32_t pyrt_sc_arch_resolve(const char *name)
{
    return seccomp_arch_resolve_name(name);
}

uint32_t pyrt_sc_arch_native(void)
{
    return seccomp_arch_native();
}

int pyrt_sc_syscall_resolve(const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);
    return nr == __NR_SCMP_ERROR ? PYRT_SC_NR_UNKNOWN : nr;
}

int pyrt_sc_rule_add(void *ctx, uint32_t action, int nr, const struct pyrt_sc_arg *args, unsigned int n_args)
{
    struct scmp_arg_cmp cmp[6];

    if (n_args > 6)
        return -EINVAL;
    for (unsigned int i = 0; i < n_args; i++) {
        if (args[i].index > 5 || args[i].op <= _SCMP_CMP_MIN || args[i].op >= _SCMP_CMP_MAX)
            return -EINVAL;
        cmp[i].arg = args[i].index;
        cmp[i].op = (enum scmp_compare)args[i].op;
        cmp[i].datum_a = args[i].value;
        cmp[i].datum_b = args[i].value_two;
    }
    return seccomp_rule_add_array((scmp_filter_ctx)ctx, action, nr, n_args, n_args ? cmp : NULL);
}

int pyrt_sc_export(void *ctx, int fd)
{
    return seccomp_export_bpf((const scmp_filter_ctx)ctx, fd);
}

/* seccomp(SET_MODE_FILTER, flags, NULL): the kernel validates flags before it copies the program,
 * so EFAULT means "these flags are known" and nothing gets installed. */
int pyrt_sc_kernel_flag(uint32_t flags)
{
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, NULL);
    if (rc == 0)
        return -EIO; /* cannot happen with a NULL program; never claim support on a surprise */
    if (errno == EFAULT)
        return 1;
    if (errno == EINVAL)
        return 0;
    return -errno;
}

int pyrt_sc_kernel_action(uint32_t action)
{
    uint32_t a = action;
    long rc = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &a);
    if (rc == 0)
        return 1;
    if (errno == EOPNOTSUPP)
        return 0;
    return -errno;
}
