/* main.c - the sluice command line, signals, reload and graceful drain. */
#include "admin.h"
#include "metrics.h"
#include "reload.h"
#include "snapshot.h"
#include "version.h"
#include "worker.h"
#include "tls.h"
#include "../upstream/dns.h"

#include <errno.h>
#include <event2/event.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: sluice --config FILE                 run with a JSON config document\n"
    "       sluice --check --config FILE         validate only; exit 0, or print every error and exit 1\n"
    "       sluice --listen ADDR --backend ADDR [--backend ADDR ...] [--workers N]\n"
    "              [--tls-cert PEM --tls-key PEM] [--admin ADDR]\n"
    "                                            quick mode: one listener, one catch-all route,\n"
    "                                            round-robin over the backends, no config file\n"
    "       sluice --version | --help\n"
    "\n"
    "ADDR is host:port or [v6]:port.  Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads --config.\n"
    "Exit codes: 0 clean shutdown, 1 bad configuration or command line, 2 runtime failure.\n";

static struct {
    const char *config_path;
    int nworkers;
    struct gw_worker *workers;
    struct event_base *base;
    bool draining;
} M;

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void print_errors(const char *prefix, const struct cfg_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        const struct cfg_error *e = &errs->v[i];
        if (e->path[0])
            fprintf(stderr, "%s%s: %s\n", prefix, e->path, e->message);
        else
            fprintf(stderr, "%s%s\n", prefix, e->message);
    }
}

/* Read and validate a config file, printing every error (start-up and --check). */
static struct sl_config *load_file(const char *path)
{
    size_t len;
    struct cfg_errors errs = { 0 };
    char *text = read_file(path, &len);

