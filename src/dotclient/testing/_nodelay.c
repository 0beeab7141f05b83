/* An LD_PRELOAD shim that sets TCP_NODELAY on every accepted connection.
 *
 * Debian's unbound 1.17 has no option to set TCP_NODELAY on DoT connections, so a
 * client that does not send an ACK at once (dnsperf, dnspython) waits ~40 ms for its
 * own delayed ACK whenever unbound writes an answer behind an unacknowledged one.
 * dotclient.testing builds this file into a temporary directory when a C compiler
 * is there (UnboundServer(nodelay=True)); benchmarks use it so that the server is not
 * what bounds the C reference. Errors (a socket that is not TCP) are ignored.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void set_nodelay(int fd) {
    if (fd >= 0) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int conn = real(fd, addr, len);
    set_nodelay(conn);
    return conn;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int conn = real(fd, addr, len, flags);
    set_nodelay(conn);
    return conn;
}
