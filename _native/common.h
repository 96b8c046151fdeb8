/* common.h — system headers every C file of the core needs, then the plan. */
#ifndef PYRT_COMMON_H
#define PYRT_COMMON_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "pyrt.h"

/* Fill err with "step: path: strerror" style text; returns -errnum so callers can `return fail(...)`. */
int pyrt_fail(char *err, size_t errlen, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* fork with clone flags, in this architecture's clone argument order (util.c) */
long pyrt_clone(unsigned long flags);
#endif
