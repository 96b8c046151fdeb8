/* cgroup_bpf.h — cgroup v2 device filter: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) built from a
 * rule list and attached to a cgroup directory.  Plain declarations only (read by cffi as a cdef). */

struct pyrt_dev_rule {
    int allow;          /* 1 = allow, 0 = deny */
    char type;          /* 'a', 'b' or 'c' */
    int64_t major;      /* -1 = any */
    int64_t minor;      /* -1 = any */
    unsigned access;    /* bit 1 = mknod, 2 = read, 4 = write (BPF_DEVCG_ACC_*) */
};

/* Build the filter for rules[0..n) (the last matching rule wins; no match = deny), load it, attach it
 * to cgroup_fd with BPF_F_ALLOW_MULTI and then detach every device program that was attached before,
 * so an update replaces the filter without a window where no filter applies.
 * Returns 0 or -errno with err filled (the verifier log is appended on a load failure). */
int pyrt_cgroup_set_devices(int cgroup_fd, const struct pyrt_dev_rule *rules, int n, char *err,
                            size_t errlen);

/* Number of device programs attached to cgroup_fd (>= 0), or -errno. */
int pyrt_cgroup_count_device_progs(int cgroup_fd);
