/* splice_test.c - unit tests for gateway/splice.c (the pipe pool and the
 * splice halves), over a real socket pair. */
#include "tap.h"
#include "../../gateway/splice.c"
#include "../../core/io.c"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

static int nfds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static bool is_nonblock_cloexec(int fd)
{
    return (fcntl(fd, F_GETFL) & O_NONBLOCK) && (fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

static void test_pool(void)
{
    struct gw_pipe_pool pp;
    int base = nfds();

    gw_pipe_pool_init(&pp);
    struct gw_pipe *p = gw_pipe_get(&pp);
    ok(p && p->len == 0, "a new pipe is empty");
    ok(p && is_nonblock_cloexec(p->rfd) && is_nonblock_cloexec(p->wfd), "pipe ends are O_NONBLOCK|O_CLOEXEC");
    ok(p && fcntl(p->wfd, F_GETPIPE_SZ) == GW_PIPE_SIZE, "pipe capacity is GW_PIPE_SIZE (%d)",
       p ? fcntl(p->wfd, F_GETPIPE_SZ) : -1);
    gw_pipe_put(&pp, p);
    ok(pp.free.n == 1 && nfds() == base + 2, "an empty pipe is pooled, still open");
    struct gw_pipe *q = gw_pipe_get(&pp);
    ok(q == p && pp.free.n == 0, "the pooled pipe is handed out again");

    /* a pipe with bytes in it is closed, never pooled */
    ok(write(q->wfd, "xyz", 3) == 3, "write into the pipe");
    q->len = 3;
    gw_pipe_put(&pp, q);
    ok(pp.free.n == 0 && nfds() == base, "a pipe holding bytes is closed on put");

    /* the idle count is bounded */
    struct gw_pipe *v[PIPES_IDLE_MAX + 8];
    for (int i = 0; i < PIPES_IDLE_MAX + 8; i++)
        v[i] = gw_pipe_get(&pp);
    for (int i = 0; i < PIPES_IDLE_MAX + 8; i++)
        gw_pipe_put(&pp, v[i]);
    ok(pp.free.n == PIPES_IDLE_MAX && nfds() == base + 2 * PIPES_IDLE_MAX,
       "at most %d idle pipes kept (%u, fds %d)", PIPES_IDLE_MAX, pp.free.n, nfds() - base);
    gw_pipe_pool_free(&pp);
    ok(pp.free.n == 0 && nfds() == base, "pool free closes every pipe");
    gw_pipe_put(&pp, NULL);
    ok(1, "put(NULL) is a no-op");
}

static void test_moves(void)
{
    int a[2], b[2];
    struct gw_pipe_pool pp;
    char buf[4096];

    gw_pipe_pool_init(&pp);
    ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a) == 0 &&
       socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b) == 0, "socket pairs");
    struct gw_pipe *p = gw_pipe_get(&pp);

    ok(gw_pipe_fill(p, a[1], 1000) == GW_IO_AGAIN, "fill from an empty socket: AGAIN");
    ok(write(a[0], "hello, splice", 13) == 13, "peer writes 13 bytes");
    ok(gw_pipe_fill(p, a[1], 5) == 5 && p->len == 5, "fill stops at max (5)");
    ok(gw_pipe_fill(p, a[1], 1000) == 8 && p->len == 13, "fill takes the rest (8)");
    ok(gw_pipe_drain(p, b[0]) == 13 && p->len == 0, "drain moves all 13 bytes");
    ok(read(b[1], buf, sizeof(buf)) == 13 && memcmp(buf, "hello, splice", 13) == 0, "bytes arrive exact");
    close(a[0]);
    ok(gw_pipe_fill(p, a[1], 1000) == 0, "fill at the peer's EOF: 0");

    /* a full destination: drain says AGAIN, keeps the bytes */
    int filled = 0;
    memset(buf, 'q', sizeof(buf));
    while (write(b[0], buf, sizeof(buf)) > 0)
        filled++;
    int c[2];
    ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c) == 0, "third pair");
    ok(write(c[0], "abc", 3) == 3 && gw_pipe_fill(p, c[1], 100) == 3, "fill 3 bytes");
    ok(gw_pipe_drain(p, b[0]) == GW_IO_AGAIN && p->len == 3, "drain into a full socket: AGAIN, bytes kept (%d buffers queued)", filled);
    close(b[1]);
    ok(gw_pipe_drain(p, b[0]) == GW_IO_ERR, "drain to a closed peer: ERR (no SIGPIPE kills us)");
    gw_pipe_put(&pp, p);
    ok(pp.free.n == 0, "the pipe with bytes left is not pooled");
    gw_pipe_pool_free(&pp);
    close(a[1]);
    close(b[0]);
    close(c[0]);
    close(c[1]);
}

