/* reload.c - the one path by which a new config document is applied:
 * PUT /config and SIGHUP both come here. */
#include "gateway.h"
#include "tls.h"

#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct gw_worker *g_workers;
int g_nworkers;
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
 * Raised, the builder also asks for a short slice (BUILD_SLICE_US, the
 * sched_runtime of a fair task; Linux 6.12 and later, ignored before).  The
 * kernel's default slice is about 1.5 ms on two cores, and the first turn a
 * raised builder got was that long: every request on the worker waited for
 * it, and a p99 of about a millisecond became several.  In 100 µs turns the
 * builder gets the same share of the core, and a request waits a tenth as
 * long for it.  After the build the thread is back at the kernel's slice
 * (a thread's own slice cannot be told from the kernel's by reading it, so
 * one an operator gave the admin thread would not survive a build).
 */
#define BUILD_IDLE_MS  40
#define BUILD_LOW_MS   40
#define BUILD_LOW_NICE 5
#define BUILD_SLICE_US 100

/* sched_setattr(2)'s argument (glibc 2.36 has no wrapper, and
 * <linux/sched/types.h> clashes with <sched.h>). */
struct sl_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};

/* Sets thread tid (0: the caller) to policy at nice with a slice of
 * slice_ns (0: the kernel's); false if the kernel refused.  Real-time
 * policies never come here: build_begin leaves their threads alone. */
static bool sched_set(pid_t tid, int policy, int nice, uint64_t slice_ns)
{
    struct sl_sched_attr a = {
        .size = sizeof(a), .sched_policy = (uint32_t)policy, .sched_nice = nice,
        .sched_runtime = slice_ns,
    };

    return syscall(SYS_sched_setattr, tid, &a, 0u) == 0;
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started;
    int stage;                      /* 0 no build, 1 at SCHED_IDLE, 2 at BUILD_LOW_NICE */
    pid_t tid;                      /* the builder, 0 = none: one at a time */
    int policy, nice;               /* and its own scheduling */
    struct timespec deadline;       /* CLOCK_MONOTONIC: the next step */
} W = { .lock = PTHREAD_MUTEX_INITIALIZER };
static _Atomic uint64_t g_builds_escalated, g_routes_reused, g_index_shared;

static void deadline_in(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_nsec += ms * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec += t->tv_nsec / 1000000000L;
        t->tv_nsec %= 1000000000L;
    }
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&W.lock);
    for (;;) {
        while (W.stage == 0)
            pthread_cond_wait(&W.cond, &W.lock);
        if (pthread_cond_timedwait(&W.cond, &W.lock, &W.deadline) != ETIMEDOUT || W.stage == 0)
            continue;
        if (W.stage == 1) {
            /* never above the thread's own priority */
            sched_set(W.tid, W.policy, W.nice > BUILD_LOW_NICE ? W.nice : BUILD_LOW_NICE,
                      BUILD_SLICE_US * 1000u);
            atomic_fetch_add(&g_builds_escalated, 1);
            W.stage = 2;
            deadline_in(&W.deadline, BUILD_LOW_MS);
        } else {
            sched_set(W.tid, W.policy, W.nice, BUILD_SLICE_US * 1000u);     /* the short slice stays */
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

/* Whether this thread is the builder (see build_begin). */
static __thread bool t_idle;

/* Drops the calling thread to SCHED_IDLE for a build; false if it stays
 * (then so does its priority).  True at once if it is already there: the
 * admin thread may have started at the head of a PUT (gw_reload_idle_begin).
 * One builder at a time: while another thread is one, this returns false. */
static bool build_begin(void)
{
    int policy = sched_getscheduler(0);

    if (t_idle)
        return true;
    if (policy != SCHED_OTHER && policy != SCHED_BATCH)
        return false;       /* real-time or idle already: the operator chose */
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, 0);
    if (errno != 0 || !may_leave_idle(nice_now))
        return false;
    pthread_mutex_lock(&W.lock);
    if (!W.started)
        W.started = watchdog_start();
    if (!W.started || W.tid != 0 || !sched_set(0, SCHED_IDLE, 0, 0)) {
        pthread_mutex_unlock(&W.lock);
        return false;
    }
    W.tid = gettid();
    W.policy = policy;
    W.nice = nice_now;
    deadline_in(&W.deadline, BUILD_IDLE_MS);
    W.stage = 1;
    t_idle = true;
    pthread_cond_signal(&W.cond);
    pthread_mutex_unlock(&W.lock);
    return true;
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
    sched_set(0, W.policy, W.nice, 0);
    pthread_cond_signal(&W.cond);
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

uint64_t gw_builds_escalated(void)
{
    return atomic_load(&g_builds_escalated);
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

int gw_config_apply(const char *json, size_t len, const char *origin,
                    struct cfg_errors *errs, uint64_t *version)
{
    char err[512];
    size_t reused = 0, nroutes = 0;
    bool index_shared = false;
    int rc = -1;

    pthread_mutex_lock(&reload_lock);
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
    if (rc == 0) {
        atomic_fetch_add(&g_reloads_ok, 1);
        atomic_fetch_add(&g_routes_reused, reused);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        atomic_fetch_add(&g_index_shared, index_shared);
        gw_log(GW_LOG_INFO, "%s: config version %llu applied in %.1f ms (%zu of %zu routes unchanged, "
               "route index %s)", origin, (unsigned long long)*version,
               (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
               reused, nroutes, index_shared ? "kept" : "rebuilt");
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
