/* io.c - the plain socket transport. */
#include "io.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * recv() and sendmsg() are cancellation points: in a process with more than
 * one thread glibc wraps each call in the asynchronous-cancellation enable
 * and disable dance (single-threaded nginx skips it).  Worker threads are
 * never cancelled, so the data path makes the system calls directly; that
 * dance was about 1.3 % of a worker's CPU per small request.
 */

static ssize_t plain_read(struct gw_io *io, void *buf, size_t len)
{
    ssize_t n;

    do {
        /* recv(2), not read(): sockets need no file position */
        n = syscall(SYS_recvfrom, io->fd, buf, len, 0, NULL, NULL);
    } while (n == -1 && errno == EINTR);
    if (n >= 0)
        return n;
    return errno == EAGAIN ? GW_IO_AGAIN : GW_IO_ERR;
}

static ssize_t plain_writev(struct gw_io *io, const struct iovec *iov, int n)
{
    ssize_t r;

    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };

    /* One piece (a request head, a response whose head sits in front of
     * its body) goes by sendto(2): the kernel then copies no msghdr and
     * imports no iovec array, a few per cent of a small request's CPU. */
    do {
        if (n == 1)
            r = syscall(SYS_sendto, io->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL, NULL, 0);
        else
            r = syscall(SYS_sendmsg, io->fd, &m, MSG_NOSIGNAL);
    } while (r == -1 && errno == EINTR);
    if (r >= 0)
        return r;
    return errno == EAGAIN ? GW_IO_AGAIN : GW_IO_ERR;
}

static void plain_shutdown_wr(struct gw_io *io)
{
    shutdown(io->fd, SHUT_WR);
}

const struct gw_io_ops gw_io_plain = {
    .name = "plain",
    .read = plain_read,
    .writev = plain_writev,
    .shutdown_wr = plain_shutdown_wr,
    .splice_from = true,
    .splice_to = true,
};

ssize_t gw_sock_discard(int fd, size_t max)
{
    ssize_t n;

    do {
        n = recv(fd, NULL, max, MSG_TRUNC | MSG_DONTWAIT);
    } while (n == -1 && errno == EINTR);
    if (n == -1 && (errno == EFAULT || errno == EINVAL)) {
        /* a socket that would copy after all: read into a sink */
        char sink[4096];
        do {
            n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        } while (n == -1 && errno == EINTR);
    }
    return n;
}

void gw_splice_lowat(int fd, bool on)
{
    int v = on ? GW_SPLICE_LOWAT : 0;      /* 0: back to the sysctl default */
    setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v));
}
