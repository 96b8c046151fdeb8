/* pyrt.h — the plan (Python -> C) and the sync messages (container init <-> runtime).
 *
 * This header is read twice: by the C compiler (after the system headers) and, with the '#' lines
 * stripped, by cffi as its cdef.  So it holds only plain declarations: no includes, no macros with
 * expressions, no inline code.
 *
 * Python fills one `struct pyrt_plan` (every string and array allocated with ffi.new and kept alive
 * by the caller) and calls pyrt_spawn().  The clone()d child gets a copy of that memory, so the child
 * reads the plan without allocating anything.
 *
 * Sync protocol (one SOCK_SEQPACKET socketpair; each message is a struct pyrt_msg header followed by
 * `len` bytes of payload):
 *
 *  | # | sender | type                | when                                   | receiver does                              |
 *  |---|--------|---------------------|----------------------------------------|--------------------------------------------|
 *  | 1 | parent | PYRT_MSG_GO         | after uid/gid maps, cgroup, netdevices | child proceeds to mounts                   |
 *  | 2 | child  | PYRT_MSG_HOOKS      | mounts done, before pivot_root         | parent runs prestart, createRuntime and    |
 *  |   |        |                     | (only if plan->sync_hooks)             | createContainer hooks, then sends #3       |
 *  | 3 | parent | PYRT_MSG_GO         | payload: state JSON (for startContainer)| child copies it to plan->state_buf        |
 *  | 4 | child  | PYRT_MSG_SECCOMP_FD | notify filter loaded (SCM_RIGHTS fd)   | parent sends fd + state to listenerPath    |
 *  | c | child  | PYRT_MSG_CONSOLE    | pty master sent (only if console_wait) | parent sizes the pty, then sends GO       |
 *  | p | child  | PYRT_MSG_PID        | only with a pid namespace to join      | parent reaps the sender (the intermediate  |
 *  |   |        |                     | (plan->pidns_fd): the intermediate     | process), and from now on talks to and     |
 *  |   |        |                     | forked the final process into it;      | tracks the pid in the payload (int32,      |
 *  |   |        |                     | exec: after joining the mount ns,      | the runtime's pid namespace)               |
 *  |   |        |                     | create: after pivot_root and masks     |                                            |
 *  | 5 | child  | PYRT_MSG_CREATED    | all set up, about to wait on exec.sock | parent writes state.json, pid file, exits  |
 *  |   |        |                     | (exec mode: about to execve)           |                                            |
 *  | * | child  | PYRT_MSG_ERROR      | any failure; err=errno, payload=text   | parent raises RuntimeFailure, cleans up    |
 *
 * In create mode #5 is sent by the sealed trampoline the init has become (mode "pyruntime-init",
 * _native/trampoline/trampoline.c), which then blocks in accept() on exec.sock (plan->fifo_fd) until
 * `start` connects and sends GO, runs the startContainer hooks, loads seccomp (no_new_privs; any
 * other filter was loaded before #5) and execve()s; start reads EOF (exec'd, the connection is
 * CLOEXEC) or an error text.
 */

enum {
    PYRT_MSG_GO = 1,
    PYRT_MSG_ERROR = 2,
    PYRT_MSG_HOOKS = 3,
    PYRT_MSG_SECCOMP_FD = 4,
    PYRT_MSG_CREATED = 5,
    PYRT_MSG_CONSOLE = 6,
    PYRT_MSG_PID = 7,
};

enum {
    PYRT_MODE_CREATE = 0,   /* new container init: namespaces, rootfs, pivot_root, waits on exec.sock */
    PYRT_MODE_EXEC = 1,     /* join an existing container: setns everything, no rootfs work */
};

enum {
    PYRT_MOUNT_PLAIN = 0,   /* mount(source, dest, fstype, flags, data) */
    PYRT_MOUNT_BIND = 1,    /* bind mount of a host path (source), then remount for flags */
};

enum {
    PYRT_ERR_MAX = 4096,    /* longest error text sent back (and the size of every error buffer) */
    PYRT_STATE_MAX = 1048576, /* room for the state JSON of msg #3 (plan->state_buf) */
};

struct pyrt_msg {
    uint32_t type;
    int32_t err;            /* errno for PYRT_MSG_ERROR */
    uint32_t len;           /* payload bytes that follow */
    uint32_t pad;
};

