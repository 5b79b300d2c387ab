/*
 * stats_poll.c - many dashboards polling sluice's admin GET /stats (the
 * bench's "stats" scenario): CONNS kept-alive connections, each asking
 * once every INTERVAL_MS (0: again as soon as an answer is in), their
 * starts spread evenly over the interval as independent pages would be.
 *
 *   stats_poll PORT TOKEN CONNS INTERVAL_MS SECONDS
 *
 * Connects every connection first and prints "ready"; then polls for
 * SECONDS and prints one JSON line: polls answered 200, errors (other
 * statuses, closed or refused connections), body bytes, and the answers'
 * round-trip p50/p99/max in ms.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    bool busy;                  /* a request is out, its answer not yet in */
    uint64_t sent_us, next_us;
    char *buf;
    size_t len, cap;
};

static int port, nconns, interval_ms;
static char req[512];
static size_t req_len;
static uint64_t polls, errors, bytes;
static uint32_t *lat;           /* round trips, µs */
static size_t nlat, caplat;

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static int dial(int ep, struct conn *c)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd == -1 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        if (c->fd != -1)
            close(c->fd);
        c->fd = -1;
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->busy = false;
    c->len = 0;
    return 0;
}

static void redial(int ep, struct conn *c)
{
    errors++;
    if (c->fd != -1)
        close(c->fd);
    c->fd = -1;
    dial(ep, c);
    c->next_us = now_us() + (interval_ms ? (uint64_t)interval_ms * 1000 : 1000);
}

static void send_req(int ep, struct conn *c, uint64_t now)
{
    if (c->fd == -1 && dial(ep, c) == -1) {
        errors++;
        c->next_us = now + 100000;
        return;
    }
    if (write(c->fd, req, req_len) != (ssize_t)req_len) {
        redial(ep, c);
        return;
    }
    c->busy = true;
    c->sent_us = now;
}

/* 1: an answer is complete (and consumed), 0: more to read, -1: bad. */
static int answer(struct conn *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);

    if (end == NULL)
        return c->len > 65536 ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    long clen = -1;
    for (char *p = c->buf; p < end; p++) {
        if (*p == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0)
            clen = strtol(p + 16, NULL, 10);
    }
    if (clen < 0)
        return -1;
    if (c->len < head + (size_t)clen)
        return 0;
    if (strncmp(c->buf, "HTTP/1.1 200 ", 13) == 0) {
        polls++;
        bytes += (uint64_t)clen;
    } else {
        errors++;
    }
    memmove(c->buf, c->buf + head + clen, c->len - head - (size_t)clen);
    c->len -= head + (size_t)clen;
    return 1;
}

static void on_read(int ep, struct conn *c, uint64_t now)
{
    for (;;) {
        if (c->cap - c->len < 16384) {
            c->cap = c->cap ? c->cap * 2 : 32768;
            c->buf = realloc(c->buf, c->cap);
            if (c->buf == NULL)
                abort();
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        redial(ep, c);          /* closed or reset */
        return;
    }
    int k = answer(c);
    if (k < 0) {
        redial(ep, c);
        return;
    }
    if (k == 0 || !c->busy)
        return;
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 65536;
        lat = realloc(lat, caplat * sizeof(*lat));
        if (lat == NULL)
            abort();
    }
    lat[nlat++] = (uint32_t)(now - c->sent_us);
    c->busy = false;
    c->next_us = interval_ms ? c->sent_us + (uint64_t)interval_ms * 1000 : now;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: stats_poll PORT TOKEN CONNS INTERVAL_MS SECONDS\n");
        return 2;
    }
    port = atoi(argv[1]);
    nconns = atoi(argv[3]);
    interval_ms = atoi(argv[4]);
    double seconds = atof(argv[5]);
    req_len = (size_t)snprintf(req, sizeof(req), "GET /stats HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                               "Authorization: Bearer %s\r\n\r\n", port, argv[2]);
    int ep = epoll_create1(0);
    struct conn *cs = calloc((size_t)nconns, sizeof(*cs));
    if (ep == -1 || cs == NULL)
        return 1;
    for (int i = 0; i < nconns; i++) {
        if (dial(ep, &cs[i]) == -1) {
            fprintf(stderr, "stats_poll: connect %d: %s\n", i, strerror(errno));
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    uint64_t t0 = now_us(), stop = t0 + (uint64_t)(seconds * 1e6);
    for (int i = 0; i < nconns; i++)    /* spread over one interval */
        cs[i].next_us = t0 + (interval_ms ? (uint64_t)interval_ms * 1000 * (uint64_t)i / (uint64_t)nconns : 0);
    struct epoll_event evs[256];
    for (;;) {
        uint64_t now = now_us();
        if (now >= stop)
            break;
        uint64_t wake = stop;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &cs[i];
            if (c->busy)
                continue;
            if (c->next_us <= now)
                send_req(ep, c, now);
            else if (c->next_us < wake)
                wake = c->next_us;
        }
        int ms = (int)((wake > now ? wake - now : 0) / 1000);
        int n = epoll_wait(ep, evs, 256, ms);
        now = now_us();
        for (int i = 0; i < n; i++)
            on_read(ep, evs[i].data.ptr, now);
    }
    qsort(lat, nlat, sizeof(*lat), cmp_u32);
    double p50 = nlat ? lat[nlat / 2] / 1e3 : 0, p99 = nlat ? lat[nlat * 99 / 100] / 1e3 : 0;
    double mx = nlat ? lat[nlat - 1] / 1e3 : 0;
    printf("{\"polls\": %llu, \"errors\": %llu, \"bytes\": %llu, \"seconds\": %.3f, "
           "\"ms_p50\": %.2f, \"ms_p99\": %.2f, \"ms_max\": %.2f}\n",
           (unsigned long long)polls, (unsigned long long)errors, (unsigned long long)bytes,
           (now_us() - t0) / 1e6, p50, p99, mx);
    for (int i = 0; i < nconns; i++) {
        if (cs[i].fd != -1)
            close(cs[i].fd);
        free(cs[i].buf);
    }
    free(cs);
    free(lat);
    return 0;
}
