/* reload.c - the one path by which a new config document is applied:
 * PUT /config and SIGHUP both come here. */
#include "reload.h"
#include "snapshot.h"
#include "worker.h"
#include "tls.h"
#include "../core/log.h"

#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t g_reloads_ok, g_reloads_err;

/* Reloads are serialised: g_snap is only replaced under this lock, so a
 * holder may read it without g_snap_lock. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Building a config takes a core for milliseconds (about 10 for 10,000
 * routes), and the workers may be on that core.  At normal priority the
 * build gets half of it while a worker is busy, and every request on that
 * worker waits.  So the build runs at SCHED_IDLE: it uses what the workers
 * leave, and a worker that wakes takes the core back at once.  A core the
 * workers keep busy would starve it, so a watchdog thread raises the
 * builder in two steps: after BUILD_IDLE_MS of wall time to nice
 * BUILD_LOW_NICE (about a quarter of a core shared with one busy worker),
 * and BUILD_LOW_MS later back to its own priority.  Latency first, and an
 * apply still done in bounded time.  (The builder cannot raise itself:
 * starved, it would not run to notice.)  A worker slowed by a quarter for
 * twice as long keeps p99 lower than one slowed by half: p99 is set by the
 * worst percent of requests.  The admin thread also goes idle from the
 * head of a big PUT /config (gw_reload_idle_begin), so upload and build are
 * timed together.  One thread is the builder at a time (W.tid); another
 * that would build meanwhile (a SIGHUP) keeps its priority.
 *
 * The builder also gives the core back itself, after every BUILD_TURN_US
 * of CPU (gw_build_pace: sched_yield between routes and between reads).  A
 * worker that stays busy never wakes, so nothing preempts a builder that
 * got the core from it but the next tick: 4 ms at HZ=250, and a raised
 * build took the core for 1.5-4 ms at a time (perf sched), three times p99
 * under the bench's load.  A fair thread's own slice (sched_setattr's
 * sched_runtime) does not help there: the kernel checks it at the tick too.
 * Yielding, the builder runs no longer than a turn while a worker waits,
 * and at once again when none does.  Short turns are slow turns on a busy
 * core (a raised builder gets one about every tick), so they grow as the
 * watchdog raises the build: BUILD_TURN_US at idle priority, three times
 * that at nice 5, ten times back at normal priority, where what matters
 * most is that the apply ends (under 100 ms for 10,000 routes).
 */
#define BUILD_IDLE_MS  40
#define BUILD_LOW_MS   30
#define BUILD_LOW_NICE 5
#define BUILD_TURN_US  100

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started;
    int stage;                      /* 0 no build, 1 at SCHED_IDLE, 2 at BUILD_LOW_NICE */
    pid_t tid;                      /* the builder, 0 = none: one at a time */
    bool build;                     /* a build (or a PUT's upload), not only admin answers */
    bool asleep;                    /* the watchdog waits for a phase (no deadline) */
    int policy, nice;               /* and its own scheduling */
    struct sched_param param;
    struct timespec deadline;       /* CLOCK_MONOTONIC: the next step */
} W = { .lock = PTHREAD_MUTEX_INITIALIZER };
static _Atomic uint64_t g_builds_escalated, g_routes_reused, g_index_shared, g_build_yields;
static _Atomic unsigned g_turn_us;      /* the builder's turn now */

static void deadline_in(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_nsec += ms * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec += t->tv_nsec / 1000000000L;
        t->tv_nsec %= 1000000000L;
    }
}

static bool deadline_past(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void *watchdog_main(void *arg)
{
    pthread_setname_np(pthread_self(), "sluice-watchdog");   /* as ps -L and top -H show it */
    (void)arg;
    pthread_mutex_lock(&W.lock);
    for (;;) {
        while (W.stage == 0) {
            W.asleep = true;
            pthread_cond_wait(&W.cond, &W.lock);
            W.asleep = false;
        }
        /* a phase may have ended and another begun, later, without a
         * signal (admin answers do not wake it): the deadline decides */
        if (pthread_cond_timedwait(&W.cond, &W.lock, &W.deadline) != ETIMEDOUT || W.stage == 0 ||
            !deadline_past(&W.deadline))
            continue;
        if (W.stage == 1) {
            /* nice first, then the policy: never above the thread's own */
            setpriority(PRIO_PROCESS, (id_t)W.tid, W.nice > BUILD_LOW_NICE ? W.nice : BUILD_LOW_NICE);
            sched_setscheduler(W.tid, W.policy, &W.param);
            if (W.build)
                atomic_fetch_add(&g_builds_escalated, 1);
            atomic_store_explicit(&g_turn_us, 3 * BUILD_TURN_US, memory_order_relaxed);
            W.stage = 2;
            deadline_in(&W.deadline, BUILD_LOW_MS);
        } else {
            setpriority(PRIO_PROCESS, (id_t)W.tid, W.nice);
            atomic_store_explicit(&g_turn_us, 10 * BUILD_TURN_US, memory_order_relaxed);
            W.stage = 0;
        }
    }
    return NULL;
}

static bool watchdog_start(void)
{
    pthread_condattr_t ca;
    pthread_t t;
    sigset_t all, old;
    int rc;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&W.cond, &ca);
    pthread_condattr_destroy(&ca);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);     /* signals stay with the main thread */
    rc = pthread_create(&t, NULL, watchdog_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return false;
    pthread_detach(t);
    return true;
}