struct pyrt_mount {
    const char *source;     /* absolute host path for binds; fs source otherwise */
    const char *dest;       /* absolute path inside the rootfs (resolved inside it, never outside) */
    const char *fstype;
    const char *data;       /* filesystem options ("mode=755,size=65536k"), or NULL */
    unsigned long flags;    /* MS_* flags (MS_RDONLY, MS_NOSUID, ..., MS_REC for rbind) */
    unsigned long propagation; /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC), 0 = leave */
    int kind;               /* PYRT_MOUNT_* */
    int dest_is_file;       /* create the destination as an empty file (bind of a non-directory) */
    uint64_t attr_set;      /* MOUNT_ATTR_* set on this mount and all below it (rro, rnosuid, ...) */
    uint64_t attr_clr;      /* MOUNT_ATTR_* cleared likewise (rrw, rsuid, ...) */
    int idmap;              /* 1 idmap, 2 ridmap: attach tree_fd instead of a bind mount, else 0 */
    int userns_fd;          /* the user namespace holding the mapping (pyrt_idmap_userns), if idmap */
    int tree_fd;            /* idmap: the detached, id-mapped clone of source (pyrt_idmapped_tree) */
    int tmpcopyup;          /* tmpfs: copy what the destination held into it */
};

struct pyrt_device {
    const char *path;       /* absolute path inside the rootfs */
    uint32_t mode;          /* S_IFCHR/S_IFBLK/S_IFIFO | permission bits */
    uint32_t major, minor;
    uint32_t uid, gid;
    const char *host_path;  /* bind this host node instead of mknod (user namespaces), or NULL */
};

struct pyrt_rlimit {
    int resource;
    uint64_t soft, hard;
};

struct pyrt_nsjoin {
    int fd;                 /* opened by Python (e.g. /proc/PID/ns/net), CLOEXEC */
    int nstype;             /* CLONE_NEW* */
};

struct pyrt_hook {
    const char *path;
    char **argv;            /* NULL-terminated */
    char **envp;            /* NULL-terminated */
    int timeout;            /* seconds, 0 = none */
};

struct pyrt_plan {
    int mode;                       /* PYRT_MODE_* */
    unsigned long clone_flags;      /* CLONE_NEW* created at clone (never CLONE_NEWCGROUP/NEWTIME) */
    int unshare_cgroupns;           /* unshare(CLONE_NEWCGROUP) once inside the container's cgroup */
    struct pyrt_nsjoin *join;       /* namespaces to setns() in the child, user namespace first */
    int n_join;
    int pidns_fd;                   /* pid namespace to create the child in (setns before clone), -1 */
    int timens_fd;                  /* time namespace likewise, -1 */
    int cgroup_fd;                  /* cgroup v2 dir for CLONE_INTO_CGROUP, -1 */
    int *cgroup_tasks;              /* cgroup v1 `tasks` files (O_WRONLY) the child writes "0" into, first
                                       thing: it joins them itself (see spawn.c join_cgroups_v1) */
    int n_cgroup_tasks;
    int in_userns;                  /* child becomes uid/gid 0 of its (new or joined) user namespace */

    /* rootfs (create mode) */
    const char *rootfs;             /* absolute host path */
    int rootfs_readonly;
    unsigned long rootfs_propagation; /* linux.rootfsPropagation: applied to / before the rootfs bind and
                                         again to the new / after pivot_root (runc); 0 = MS_SLAVE|MS_REC */
    int no_pivot;
    struct pyrt_mount *mounts;
    int n_mounts;
    struct pyrt_device *devices;
    int n_devices;
    int setup_dev;                  /* /dev is a fresh mount: add /dev/ptmx, fd, stdin... symlinks */
    const char **masked;
    int n_masked;
    const char **readonly;
    int n_readonly;
    const char *hostname;           /* NULL = leave */
    const char *domainname;
    const char **sysctl_keys;       /* "net.ipv4.ip_forward" */
    const char **sysctl_values;
    int n_sysctl;

    /* process */
    char **argv;                    /* NULL-terminated */
    char **envp;
    const char *cwd;
    const char *path_env;           /* PATH used to look up argv[0] (from envp), or NULL */
    uint32_t uid, gid;
    uint32_t *groups;
    int n_groups;
    int set_groups;                 /* call setgroups(n_groups, groups) */
    int umask;                      /* -1 = leave */
    struct pyrt_rlimit *rlimits;
    int n_rlimits;
    int oom_score_adj;
    int set_oom_score_adj;
    int set_caps;                   /* apply the five sets below */
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    int cap_last;                   /* /proc/sys/kernel/cap_last_cap */
    int no_new_privs;

    /* seccomp: a BPF program compiled in the parent (struct sock_filter[seccomp_len]) */
    void *seccomp_prog;
    uint32_t seccomp_len;
    uint32_t seccomp_flags;         /* SECCOMP_FILTER_FLAG_* */
    int seccomp_notify;             /* listener fd goes to the parent (PYRT_MSG_SECCOMP_FD) */

