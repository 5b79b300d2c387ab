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
#include "io.h"

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
 * upstream's tls settings and the target host; sess (may be NULL) is offered
 * for resumption. */
SSL *gw_tls_client_new(SSL_CTX *ctx, int fd, const struct cfg_upstream_tls *tc,
                       const char *target_host, bool host_is_ip, SSL_SESSION *sess);

enum { GW_HS_DONE = 0, GW_HS_WANT_READ, GW_HS_WANT_WRITE, GW_HS_ERROR, GW_HS_PLAINTEXT };
/* One step of a handshake.  GW_HS_ERROR fills why; GW_HS_PLAINTEXT means the
 * peer spoke plain HTTP to a TLS port. */
int gw_tls_handshake(SSL *ssl, char *why, size_t whylen);

/* After the handshake: pick the transport.  With ktls asked for, reports in
 * ktls_tx and ktls_rx whether the kernel took each direction over. */
const struct gw_io_ops *gw_tls_io_ops(SSL *ssl, bool *ktls_tx, bool *ktls_rx);

/* Send close_notify (best effort, never blocks) and free the SSL. */
void gw_tls_close(SSL *ssl);

extern const struct gw_io_ops gw_io_tls;       /* user-space TLS */
extern const struct gw_io_ops gw_io_ktls_tx;   /* kernel encrypts: splice into it */
extern const struct gw_io_ops gw_io_ktls_rxtx; /* kernel both ways */

#endif
