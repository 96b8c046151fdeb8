/* child.h — internal interface between the files of the C core (not part of the cffi cdef). */
#ifndef PYRT_CHILD_H
#define PYRT_CHILD_H
#include "common.h"

#define PYRT_ERRLEN 4096

/* set*id as raw system calls.  glibc's wrappers (__nptl_setxid) signal every other thread the
 * process had and wait for each: after clone() those threads do not exist in the child, so if the
 * runtime had a thread at that moment the wrapper waits forever.  The raw calls change only this
 * thread's credentials, which is all the single-threaded child has. */
static inline int pyrt_setresuid(uid_t id) { return (int)syscall(SYS_setresuid, id, id, id); }
static inline int pyrt_setresgid(gid_t id) { return (int)syscall(SYS_setresgid, id, id, id); }
static inline int pyrt_setgroups(size_t n, const gid_t *g) { return (int)syscall(SYS_setgroups, n, g); }

/* mounts.c: procfs contexts made in the pid namespace to join (create with linux.namespaces pid path) */
int pyrt_proc_contexts(const struct pyrt_plan *p, char *err, size_t errlen);

int pyrt_send_msg(int fd, uint32_t type, int32_t errnum, const void *payload, uint32_t len, int pass_fd);
int pyrt_recv_msg(int fd, struct pyrt_msg *hdr, char *payload, uint32_t cap);
__attribute__((noreturn)) void pyrt_child_die(int fd, int errnum, const char *text);

/* mounts.c */
int pyrt_prepare_rootfs(const struct pyrt_plan *p, int *rootfd, char *err, size_t errlen);
int pyrt_enter_rootfs(const struct pyrt_plan *p, int rootfd, char *err, size_t errlen);
int pyrt_finish_rootfs(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_open_in_root(int rootfd, const char *path, int flags, char *err, size_t errlen);

/* caps.c */
int pyrt_set_rlimits(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_set_oom_score_adj(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_switch_user(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_join_keyring(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_set_mempolicy(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_load_seccomp(const struct pyrt_plan *p, int *listener, char *err, size_t errlen);

/* tty.c */
int pyrt_setup_console(const struct pyrt_plan *p, char *err, size_t errlen);

/* ns.c */
int pyrt_join_namespaces(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_set_identity_names(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_loopback_up(char *err, size_t errlen);
#endif
