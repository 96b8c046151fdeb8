/* What sd_notify(3) does, as a static program a container can run (busybox cannot send a unix
 * datagram): each argument is one datagram to $NOTIFY_SOCKET.  Built by pyrt_testenv.build_sdsend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    const char *p = getenv("NOTIFY_SOCKET");
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (!p || s < 0) return 2;
    strncpy(a.sun_path, p, sizeof(a.sun_path) - 1);
    for (int i = 1; i < argc; i++)
        if (sendto(s, argv[i], strlen(argv[i]), 0, (struct sockaddr *)&a, sizeof(a)) < 0) { perror("sendto"); return 1; }
    return 0;
}