/* The send-queue bound while splicing into a TCP socket, and its removal. */
static void test_lowat(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), v = -1;
    socklen_t vl = sizeof(v);

    ok(l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 1) == 0 &&
       getsockname(l, (struct sockaddr *)&sa, &sl) == 0 &&
       connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0, "a loopback TCP connection");
    gw_splice_lowat(c, true);
    int rc = getsockopt(c, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &vl);
    ok(rc == 0 && v == GW_SPLICE_LOWAT, "on: TCP_NOTSENT_LOWAT is %d (got %d)", GW_SPLICE_LOWAT, v);
    gw_splice_lowat(c, false);
    rc = getsockopt(c, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &vl);
    ok(rc == 0 && v == 0, "off: back to the system default (got %d)", v);
    close(c);
    close(l);
}

/* gw_sock_discard: what a lingering close drops, exactly, and nothing after it. */
static void test_discard(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), s = -1;
    static char big[100000];
    char buf[16];

    ok(l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 1) == 0 &&
       getsockname(l, (struct sockaddr *)&sa, &sl) == 0 &&
       connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0 && (s = accept(l, NULL, NULL)) >= 0,
       "a loopback TCP connection");
    ok(gw_sock_discard(s, 1u << 20) == -1 && errno == EAGAIN, "nothing waiting: EAGAIN");
    memset(big, 'x', sizeof(big));
    size_t sent = 0;
    while (sent < sizeof(big)) {
        ssize_t n = send(c, big + sent, sizeof(big) - sent, 0);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    size_t dropped = 0;
    for (int i = 0; i < 1000 && dropped < sent; i++) {
        ssize_t n = gw_sock_discard(s, 1u << 20);
        if (n > 0)
            dropped += (size_t)n;
        else if (!(n == -1 && errno == EAGAIN))
            break;
        else
            usleep(1000);
    }
    ok(sent == sizeof(big) && dropped == sent, "100,000 bytes dropped (%zu of %zu)", dropped, sent);
    ok(gw_sock_discard(s, 1u << 20) == -1 && errno == EAGAIN, "then nothing is waiting");
    ok(send(c, "tail", 4, 0) == 4 && recv(s, buf, sizeof(buf), 0) == 4 && memcmp(buf, "tail", 4) == 0,
       "bytes sent afterwards arrive intact");
    ok(send(c, "cd", 2, 0) == 2 && recv(s, NULL, 2, MSG_TRUNC | MSG_DONTWAIT) == 2,
       "TCP drops with MSG_TRUNC and no buffer: the path gw_sock_discard takes, no copy");
    ok(send(c, "ab", 2, 0) == 2 && gw_sock_discard(s, 1) == 1 && recv(s, buf, sizeof(buf), 0) == 1 &&
       buf[0] == 'b', "at most max bytes are dropped");
    close(c);
    ssize_t eof = -1;
    for (int i = 0; i < 1000; i++) {
        eof = gw_sock_discard(s, 1u << 20);
        if (!(eof == -1 && errno == EAGAIN))
            break;
        usleep(1000);
    }
    ok(eof == 0, "the peer's FIN: 0 (got %zd)", eof);
    close(s);
    close(l);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);   /* as sluice does */
    test_pool();
    test_moves();
    test_lowat();
    test_discard();
    return tap_done();
}
