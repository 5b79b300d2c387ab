/* io.c - the plain socket transport. */
#include "io.h"

#include <errno.h>
#include <unistd.h>

static ssize_t plain_read(struct gw_io *io, void *buf, size_t len)
{
    ssize_t n;

    do {
        n = read(io->fd, buf, len);
    } while (n == -1 && errno == EINTR);
    if (n >= 0)
        return n;
    return errno == EAGAIN ? GW_IO_AGAIN : GW_IO_ERR;
}

static ssize_t plain_writev(struct gw_io *io, const struct iovec *iov, int n)
{
    ssize_t r;

    do {
        r = writev(io->fd, iov, n);
    } while (r == -1 && errno == EINTR);
    if (r >= 0)
        return r;
    return errno == EAGAIN ? GW_IO_AGAIN : GW_IO_ERR;
}

const struct gw_io_ops gw_io_plain = {
    .name = "plain",
    .read = plain_read,
    .writev = plain_writev,
    .can_splice = true,
};
