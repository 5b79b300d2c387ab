/*
 * tls.h - TLS for listeners (termination) and upstreams (origination),
 * with kernel TLS where the kernel has it.
 *
 * A gw_tls_set holds every OpenSSL context one config needs: for each TLS
 * listener a server context per certificate (chosen by SNI from the
 * certificates' names, the first certificate being the default), and for each
 * TLS upstream one client context.  It is built off the workers' threads
 * when a config is loaded or reloaded (so a bad certificate is a config
 * error with its JSON path, and nothing changes) and lives in the snapshot.
 * OpenSSL reference-counts contexts, so connections accepted under an old
 * snapshot keep what they use after a reload frees it.
 *
 * Session tickets are encrypted with process-wide keys shared by every
 * worker and every config generation, rotated by the main thread
 * (gw_tls_rotate_tickets), so resumption survives reloads.
 *
 * Connections: gw_tls_server_new()/gw_tls_client_new() make an SSL for a
 * socket; gw_tls_handshake() drives the handshake without blocking; then
 * the connection's gw_io switches to gw_io_tls (or gw_io_ktls when the kernel
 * took the record layer over) and the HTTP code reads and writes plaintext.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "../core/io.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;

struct gw_tls_set;

/* Process-wide setup (ticket keys, kernel TLS probe); main thread, once. */
void gw_tls_global_init(void);
void gw_tls_global_free(void);
/* Replace the oldest ticket key: tickets stay valid for two periods. */
void gw_tls_rotate_tickets(void);
#define GW_TLS_TICKET_ROTATE_S 3600

/* true when the kernel accepts the "tls" TCP ULP (probed once). */
bool gw_tls_ktls_available(void);

/* Build the contexts of cfg; NULL with errors (JSON paths) added to errs
 * when a certificate or CA file cannot be used.  A config without TLS gets
 * an empty set (never NULL on success). */
struct gw_tls_set *gw_tls_set_build(const struct sl_config *cfg, struct cfg_errors *errs);
void gw_tls_set_free(struct gw_tls_set *ts);
/* NULL when listener i / upstream i is plain. */
SSL_CTX *gw_tls_listener_ctx(const struct gw_tls_set *ts, size_t i);
SSL_CTX *gw_tls_upstream_ctx(const struct gw_tls_set *ts, size_t i);

/* A server-side SSL on fd (accept state), or NULL. */
SSL *gw_tls_server_new(SSL_CTX *ctx, int fd);
/* A client-side SSL on fd with SNI and name verification set from the
 * upstream's tls settings and the target host (SNI: tc->sni, else the host
 * when it is a name; verification against the same name, or the IP); sess
 * (may be NULL) is offered for resumption. */
SSL *gw_tls_client_new(SSL_CTX *ctx, int fd, const struct cfg_upstream_tls *tc,
                       const char *target_host, bool host_is_ip, SSL_SESSION *sess);
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