    /* process attributes applied by procattrs.c before the user switch (-1 / NULL = leave) */
    long personality;
    int sched_policy;               /* -1 = leave */
    int sched_priority;
    int sched_nice;
    uint64_t sched_flags;
    uint64_t sched_runtime, sched_deadline, sched_period;
    int ioprio;                     /* encoded IOPRIO_PRIO_VALUE, -1 = leave */
    const char *cpu_affinity;       /* "0-3,7" for the final process, NULL = leave */
    const char *apparmor_profile;
    const char *selinux_label;
    const char *timens_offsets;     /* contents for /proc/self/timens_offsets, or NULL */

    /* stdio, terminal, fds */
    int terminal;                   /* create a pty; master goes to console_fd */
    int console_fd;                 /* connected unix socket for the pty master, -1 */
    int sync_fd;                    /* child's end of the sync socket (set by pyrt_spawn) */
    int fifo_fd;                    /* exec.sock: the listening socket `start` connects to (create), -1 */
    int preserve_fds;               /* fds 3 .. 3+preserve_fds-1 survive into the container */
    int sync_hooks;                 /* send PYRT_MSG_HOOKS before pivot_root and wait */
    struct pyrt_hook *start_hooks;  /* startContainer hooks, run in the container before execve */
    int n_start_hooks;
    char *state_buf;                /* receives the state JSON with msg #3 */
    uint32_t state_cap;
    uint32_t state_len;
    int pdeathsig;                  /* 0 = none */
    int trampoline_fd;              /* sealed memfd of the exec trampoline (set by pyrt_spawn), -1 */
    const char *session_keyring;    /* join a new session keyring of this name (runc), NULL = keep */
    int console_wait;               /* after sending the pty master: PYRT_MSG_CONSOLE, wait for GO */
    int mempolicy_mode;             /* set_mempolicy mode | flags (linux.memoryPolicy), -1 = leave */
    uint64_t mempolicy_nodes[16];   /* nodemask, 1024 nodes */
    unsigned long mempolicy_maxnode;
    int stdio_fds[3];               /* dup2 onto 0, 1, 2 first thing (pipes the runtime relays), -1 = inherit */

    /* fields added for one engine (issue 11) */
    int home_slot;                  /* envp[home_slot] = home_env ("HOME=" from /etc/passwd), -1 = env has HOME */
    char home_env[4104];
    int create_cwd;                 /* create process.cwd inside the rootfs if missing (0755, as runc) */
    int no_mountns;                 /* no mount namespace: chroot into the rootfs, mount nothing */
    uint32_t console_rows, console_cols; /* process.consoleSize: the pty's initial size, 0 = leave */
    uint64_t cap_hold;              /* set by the child: caps kept in permitted+effective after the user
                                       switch until execve recomputes them (CAP_SYS_ADMIN to load a
                                       seccomp filter without no_new_privs) */
    int userns_dumpable;            /* unprivileged caller, new user ns: stay dumpable until GO so the
                                       parent (or newuidmap) may write the maps; non-dumpable after */
};

/* Clone the container process and run the plan in it.  Returns the child's pid (> 0) and stores the
 * parent's end of the sync socket in *parent_fd, or returns -errno with `err` filled. */
int pyrt_spawn(struct pyrt_plan *plan, int *parent_fd, char *err, size_t errlen);

/* Parent side of idmap/ridmap: an fd of a new user namespace with these uid_map/gid_map contents
 * ("containerID hostID size" lines), or -errno with `err` filled. */
int pyrt_idmap_userns(const char *uid_map, const char *gid_map, char *err, size_t errlen);

/* Parent side of idmap/ridmap: a detached clone of `source` (recursive when `rec_clone`) with
 * MOUNT_ATTR_IDMAP from `userns_fd` (on every mount of it when `rec_attr`).  Made by the runtime in
 * the host's user namespace: id-mapping needs privilege over the filesystem, which the container's
 * init lacks inside a user namespace.  Returns the tree fd or -errno with `err` filled. */
int pyrt_idmapped_tree(const char *source, int rec_clone, int rec_attr, int userns_fd, char *err, size_t errlen);

/* setns() for Python 3.11, which lacks os.setns (hooks run in the container's mount namespace). */
int pyrt_setns(int fd, int nstype);

/* Child-side helpers implemented per concern; each returns 0 or -errno with `err` filled. */
int pyrt_apply_procattrs(const struct pyrt_plan *plan, char *err, size_t errlen);
