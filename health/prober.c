/* prober.c - the active health prober: its own thread and event loop,
 * every due probe in flight at once, non-blocking (see health.h). */
#include "hc_int.h"
#include "../core/io.h"
#include "../core/log.h"
#include "../core/ltimer.h"
#include "../core/tls_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TICK_MS 50              /* due probes and ended ejections are looked at this often */
#define BATCH 64

enum phase { P_CONNECT, P_HANDSHAKE, P_SEND, P_RECV };

struct probe {
    struct probe *next, *prev;
    struct hc_probe_req r;
    struct gw_io io;
    struct event ev, tmo;
    enum phase phase;
    short want;                 /* EV_READ or EV_WRITE for the next step */
    char req[700];
    size_t req_len, req_off;
    char buf[128];
    size_t got;
};

static struct {
    pthread_t thread;
    bool running;
    _Atomic bool stop;
    struct event_base *base;
    struct event *tick;
    struct probe *live;
    uint32_t rnd;
} P;

static uint32_t rnd(void)
{
    /* xorshift32: jitter only */
    uint32_t x = P.rnd;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return P.rnd = x;
}

static void probe_free(struct probe *p)
{
    event_del(&p->ev);
    event_del(&p->tmo);
    if (p->io.ctx)
        gw_tls_close(&p->io);
    if (p->io.fd >= 0)
        close(p->io.fd);
    if (p->prev)
        p->prev->next = p->next;
    else
        P.live = p->next;
    if (p->next)
        p->next->prev = p->prev;
    SSL_CTX_free(p->r.tls);
    free(p);
}

