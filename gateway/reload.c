/* reload.c - the one path by which a new config document is applied:
 * PUT /config and SIGHUP both come here. */
#include "gateway.h"
#include "tls.h"

#include <stdio.h>
#include <string.h>

struct gw_worker *g_workers;
int g_nworkers;
_Atomic uint64_t g_reloads_ok, g_reloads_err;

/* Reloads are serialised: g_snap is only replaced under this lock, so a
 * holder may read it without g_snap_lock. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same_admin(const struct sl_config *a, const struct sl_config *b)
{
    if (a->has_admin != b->has_admin)
        return false;
    return !a->has_admin || (a->admin_addr.salen == b->admin_addr.salen &&
                             memcmp(&a->admin_addr.sa, &b->admin_addr.sa, a->admin_addr.salen) == 0);
}

int gw_config_apply(const char *json, size_t len, const char *origin,
                    struct cfg_errors *errs, uint64_t *version)
{
    char err[512];
    int rc = -1;

    pthread_mutex_lock(&reload_lock);
    struct sl_config *cfg = cfg_parse(json, len, errs);
    if (cfg == NULL)
        goto out;
    const struct sl_config *cur = g_snap->cfg;
    if (!same_admin(cfg, cur)) {
        /* the admin listener is the thing taking this request: moving it
         * needs a restart, and saying so beats ignoring the field */
        cfg_errors_add(errs, "/admin/address", "changing the admin listener needs a restart");
        cfg_free(cfg);
        goto out;
    }
    if (cfg->workers && cfg->workers != g_nworkers)
        gw_log(GW_LOG_WARN, "%s: \"workers\" is %d, running %d: the count changes at the next start",
               origin, cfg->workers, g_nworkers);
    /* certificates and CA files are read here, off the workers: a bad one is
     * a 400 with its path, and the running config stays */
    struct gw_tls_set *tls = gw_tls_set_build(cfg, errs);
    if (tls == NULL) {
        cfg_free(cfg);
        goto out;
    }
    struct gw_snapshot *s = gw_snapshot_build(cfg, tls, g_snap, g_nworkers, err, sizeof(err));
    if (s == NULL) {
        cfg_errors_add(errs, "", "%s", err);
        goto out;
    }
    gw_snapshot_publish(s);
    *version = s->version;
    for (int i = 0; i < g_nworkers; i++)
        gw_worker_command(&g_workers[i], GW_CMD_SNAPSHOT);
    rc = 0;
out:
    if (rc == 0) {
        atomic_fetch_add(&g_reloads_ok, 1);
        gw_log(GW_LOG_INFO, "%s: config version %llu applied", origin, (unsigned long long)*version);
    } else {
        atomic_fetch_add(&g_reloads_err, 1);
        for (size_t i = 0; i < errs->n; i++)
            gw_log(GW_LOG_ERROR, "%s refused: %s%s%s", origin, errs->v[i].path,
                   errs->v[i].path[0] ? ": " : "", errs->v[i].message);
    }
    pthread_mutex_unlock(&reload_lock);
    return rc;
}

struct gw_snapshot *gw_snapshot_current(void)
{
    pthread_mutex_lock(&g_snap_lock);
    struct gw_snapshot *s = g_snap;
    if (s)
        gw_snapshot_ref(s);
    pthread_mutex_unlock(&g_snap_lock);
    return s;
}
