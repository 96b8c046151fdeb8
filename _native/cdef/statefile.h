/* cdef/statefile.h — the state file's atomic replacement (pyruntime/state.py, save).
 *
 * Plain declarations only: this file is both the cdef and part of the generated C source.
 */

/* renameat2(AT_FDCWD, A, AT_FDCWD, B, RENAME_EXCHANGE): A and B swap names atomically.  0 or -errno
 * (-ENOENT when B does not exist yet, -EINVAL where the file system cannot exchange). */
int pyrt_rename_exchange(const char *a, const char *b);