static void probe_done(struct probe *p, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void probe_done(struct probe *p, bool ok, const char *fmt, ...)
{
    char why[96];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    hc_probe_result(p->r.t, ok, why, lt_now_ms());
    probe_free(p);
}

static void probe_step(evutil_socket_t fd, short what, void *arg);

static void probe_wait(struct probe *p, short what)
{
    event_del(&p->ev);
    event_assign(&p->ev, P.base, p->io.fd, what, probe_step, p);
    event_add(&p->ev, NULL);
}

/* "HTTP/1.x NNN": the status, or -1 while incomplete, -2 when it is not one. */
static int status_of(const char *b, size_t n)
{
    if (n < 12)
        return memchr(b, '\n', n) ? -2 : -1;
    if (memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ' || b[9] < '1' || b[9] > '5' ||
        b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9')
        return -2;
    return (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
}

static void probe_step(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    char why[80];

    if (p->phase == P_CONNECT) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(p->io.fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1)
            err = errno;
        if (err != 0)
            return probe_done(p, false, "connect: %s", strerror(err));
        if (p->r.tls) {
            char ip[INET6_ADDRSTRLEN] = "";
            const void *a = p->r.sa.ss_family == AF_INET6
                                ? (const void *)&((const struct sockaddr_in6 *)&p->r.sa)->sin6_addr
                                : (const void *)&((const struct sockaddr_in *)&p->r.sa)->sin_addr;
            inet_ntop(p->r.sa.ss_family, a, ip, sizeof(ip));
            SSL *ssl = gw_tls_client_new(p->r.tls, p->io.fd, p->r.sni[0] ? p->r.sni : NULL,
                                         p->r.verify, ip, NULL);
            if (ssl == NULL)
                return probe_done(p, false, "TLS: cannot start");
            if (!gw_tls_attach(&p->io, ssl)) {
                SSL_free(ssl);
                return probe_done(p, false, "TLS: out of memory");
            }
            p->phase = P_HANDSHAKE;
        } else {
            p->phase = P_SEND;
        }
    }
    if (p->phase == P_HANDSHAKE) {
        switch (gw_tls_handshake(&p->io, why, sizeof(why))) {
        case GW_HS_DONE: {
            bool tx, rx;
            gw_tls_pick_ops(&p->io, &tx, &rx);
            p->phase = P_SEND;
            break;
        }
        case GW_HS_WANT_READ:
            return probe_wait(p, EV_READ);
        case GW_HS_WANT_WRITE:
            return probe_wait(p, EV_WRITE);
        case GW_HS_PLAINTEXT:
            return probe_done(p, false, "TLS handshake: the target speaks plain HTTP");
        default:
            return probe_done(p, false, "TLS handshake: %s", why);
        }
    }
    if (p->phase == P_SEND) {
        while (p->req_off < p->req_len) {
            struct iovec iov = { p->req + p->req_off, p->req_len - p->req_off };
            ssize_t n = gw_io_writev(&p->io, &iov, 1);
            if (n == GW_IO_AGAIN)
                return probe_wait(p, EV_WRITE);
            if (n < 0)
                return probe_done(p, false, "send: %s", strerror(errno));
            p->req_off += (size_t)n;
        }
        p->phase = P_RECV;
    }
    for (;;) {
        ssize_t n = gw_io_read(&p->io, p->buf + p->got, sizeof(p->buf) - p->got);
        if (n == GW_IO_AGAIN)
            return probe_wait(p, EV_READ);
        if (n == 0)
            return probe_done(p, false, "closed before a response");
        if (n < 0)
            return probe_done(p, false, "%s before a response",
                              errno == ECONNRESET ? "reset" : strerror(errno));
        p->got += (size_t)n;
        int st = status_of(p->buf, p->got);
        if (st == -1 && p->got < sizeof(p->buf))
            continue;
        if (st < 0)
            return probe_done(p, false, "not an HTTP response");
        bool ok = st >= p->r.check.status_lo && st <= p->r.check.status_hi;
        return probe_done(p, ok, "status %d", st);
    }
}

static void probe_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;

    probe_done(p, false, "timeout after %u ms", p->r.check.timeout_ms);
}

static void probe_start(const struct hc_probe_req *r)
{
    struct probe *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        struct hc_probe_req copy = *r;
        hc_probe_result(copy.t, false, "out of memory", lt_now_ms());
        SSL_CTX_free(copy.tls);
        return;
    }
    p->r = *r;
    p->io.fd = -1;
    p->io.ops = &gw_io_plain;
    p->next = P.live;
    if (P.live)
        P.live->prev = p;
    P.live = p;
    event_assign(&p->ev, P.base, -1, 0, probe_step, p);
    evtimer_assign(&p->tmo, P.base, probe_timeout, p);
    struct timeval tv = { p->r.check.timeout_ms / 1000, (p->r.check.timeout_ms % 1000) * 1000 };
    evtimer_add(&p->tmo, &tv);
    int n = snprintf(p->req, sizeof(p->req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-health\r\n"
                     "Connection: close\r\n\r\n", p->r.check.path, p->r.host);
    p->req_len = n > 0 && (size_t)n < sizeof(p->req) ? (size_t)n : 0;
    p->io.fd = socket(p->r.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->io.fd == -1)
        return probe_done(p, false, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(p->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p->phase = P_CONNECT;
    if (connect(p->io.fd, (struct sockaddr *)&p->r.sa, p->r.salen) == -1 && errno != EINPROGRESS)
        return probe_done(p, false, "connect: %s", strerror(errno));
    probe_wait(p, EV_WRITE);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hc_probe_req due[BATCH];
    size_t n;

    if (atomic_load(&P.stop)) {
        event_base_loopbreak(P.base);
        return;
    }
    uint64_t now = lt_now_ms();
    hc_tick(now);
    do {
        n = hc_due(now, due, BATCH, rnd);
        for (size_t i = 0; i < n; i++)
            probe_start(&due[i]);
    } while (n == BATCH);
}

static void *prober_main(void *arg)
{
    pthread_setname_np(pthread_self(), "sluice-health");   /* as ps -L and top -H show it */
    event_base_dispatch(P.base);
    while (P.live)
        probe_free(P.live);
    return NULL;
}

int hc_prober_start(void)
{
    sigset_t all, old;

    if (P.running)
        return 0;
    P.rnd = (uint32_t)lt_mono_ns() | 1;
    atomic_store(&P.stop, false);
    P.base = event_base_new();
    if (P.base == NULL)
        return -1;
    P.tick = event_new(P.base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = { 0, TICK_MS * 1000 };
    if (P.tick == NULL || event_add(P.tick, &tv) != 0)
        goto fail;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);     /* signals stay with the main thread */
    int rc = pthread_create(&P.thread, NULL, prober_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        goto fail;
    P.running = true;
    return 0;
fail:
    if (P.tick)
        event_free(P.tick);
    event_base_free(P.base);
    P.tick = NULL;
    P.base = NULL;
    return -1;
}

void hc_prober_stop(void)
{
    if (!P.running)
        return;
    atomic_store(&P.stop, true);        /* the next tick ends the loop */
    pthread_join(P.thread, NULL);
    event_free(P.tick);
    event_base_free(P.base);
    P.tick = NULL;
    P.base = NULL;
    P.running = false;
}
