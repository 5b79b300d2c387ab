/* splice.c - the per-worker pipe pool and the splice(2) halves. */
#include "splice.h"
#include "../core/io.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <unistd.h>

/* Idle pipes a worker keeps: enough for this many concurrent spliced
 * directions to start without a pipe2() each; more are made on demand and
 * closed when given back. */
#define PIPES_IDLE_MAX 64

/* Pipe capacity (F_SETPIPE_SZ; 0 keeps the kernel's 64 KiB).  256 KiB, the
 * copy path's large buffer, keeps what one direction holds in flight the
 * same either way and needs half the splice calls of 64 KiB (measured: a
 * 64 MiB download through loopback took 9,879 splice calls per 192 MiB with
 * 64 KiB pipes, 4,582 with 256 KiB, 3,506 with 1 MiB). */
#ifndef GW_PIPE_SIZE
#define GW_PIPE_SIZE (256 * 1024)
#endif

void gw_pipe_pool_init(struct gw_pipe_pool *pp)
{
    fl_init(&pp->free, PIPES_IDLE_MAX);
    pp->size = GW_PIPE_SIZE;
}

struct gw_pipe *gw_pipe_get(struct gw_pipe_pool *pp)
{
    struct gw_pipe *p = fl_pop(&pp->free, struct gw_pipe, fl);
    int fds[2];

    if (p)
        return p;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
        return NULL;
    if (pp->size)
        (void)fcntl(fds[1], F_SETPIPE_SZ, (int)pp->size);  /* best effort: the default works */
    p = malloc(sizeof(*p));
    if (p == NULL)
        abort();
    p->fl.next = NULL;
    p->rfd = fds[0];
    p->wfd = fds[1];
    p->len = 0;
    return p;
}

static void pipe_close(struct gw_pipe *p)
{
    close(p->rfd);
    close(p->wfd);
    free(p);
}

static void pipe_close_node(struct fl_node *n)
{
    pipe_close((struct gw_pipe *)(void *)((char *)n - offsetof(struct gw_pipe, fl)));
}

void gw_pipe_put(struct gw_pipe_pool *pp, struct gw_pipe *p)
{
    if (p == NULL)
        return;
    /* bytes left in it belong to a transaction that ended: never hand
     * them to the next one */
    if (p->len != 0 || !fl_push(&pp->free, &p->fl))
        pipe_close(p);
}

void gw_pipe_pool_free(struct gw_pipe_pool *pp)
{
    fl_drain(&pp->free, pipe_close_node);
}

ssize_t gw_pipe_fill(struct gw_pipe *p, int fd, size_t max)
{
    ssize_t n;

    do {
        n = splice(fd, NULL, p->wfd, NULL, max, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    } while (n == -1 && errno == EINTR);
    if (n > 0)
        p->len += (uint32_t)n;
    if (n >= 0)
        return n;
    return errno == EAGAIN ? GW_IO_AGAIN : GW_IO_ERR;
}

ssize_t gw_pipe_drain(struct gw_pipe *p, int fd)
{
    ssize_t n;

    do {
        n = splice(p->rfd, NULL, fd, NULL, p->len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    } while (n == -1 && errno == EINTR);
    if (n > 0) {
        p->len -= (uint32_t)n;
        return n;
    }
    if (n == 0) {           /* cannot happen with bytes in the pipe */
        errno = EPIPE;
        return GW_IO_ERR;
    }
    return errno == EAGAIN ? GW_IO_AGAIN : GW_IO_ERR;
}
