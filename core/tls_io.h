/*
 * tls_io.h - one connection's TLS: its SSL (server or client side), the
 * non-blocking handshake step, and the TLS transports under a gw_io.
 *
 * gw_tls_server_new()/gw_tls_client_new() make an SSL for a socket, from a
 * context the caller got elsewhere (gateway/tls.h builds them per config);
 * gw_tls_attach() makes it the io's transport; gw_tls_handshake() drives
 * the handshake without blocking; then gw_tls_pick_ops() switches the io to
 * gw_io_tls (or a kernel TLS transport when the kernel took the record layer
 * over) and the HTTP code reads and writes plaintext.
 *
 * Owns: the per-connection TLS state and the session slot of client SSLs.
 * May call: core/io.h, OpenSSL, libc.  Used by gateway/ (client side) and
 * upstream/ (the upstream connection).
 */
#ifndef SLUICE_TLS_IO_H
#define SLUICE_TLS_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "io.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;

/* Once, before any connection (gateway/tls.c's global init calls it). */
void gw_tls_io_init(void);
/* The OpenSSL error queue as one line into out (and cleared). */
void gw_tls_errors(char *out, size_t outlen);
/* A client context's new-session callback: keeps the session in the
 * connection's slot (gw_tls_session_slot). */
int gw_tls_new_session(SSL *ssl, SSL_SESSION *sess);

/* A server-side SSL on fd (accept state), or NULL. */
SSL *gw_tls_server_new(SSL_CTX *ctx, int fd);
/* A client-side SSL on fd (connect state): SNI sni (NULL = none); with
 * verify, the certificate is checked against sni, or against the address
 * ip when sni is NULL; sess (may be NULL) is offered for resumption. */
SSL *gw_tls_client_new(SSL_CTX *ctx, int fd, const char *sni, bool verify, const char *ip,
                       SSL_SESSION *sess);
/* New sessions (tickets) of this client SSL are stored in *slot (the old one
 * freed); slot must outlive the SSL (a pool bucket's `user`). */
void gw_tls_session_slot(SSL *ssl, SSL_SESSION **slot);
void gw_tls_session_free(void *sess);

/* Make ssl the transport of io (io->ops = gw_io_tls, io->ctx = TLS state
 * that owns ssl).  false on OOM (ssl not taken). */
bool gw_tls_attach(struct gw_io *io, SSL *ssl);
SSL *gw_tls_ssl(const struct gw_io *io);

enum { GW_HS_DONE = 0, GW_HS_WANT_READ, GW_HS_WANT_WRITE, GW_HS_ERROR, GW_HS_PLAINTEXT };
/* One non-blocking step of io's handshake.  GW_HS_ERROR fills why (for a
 * client: the verification failure, e.g. "certificate verify failed: ...");
 * GW_HS_PLAINTEXT means the peer spoke plain HTTP to a TLS port. */
int gw_tls_handshake(struct gw_io *io, char *why, size_t whylen);
bool gw_tls_resumed(const struct gw_io *io);
/* After the handshake: switch io->ops to the kernel TLS transports when the
 * kernel took the record layer over (ktls_tx and ktls_rx say which way). */
void gw_tls_pick_ops(struct gw_io *io, bool *ktls_tx, bool *ktls_rx);
/* Decrypted bytes wait inside OpenSSL (a splice from the socket would
 * overtake them; a pooled connection with them is not clean). */
bool gw_tls_pending(const struct gw_io *io);
/* Send close_notify (best effort, never blocks, not after a fatal error)
 * and free io's TLS state; io->fd stays open (the caller closes it). */
void gw_tls_close(struct gw_io *io);

extern const struct gw_io_ops gw_io_tls;       /* user-space TLS */
extern const struct gw_io_ops gw_io_ktls_tx;   /* kernel encrypts: splice into it */
extern const struct gw_io_ops gw_io_ktls_rxtx; /* kernel both ways */

#endif
