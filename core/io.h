/*
 * io.h - the transport under a connection.
 *
 * The HTTP code never calls read()/writev() itself: it goes through a
 * gw_io, whose ops are plain socket calls today.  TLS (OpenSSL, with kernel
 * TLS when the kernel has it) and splice(2) body moves plug in here as other
 * ops without touching the codec or the pump: a TLS transport's read returns
 * plaintext, and `splice_from`/`splice_to` tell the pump when body bytes may
 * move out of / into the descriptor with splice(2), without passing through
 * user space (plain sockets; a kernel-TLS socket in the offloaded direction).
 *
 * Return conventions (both ops): > 0 bytes moved; 0 from read = EOF;
 * GW_IO_AGAIN = would block; GW_IO_ERR = the connection is broken (errno set).
 *
 * Owns: the transport interface and the plain socket transport (the TLS ones
 * are in tls_io.h).  May call: libc only; used by gateway/ and upstream/.
 */
#ifndef SLUICE_IO_H
#define SLUICE_IO_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

#define GW_IO_AGAIN (-2)
#define GW_IO_ERR   (-1)

struct gw_io;

struct gw_io_ops {
    const char *name;
    ssize_t (*read)(struct gw_io *io, void *buf, size_t len);
    ssize_t (*writev)(struct gw_io *io, const struct iovec *iov, int n);
    void (*shutdown_wr)(struct gw_io *io);     /* half-close: no more bytes from us */
    bool splice_from;           /* reading fd yields the payload (plain, kTLS rx) */
    bool splice_to;             /* writing fd sends payload (plain, kTLS tx) */
};

struct gw_io {
    int fd;
    const struct gw_io_ops *ops;
    void *ctx;                  /* transport state (TLS: tls.c's); NULL for plain */
};

extern const struct gw_io_ops gw_io_plain;

static inline ssize_t gw_io_read(struct gw_io *io, void *buf, size_t len)
{
    return io->ops->read(io, buf, len);
}

static inline ssize_t gw_io_writev(struct gw_io *io, const struct iovec *iov, int n)
{
    return io->ops->writev(io, iov, n);
}

static inline void gw_io_shutdown_wr(struct gw_io *io)
{
    io->ops->shutdown_wr(io);
}

/* Drops up to max bytes waiting in a TCP socket's receive queue without
 * copying them (recv(2) with MSG_TRUNC, which TCP takes as "discard"), for
 * a lingering close: a refused 1 MB upload costs the thread no copy.
 * > 0 bytes dropped, 0 = EOF, -1 = errno (EAGAIN: nothing waiting). */
ssize_t gw_sock_discard(int fd, size_t max);

/* While a body is spliced into socket fd, keep at most GW_SPLICE_LOWAT
 * bytes queued in it unsent (TCP_NOTSENT_LOWAT); off restores the system
 * default.  A send queue filled past the peer's window is transmitted by
 * the peer's ACKs, in softirq on whatever core receives them; with little
 * unsent data, the worker that splices does the transmitting itself, when
 * it writes.  On loopback that moved a 64 MiB download from 0.5x to about
 * 0.8x of the backend's direct speed (the receiving core is the one that
 * saturates) and cut the proxy's CPU per MiB by a quarter.  The copy path
 * leaves it alone: there it meant more writes for no gain. */
#define GW_SPLICE_LOWAT (16 * 1024)
void gw_splice_lowat(int fd, bool on);

#endif
