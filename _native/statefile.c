/* statefile.c — the state file's atomic replacement by name exchange (see cdef/statefile.h and
 * pyruntime/state.py's save for why not a rename over the old file). */
#include "common.h"
#include <linux/fs.h>

int pyrt_rename_exchange(const char *a, const char *b)
{
    if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0)
        return -errno;
    return 0;
}
