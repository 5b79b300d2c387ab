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
 * One connection's TLS (making its SSL, the handshake step, the transports)
 * is core/tls_io.h, which this header includes: the upstream connection in
 * upstream/ uses it without seeing gateway/.
 *
 * Owns: the contexts, ticket keys, the kernel TLS probe.  May call: core/,
 * OpenSSL; reads the config's listener and upstream TLS sections.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "../core/tls_io.h"

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


#endif
