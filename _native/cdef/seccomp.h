/* cdef/seccomp.h — compiling linux.seccomp with libseccomp in the runtime (parent) process.
 *
 * Python validates the profile and drives these thin wrappers rule by rule, so every libseccomp
 * error can be reported against the exact JSON path of the rule that caused it.  The result is a
 * BPF program exported into a file descriptor; the container init only calls seccomp(2) on it.
 * Plain declarations only: this file is both the cdef and part of the generated C source.
 */

/* Version of the libseccomp linked in (for `pyruntime features`); 0, or -1 when unknown. */
int pyrt_sc_version(unsigned int *major, unsigned int *minor, unsigned int *micro);

/* One argument comparison: op is the SCMP_CMP_* number (1..7); for MASKED_EQ value is the mask. */
struct pyrt_sc_arg {
    uint32_t index;
    uint32_t op;
    uint64_t value;
    uint64_t value_two;
};

/* A filter under construction; NULL when def_action is not a valid libseccomp action. */
void *pyrt_sc_new(uint32_t def_action);
void pyrt_sc_release(void *ctx);
/* 0 or -errno (an architecture already present is not an error). */
int pyrt_sc_arch_add(void *ctx, uint32_t arch_token);
/* libseccomp's token for "x86_64", "aarch64", ...; 0 if this libseccomp does not know it. */
uint32_t pyrt_sc_arch_resolve(const char *name);
uint32_t pyrt_sc_arch_native(void);
/* Native syscall number (negative pseudo numbers for syscalls only other ABIs have);
 * PYRT_SC_NR_UNKNOWN when no ABI libseccomp knows has a syscall of that name. */
int pyrt_sc_syscall_resolve(const char *name);
/* 0 or -errno. */
int pyrt_sc_rule_add(void *ctx, uint32_t action, int nr, const struct pyrt_sc_arg *args, unsigned int n_args);
/* Write the BPF program (struct sock_filter[]) to fd; 0 or -errno. */
int pyrt_sc_export(void *ctx, int fd);

/* Kernel probes without loading anything: 1 supported, 0 not, -errno when seccomp(2) cannot be asked. */
int pyrt_sc_kernel_flag(uint32_t flags);
int pyrt_sc_kernel_action(uint32_t action);

enum {
    PYRT_SC_NR_UNKNOWN = -1,
};