/* Leaving SCHED_IDLE takes CAP_SYS_NICE, or an RLIMIT_NICE that allows
 * the thread's nice value (systemd: LimitNICE=+0).  Without either, a
 * thread that went idle would stay idle: then builds keep their priority. */
static bool may_leave_idle(int nice_now)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    struct rlimit rl;

    if (getrlimit(RLIMIT_NICE, &rl) == 0 &&
        (rl.rlim_cur == RLIM_INFINITY || (rlim_t)(20 - nice_now) <= rl.rlim_cur))
        return true;
    memset(d, 0, sizeof(d));
    return syscall(SYS_capget, &h, d) == 0 &&
           (d[CAP_SYS_NICE / 32].effective & (1u << (CAP_SYS_NICE % 32))) != 0;
}

/* Whether this thread is the builder (see build_begin), and the thread CPU
 * time (ns) at its last turn's start. */
static __thread bool t_idle;
static __thread uint64_t t_turn_ns;

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void gw_build_pace(void)
{
    if (!t_idle)
        return;
    uint64_t now = thread_cpu_ns();
    if (now - t_turn_ns < atomic_load_explicit(&g_turn_us, memory_order_relaxed) * 1000ull)
        return;
    sched_yield();
    atomic_fetch_add_explicit(&g_build_yields, 1, memory_order_relaxed);
    t_turn_ns = thread_cpu_ns();
}

/* Drops the calling thread to SCHED_IDLE for a build (or, build false,
 * for admin answers: gw_admin_idle_begin); false if it stays (then so does
 * its priority).  True at once if it is already there: the admin thread may
 * have started at the head of a PUT (gw_reload_idle_begin), or for a batch
 * of /stats answers.  One builder at a time: while another thread is one,
 * this returns false. */
static bool idle_begin(bool build)
{
    struct sched_param zero = { 0 };
    int policy = sched_getscheduler(0);

    if (t_idle) {
        if (build && !W.build) {
            pthread_mutex_lock(&W.lock);
            W.build = true;
            pthread_mutex_unlock(&W.lock);
        }
        return true;
    }
    if (policy != SCHED_OTHER && policy != SCHED_BATCH)
        return false;       /* real-time or idle already: the operator chose */
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, 0);
    if (errno != 0 || !may_leave_idle(nice_now))
        return false;
    pthread_mutex_lock(&W.lock);
    if (!W.started)
        W.started = watchdog_start();
    if (!W.started || W.tid != 0 || sched_setscheduler(0, SCHED_IDLE, &zero) != 0) {
        pthread_mutex_unlock(&W.lock);
        return false;
    }
    W.tid = gettid();
    W.build = build;
    W.policy = policy;
    W.nice = nice_now;
    sched_getparam(0, &W.param);
    deadline_in(&W.deadline, BUILD_IDLE_MS);
    W.stage = 1;
    atomic_store_explicit(&g_turn_us, BUILD_TURN_US, memory_order_relaxed);
    t_idle = true;
    t_turn_ns = thread_cpu_ns();
    /* Admin answers come a thousand a second: the watchdog is woken only
     * when it has no deadline; one it waits for already comes first. */
    if (build || W.asleep)
        pthread_cond_signal(&W.cond);
    pthread_mutex_unlock(&W.lock);
    return true;
}

static bool build_begin(void)
{
    return idle_begin(true);
}

static void build_end(bool *idle)
{
    if (!*idle)
        return;
    *idle = false;
    if (!t_idle)
        return;         /* ended already (a PUT's build ends what its receive began) */
    t_idle = false;
    pthread_mutex_lock(&W.lock);
    W.stage = 0;
    W.tid = 0;
    sched_setscheduler(0, W.policy, &W.param);
    setpriority(PRIO_PROCESS, 0, W.nice);
    if (W.build)
        pthread_cond_signal(&W.cond);   /* an admin answer's end: it notices at its deadline */
    pthread_mutex_unlock(&W.lock);
}

void gw_reload_idle_begin(void)
{
    (void)build_begin();
}

void gw_reload_idle_end(void)
{
    bool idle = t_idle;

    build_end(&idle);
}

