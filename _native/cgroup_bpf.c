/* cgroup_bpf.c — the cgroup v2 device controller is an eBPF program: build, load, attach, replace.
 *
 * The program reads struct bpf_cgroup_dev_ctx { access_type = access << 16 | type; major; minor } and
 * walks the rules from last to first (the last matching rule wins, as with runc's device rules); the
 * first match returns its verdict, no match returns 0 (deny).  Python has already validated the rules.
 */
#include "common.h"
#include "cdef/cgroup_bpf.h"
#include <linux/bpf.h>

#define MAX_INSNS 4096

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    struct bpf_insn i;
    memset(&i, 0, sizeof(i));
    i.code = code;
    i.dst_reg = dst;
    i.src_reg = src;
    i.off = off;
    i.imm = imm;
    return i;
}

/* Registers: r2 = device type, r3 = requested access, r4 = major, r5 = minor, r1 = scratch. */
static int rule_len(const struct pyrt_dev_rule *r)
{
    int len = 2;                           /* r0 = verdict; exit */
    if (r->type != 'a') len += 1;          /* type check */
    if ((r->access & 7) != 7) len += 3;    /* r1 = r3; r1 &= ~access; if r1 != 0 skip */
    if (r->major >= 0) len += 1;
    if (r->minor >= 0) len += 1;
    return len;
}

static int build(const struct pyrt_dev_rule *rules, int n, struct bpf_insn *p, int cap)
{
    int k = 0;
#define EMIT(x) do { struct bpf_insn t_ = (x); if (k >= cap) return -E2BIG; p[k++] = t_; } while (0)
    EMIT(insn(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, 0, 0));   /* access_type */
    EMIT(insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0));
    EMIT(insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff));     /* type */
    EMIT(insn(BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16));         /* access */
    EMIT(insn(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_4, BPF_REG_1, 4, 0));   /* major */
    EMIT(insn(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_5, BPF_REG_1, 8, 0));   /* minor */
    for (int i = n - 1; i >= 0; i--) {
        const struct pyrt_dev_rule *r = &rules[i];
        int len = rule_len(r), start = k;
        /* a jump at index j that skips to the end of this block has off = start + len - j - 1 */
#define SKIP (int16_t)(start + len - k - 1)
        if (r->type != 'a') {
            int t = r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
            EMIT(insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, SKIP, t));
        }
        if ((r->access & 7) != 7) {
            EMIT(insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0));
            EMIT(insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_1, 0, 0, (int32_t)(~r->access & 7)));
            EMIT(insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_1, 0, SKIP, 0));
        }
        if (r->major >= 0)
            EMIT(insn(BPF_JMP32 | BPF_JNE | BPF_K, BPF_REG_4, 0, SKIP, (int32_t)(uint32_t)r->major));
        if (r->minor >= 0)
            EMIT(insn(BPF_JMP32 | BPF_JNE | BPF_K, BPF_REG_5, 0, SKIP, (int32_t)(uint32_t)r->minor));
        EMIT(insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, r->allow ? 1 : 0));
        EMIT(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
#undef SKIP
        if (k - start != len)
            return -EINVAL;
        if (len == 2)   /* matches every device: earlier rules and the default are unreachable, and
                         * the verifier rejects unreachable instructions */
            return k;
    }
    EMIT(insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0));
    EMIT(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
#undef EMIT
    return k;
}

/* ids of the device programs attached to cgroup_fd; returns the count or -errno. */
static int query(int cgroup_fd, uint32_t *ids, uint32_t cap)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.query.target_fd = (uint32_t)cgroup_fd;
    a.query.attach_type = BPF_CGROUP_DEVICE;
    a.query.prog_ids = (uint64_t)(uintptr_t)ids;
    a.query.prog_cnt = cap;
    if (sys_bpf(BPF_PROG_QUERY, &a) < 0)
        return -errno;
    return (int)a.query.prog_cnt;
}

int pyrt_cgroup_count_device_progs(int cgroup_fd)
{
    uint32_t ids[64];
    return query(cgroup_fd, ids, 64);
}

int pyrt_cgroup_set_devices(int cgroup_fd, const struct pyrt_dev_rule *rules, int n, char *err,
                            size_t errlen)
{
    static struct bpf_insn prog[MAX_INSNS];
    static char vlog[16384];
    uint32_t old[64];
    union bpf_attr a;
    int len, pfd, nold, rc = 0;

    if (n < 0 || n > 256)
        return pyrt_fail(err, errlen, EINVAL, "cgroup devices: too many rules (%d, at most 256)", n);
    len = build(rules, n, prog, MAX_INSNS);
    if (len < 0)
        return pyrt_fail(err, errlen, -len, "cgroup devices: building the filter");
    nold = query(cgroup_fd, old, 64);
    if (nold < 0)
        return pyrt_fail(err, errlen, -nold, "cgroup devices: BPF_PROG_QUERY");

    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = (uint32_t)len;
    a.license = (uint64_t)(uintptr_t)"Apache-2.0";
    pfd = sys_bpf(BPF_PROG_LOAD, &a);
    if (pfd < 0 && errno != EPERM) {
        /* load again with the verifier log to say why */
        int e = errno;
        vlog[0] = 0;
        a.log_buf = (uint64_t)(uintptr_t)vlog;
        a.log_size = sizeof(vlog);
        a.log_level = 1;
        pfd = sys_bpf(BPF_PROG_LOAD, &a);
        if (pfd < 0)
            return pyrt_fail(err, errlen, e, "cgroup devices: BPF_PROG_LOAD: %.1000s", vlog);
    }
    if (pfd < 0)
        return pyrt_fail(err, errlen, errno, "cgroup devices: BPF_PROG_LOAD");

    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)cgroup_fd;
    a.attach_bpf_fd = (uint32_t)pfd;
    a.attach_type = BPF_CGROUP_DEVICE;
    a.attach_flags = BPF_F_ALLOW_MULTI;
    if (sys_bpf(BPF_PROG_ATTACH, &a) < 0) {
        rc = pyrt_fail(err, errlen, errno, "cgroup devices: BPF_PROG_ATTACH");
        close(pfd);
        return rc;
    }
    close(pfd);   /* the attachment holds its own reference */

    /* the new filter is in place: detach the ones it replaces */
    for (int i = 0; i < nold && i < 64; i++) {
        union bpf_attr g;
        int ofd;
        memset(&g, 0, sizeof(g));
        g.prog_id = old[i];
        ofd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &g);
        if (ofd < 0) {
            if (errno == ENOENT)
                continue;
            return pyrt_fail(err, errlen, errno, "cgroup devices: BPF_PROG_GET_FD_BY_ID %u", old[i]);
        }
        memset(&a, 0, sizeof(a));
        a.target_fd = (uint32_t)cgroup_fd;
        a.attach_bpf_fd = (uint32_t)ofd;
        a.attach_type = BPF_CGROUP_DEVICE;
        if (sys_bpf(BPF_PROG_DETACH, &a) < 0 && errno != ENOENT) {
            rc = pyrt_fail(err, errlen, errno, "cgroup devices: BPF_PROG_DETACH %u", old[i]);
            close(ofd);
            return rc;
        }
        close(ofd);
    }
    return 0;
}
