/* trampoline.c — the last image the container process runs before the user program.
 *
 * CVE-2019-5736 class: the container init is a clone of the host Python process, so until execve its
 * /proc/self/exe is the host interpreter.  A user program that is a script with `#!/proc/self/exe`
 * would make the kernel run that host binary inside the container.  So the C core first executes this
 * program from a sealed memfd (execveat), and it executes the user program: /proc/self/exe is then the
 * sealed anonymous copy, never a host file.
 *
 * argv: [name, path, user argv0, user argv1, ...].  No libc: a static blob of a few hundred bytes,
 * embedded into the C core at build time.  x86_64 only (the builder skips it elsewhere).
 */
static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

__attribute__((noreturn, used)) void pyrt_tramp_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    static const char msg[] = "pyruntime: exec of the container process failed\n";

    if (argc >= 3)
        sys3(59 /* execve */, (long)argv[1], (long)(argv + 2), (long)envp);
    sys3(1 /* write */, 2, (long)msg, sizeof msg - 1);
    for (;;)
        sys3(60 /* exit */, 127, 0, 0);
}

__asm__(".globl _start\n_start:\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call pyrt_tramp_main\n");