    if (text == NULL) {
        fprintf(stderr, "sluice: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct sl_config *cfg = cfg_parse(text, len, &errs);
    free(text);
    if (cfg == NULL)
        print_errors("", &errs);
    cfg_errors_clear(&errs);
    return cfg;
}

static void reload(void)
{
    struct cfg_errors errs = { 0 };
    uint64_t version;
    size_t len;

    if (M.config_path == NULL) {
        gw_log(GW_LOG_WARN, "SIGHUP: no --config file to reload (quick mode); use PUT /config");
        return;
    }
    char *text = read_file(M.config_path, &len);
    if (text == NULL) {
        gw_log(GW_LOG_ERROR, "SIGHUP: cannot read %s: %s; the running config stays",
               M.config_path, strerror(errno));
        atomic_fetch_add(&g_reloads_err, 1);
        return;
    }
    /* errors are logged by the apply path; the running config stays */
    gw_config_apply(text, len, "SIGHUP", &errs, &version);
    cfg_errors_clear(&errs);
    free(text);
}

/* Snapshots released by workers are freed here, off the request path. */
/* The resolver thread saw a name's addresses change: the running
 * document again, whose build takes the new answers (no request dropped,
 * as any reload). */
static int dns_changed(void)
{
    uint64_t version;

    return gw_config_reapply("dns", &version);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_snapshot_reap();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (sig == SIGHUP) {
        reload();
        return;
    }
    if (!M.draining) {
        M.draining = true;
        gw_log(GW_LOG_INFO, "signal %d: draining", (int)sig);
        event_base_loopbreak(M.base);
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int drain_and_stop(uint32_t drain_ms)
{
    bool *joined = calloc((size_t)M.nworkers, sizeof(bool));
    int left = M.nworkers;
    uint64_t deadline = now_ms() + drain_ms;
    bool stopped = false;

    for (int i = 0; i < M.nworkers; i++)
        gw_worker_command(&M.workers[i], GW_CMD_DRAIN);
    while (left > 0) {
        for (int i = 0; i < M.nworkers; i++) {
            if (!joined[i] && pthread_tryjoin_np(M.workers[i].thread, NULL) == 0) {
                joined[i] = true;
                left--;
            }
        }
        if (left == 0)
            break;
        if (!stopped && now_ms() >= deadline) {
            gw_log(GW_LOG_WARN, "drain_ms (%u) passed: closing the remaining connections", drain_ms);
            for (int i = 0; i < M.nworkers; i++)
                if (!joined[i])
                    gw_worker_command(&M.workers[i], GW_CMD_STOP);
            stopped = true;
        }
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    free(joined);
    return 0;
}

/* Session ticket keys: a new one every period, the previous still accepted. */
static void rotate_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_tls_rotate_tickets();
}

/* The command line. */
struct cli {
    const char *listen, *config, *admin, *tls_cert, *tls_key;
    const char **backends;
    size_t nbackends;
    int workers;
    bool check;
};

/* Parse argv into o: -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct cli *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV() do { if (v == NULL) { fprintf(stderr, "sluice: %s needs a value\n%s", a, usage); return 1; } i++; } while (0)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("sluice %s\n", SLUICE_VERSION);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            o->check = true;
        } else if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            NEEDV(); o->config = v;
        } else if (strcmp(a, "--listen") == 0) {
            NEEDV(); o->listen = v;
        } else if (strcmp(a, "--backend") == 0) {
            NEEDV(); o->backends[o->nbackends++] = v;
        } else if (strcmp(a, "--workers") == 0) {
            NEEDV();
            char *end;
            long n = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || n < 0 || n > 1024) {
                fprintf(stderr, "sluice: --workers: must be an integer 0..1024\n");
                return 1;
            }
            o->workers = (int)n;
        } else if (strcmp(a, "--admin") == 0) {
            NEEDV(); o->admin = v;
        } else if (strcmp(a, "--tls-cert") == 0) {
            NEEDV(); o->tls_cert = v;
        } else if (strcmp(a, "--tls-key") == 0) {
            NEEDV(); o->tls_key = v;
        } else {
            fprintf(stderr, "sluice: unknown argument: %s\n%s", a, usage);
            return 1;
        }
#undef NEEDV
    }
    return -1;
}

/* The config the command line names: a file, or quick mode.  NULL after
 * saying why on stderr. */
static struct sl_config *load_config(const struct cli *o)
{
    struct cfg_errors errs = { 0 };
    struct sl_config *cfg;

    if (o->config && (o->listen || o->nbackends)) {
        fprintf(stderr, "sluice: --config and quick mode (--listen/--backend) are exclusive\n%s", usage);
        return NULL;
    }
    if (o->config && o->admin) {
        fprintf(stderr, "sluice: --admin is for quick mode; put \"admin\" in the config file\n");
        return NULL;
    }
    if (o->config) {
        cfg = load_file(o->config);
        if (cfg && o->workers)
            fprintf(stderr, "sluice: --workers is for quick mode; the config's \"workers\" is used\n");
        return cfg;
    }
    if (!o->listen && o->nbackends == 0) {
        fputs(usage, stderr);
        return NULL;
    }
    if (!o->listen || o->nbackends == 0) {
        fprintf(stderr, "sluice: quick mode needs --listen and at least one --backend\n%s", usage);
        return NULL;
    }
    cfg = cfg_quick(o->listen, o->backends, o->nbackends, o->workers, o->admin, o->tls_cert,
                    o->tls_key, &errs);
    if (cfg == NULL) {
        print_errors("sluice: ", &errs);
        cfg_errors_clear(&errs);
    }
    return cfg;
}

/* Descriptors, workers count, the first snapshot published: NULL on error. */
static struct gw_snapshot *first_snapshot(struct sl_config *cfg, struct gw_tls_set *tls,
                                          const char *config)
{
    char err[512];

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;      /* every connection is a descriptor */
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    M.config_path = config;
    M.nworkers = cfg->workers ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (M.nworkers < 1)
        M.nworkers = 1;
    struct gw_snapshot *s = gw_snapshot_build(cfg, tls, NULL, M.nworkers, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "sluice: %s\n", err);
        return NULL;
    }
    gw_snapshot_publish(s);
    for (size_t i = 0; i < s->cfg->nlisteners; i++)
        fprintf(stderr, "sluice: listening on %s\n", s->listeners[i]->text);
    return s;
}

static struct event *sigs[3];       /* SIGTERM, SIGINT, SIGHUP */

/* Workers, the admin thread, the main loop until a stop signal.  The exit
 * status. */
static int serve(const struct gw_snapshot *s)
{
    char err[512];

    gw_metrics_started();
    M.workers = calloc((size_t)M.nworkers, sizeof(*M.workers));
    M.base = event_base_new();
    g_workers = M.workers;
    g_nworkers = M.nworkers;
    if (M.workers == NULL || M.base == NULL) {
        fprintf(stderr, "sluice: out of memory\n");
        return 2;
    }
    /* Handlers first: once the workers run, the listeners accept, and a
     * SIGTERM or SIGHUP must not find the default action (death). */
    int signums[3] = { SIGTERM, SIGINT, SIGHUP };
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(M.base, signums[i], on_signal, NULL);
        event_add(sigs[i], NULL);
    }
    /* before the workers: a failure here has nothing to stop */
    if (hc_prober_start() != 0) {
        fprintf(stderr, "sluice: cannot start the health prober\n");
        return 2;
    }
    if (gw_workers_start(M.workers, M.nworkers) != 0) {
        fprintf(stderr, "sluice: cannot start workers\n");
        return 2;
    }
    if (s->cfg->has_admin && gw_admin_start(&s->cfg->admin_addr, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: %s\n", err);
        for (int i = 0; i < M.nworkers; i++)
            gw_worker_command(&M.workers[i], GW_CMD_STOP);
        for (int i = 0; i < M.nworkers; i++)
            pthread_join(M.workers[i].thread, NULL);
        return 2;
    }
    /* last: its callback reloads, which commands the workers */
    if (up_dns_start(dns_changed) != 0)
        gw_log(GW_LOG_ERROR, "cannot start the resolver thread: DNS names are not re-resolved");
    gw_log(GW_LOG_INFO, "sluice %s started: %d worker%s, config version %llu", SLUICE_VERSION,
           M.nworkers, M.nworkers == 1 ? "" : "s", (unsigned long long)s->version);

    struct timeval reap_tv = { 0, 250000 };
    struct event *reap = event_new(M.base, -1, EV_PERSIST, reap_cb, NULL);
    event_add(reap, &reap_tv);
    struct timeval rot_tv = { GW_TLS_TICKET_ROTATE_S, 0 };
    struct event *rot = event_new(M.base, -1, EV_PERSIST, rotate_cb, NULL);
    event_add(rot, &rot_tv);
    event_base_dispatch(M.base);
    event_free(rot);
    event_free(reap);
    return 0;
}

/* After the main loop: admin first (it reads the workers' counters), the
 * workers drained, every shared object released. */
static void shut_down(void)
{
    up_dns_stop();      /* no reload from it any more */
    gw_admin_stop();
    pthread_mutex_lock(&g_snap_lock);
    uint32_t drain_ms = g_snap->cfg->drain_ms;
    pthread_mutex_unlock(&g_snap_lock);
    drain_and_stop(drain_ms);
    hc_prober_stop();
    for (int i = 0; i < 3; i++)     /* held through the drain: a second signal is not death */
        event_free(sigs[i]);
    event_base_free(M.base);
    free(M.workers);
    pthread_mutex_lock(&g_snap_lock);
    struct gw_snapshot *last = g_snap;
    g_snap = NULL;
    pthread_mutex_unlock(&g_snap_lock);
    gw_snapshot_unref(last);
    gw_snapshot_reap();
    hc_shutdown();
    gw_tls_global_free();
    gw_log(GW_LOG_INFO, "stopped");
}

int main(int argc, char **argv)
{
    const char *backends[argc + 1];
    struct cli o = { .backends = backends };
    struct cfg_errors errs = { 0 };

    /* A reload builds a whole config (for 10,000 routes some 20 MB of parse
     * tree, arena chunks and tables) and then frees the old one.  By default
     * glibc hands every block over 128 KiB back with munmap and trims freed
     * heap tops, so each PUT faulted the same memory in afresh, zeroed: a
     * third of its CPU.  Keep up to 64 MiB of freed heap per arena for the
     * next reload instead, and serve blocks up to 4 MiB from the heap. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);

    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    struct sl_config *cfg = load_config(&o);
    if (cfg == NULL)
        return 1;
    gw_tls_global_init();
    struct gw_tls_set *tls = gw_tls_set_build(cfg, &errs);
    if (tls == NULL) {
        print_errors(o.config ? "" : "sluice: ", &errs);
        cfg_errors_clear(&errs);
        cfg_free(cfg);
        return 1;
    }
    if (o.check) {
        gw_tls_set_free(tls);
        cfg_free(cfg);
        printf("%s: configuration OK\n", o.config ? o.config : "quick mode");
        return 0;
    }
    struct gw_snapshot *s = first_snapshot(cfg, tls, o.config);
    if (s == NULL)
        return 2;
    rc = serve(s);
    if (rc != 0)
        return rc;
    shut_down();
    return 0;
}
