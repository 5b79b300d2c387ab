/*
 * splice.h - zero-copy body moves: a per-worker pool of pipes and the two
 * splice(2) halves (socket -> pipe, pipe -> socket).
 *
 * A body moving from one socket to another goes through a pipe the
 * transaction borrows from its worker's pool while it splices, never one
 * pipe per request: creating and closing a pipe costs two descriptors and
 * four syscalls, more than a small body's copy.  The pipe is the only buffer
 * (its capacity bounds what one direction holds), so back-pressure stays
 * structural as with the copy path.  A pipe goes back to the pool only
 * empty; one that still holds bytes when its transaction ends is closed.
 *
 * Return conventions follow io.h: > 0 bytes moved, 0 = EOF (fill only),
 * GW_IO_AGAIN = would block, GW_IO_ERR = broken (errno set).
 */
#ifndef SLUICE_SPLICE_H
#define SLUICE_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/freelist.h"
#include "../core/io.h"

struct gw_worker;

struct gw_pipe {
    struct fl_node fl;          /* pool free list */
    int rfd, wfd;
    uint32_t len;               /* bytes in the pipe, written but not yet drained */
};

struct gw_pipe_pool {
    struct freelist free;       /* idle pipes, at most PIPES_IDLE_MAX */
    uint32_t size;              /* capacity asked for with F_SETPIPE_SZ; 0 = kernel default */
};

/* Bytes asked of one fill: more than any pipe holds, so the pipe's
 * capacity (not this) limits a transfer. */
#define GW_SPLICE_CHUNK (1u << 20)

void gw_pipe_pool_init(struct gw_pipe_pool *pp);
/* An empty pipe, or NULL when none can be made (out of descriptors): the
 * caller copies instead. */
struct gw_pipe *gw_pipe_get(struct gw_pipe_pool *pp);
/* Give a pipe back (NULL is fine): pooled if empty and the pool has room,
 * else closed. */
void gw_pipe_put(struct gw_pipe_pool *pp, struct gw_pipe *p);
void gw_pipe_pool_free(struct gw_pipe_pool *pp);

/* gw_splice_lowat (TCP_NOTSENT_LOWAT while splicing): core/io.h */

/* Move up to max bytes from socket fd into the pipe. */
ssize_t gw_pipe_fill(struct gw_pipe *p, int fd, size_t max);
/* Move what the pipe holds into socket fd. */
ssize_t gw_pipe_drain(struct gw_pipe *p, int fd);

#endif