bool gw_admin_idle_begin(void)
{
    return idle_begin(false);
}

bool gw_reload_idle_now(void)
{
    return t_idle;
}

uint64_t gw_builds_escalated(void)
{
    return atomic_load(&g_builds_escalated);
}

uint64_t gw_build_yields(void)
{
    return atomic_load(&g_build_yields);
}

uint64_t gw_reload_routes_reused(void)
{
    return atomic_load(&g_routes_reused);
}

uint64_t gw_reload_index_kept(void)
{
    return atomic_load(&g_index_shared);
}

static bool same_admin(const struct sl_config *a, const struct sl_config *b)
{
    if (a->has_admin != b->has_admin)
        return false;
    return !a->has_admin || (a->admin_addr.salen == b->admin_addr.salen &&
                             memcmp(&a->admin_addr.sa, &b->admin_addr.sa, a->admin_addr.salen) == 0);
}

static int apply_locked(const char *json, size_t len, const char *origin,
                        struct cfg_errors *errs, uint64_t *version);

/* Its own lock, not reload_lock: a reader (the admin thread) must not wait
 * for a build. */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_reload_last last;

void gw_reload_last(struct gw_reload_last *out)
{
    pthread_mutex_lock(&last_lock);
    *out = last;
    pthread_mutex_unlock(&last_lock);
}

static void note_last(bool ok, uint64_t version, double took_ms, const char *origin,
                      const struct cfg_errors *errs)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&last_lock);
    last.time_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    last.ok = ok;
    last.version = version;
    last.took_ms = took_ms;
    snprintf(last.origin, sizeof(last.origin), "%s", origin);
    if (ok || errs->n == 0)
        snprintf(last.error, sizeof(last.error), "%s", ok ? "" : "refused");
    else
        snprintf(last.error, sizeof(last.error), "%s%s%s", errs->v[0].path,
                 errs->v[0].path[0] ? ": " : "", errs->v[0].message);
    pthread_mutex_unlock(&last_lock);
}

int gw_config_apply(const char *json, size_t len, const char *origin,
                    struct cfg_errors *errs, uint64_t *version)
{
    pthread_mutex_lock(&reload_lock);
    int rc = apply_locked(json, len, origin, errs, version);
    pthread_mutex_unlock(&reload_lock);
    return rc;
}

int gw_config_reapply(const char *origin, uint64_t *version)
{
    struct cfg_errors errs = { 0 };
    int rc = -1;

    pthread_mutex_lock(&reload_lock);
    /* the document running now (g_snap changes only under reload_lock), not
     * one read before a PUT /config won */
    char *doc = g_snap && g_snap->cfg->source ? strdup(g_snap->cfg->source) : NULL;
    if (doc)
        rc = apply_locked(doc, strlen(doc), origin, &errs, version);
    pthread_mutex_unlock(&reload_lock);
    free(doc);
    cfg_errors_clear(&errs);
    return rc;
}

static int apply_locked(const char *json, size_t len, const char *origin,
                        struct cfg_errors *errs, uint64_t *version)
{
    char err[512];
    size_t reused = 0, nroutes = 0;
    bool index_shared = false;
    int rc = -1;

    cfg_pace_hook = gw_build_pace;      /* every parse after start-up is here */
    const struct sl_config *cur = g_snap->cfg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool idle = build_begin();
    struct sl_config *cfg = cfg_parse_update(json, len, errs, cur);
    if (cfg == NULL)
        goto out;
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
    reused = cfg->routes_reused;
    nroutes = cfg->nroutes;
    index_shared = s->rt_shared;
    /* back to normal priority before taking the lock workers also take */
    build_end(&idle);
    gw_snapshot_publish(s);
    *version = s->version;
    for (int i = 0; i < g_nworkers; i++)
        gw_worker_command(&g_workers[i], GW_CMD_SNAPSHOT);
    rc = 0;
out:
    build_end(&idle);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    note_last(rc == 0, rc == 0 ? *version : g_snap->version, took_ms, origin, errs);
    if (rc == 0) {
        atomic_fetch_add(&g_reloads_ok, 1);
        atomic_fetch_add(&g_routes_reused, reused);
        atomic_fetch_add(&g_index_shared, index_shared);
        gw_log(GW_LOG_INFO, "%s: config version %llu applied in %.1f ms (%zu of %zu routes unchanged, "
               "route index %s)", origin, (unsigned long long)*version, took_ms,
               reused, nroutes, index_shared ? "kept" : "rebuilt");
    } else {
        atomic_fetch_add(&g_reloads_err, 1);
        for (size_t i = 0; i < errs->n; i++)
            gw_log(GW_LOG_ERROR, "%s refused: %s%s%s", origin, errs->v[i].path,
                   errs->v[i].path[0] ? ": " : "", errs->v[i].message);
    }
    return rc;
}
