/* child.h — internal interface between the files of the C core (not part of the cffi cdef). */
#ifndef PYRT_CHILD_H
#define PYRT_CHILD_H
#include "common.h"

#define PYRT_ERRLEN PYRT_ERR_MAX

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
int pyrt_check_init_syscalls(const struct pyrt_plan *p, char *err, size_t errlen);

/* mountopts.c */
int pyrt_mount_idmapped(const struct pyrt_mount *m, int destfd, char *err, size_t errlen);
int pyrt_mount_rec_attrs(const struct pyrt_mount *m, int topfd, char *err, size_t errlen);
int pyrt_tmpcopyup(int lower, int top, const char *dest, char *err, size_t errlen);

/* procenv.c */
int pyrt_set_home(struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_fix_stdio_owner(const struct pyrt_plan *p, char *err, size_t errlen);

/* tty.c */
int pyrt_setup_console(const struct pyrt_plan *p, char *err, size_t errlen);

/* ns.c */
int pyrt_join_namespaces(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_set_identity_names(const struct pyrt_plan *p, char *err, size_t errlen);
int pyrt_loopback_up(char *err, size_t errlen);
#endif
