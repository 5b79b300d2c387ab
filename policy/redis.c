/*
 * redis.c - the Redis store (redis.h): the worker's hiredis connection, the
 * GCRA script, the calls' deadlines.
 *
 * Calls are kept in a ring in the order they were sent; Redis answers in
 * that order, so a reply completes the oldest outstanding call (its
 * sequence number rides as hiredis's privdata, checked).  A call that timed
 * out or was cancelled stays in the ring, marked done, until its reply (or
 * the connection's end) pops it: the ring is what bounds a hung Redis.
 */
#include "redis.h"
#include "../core/log.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * KEYS[1]: the key.  ARGV[1]: "r" rate, "c" budget check, "d" budget
 * debit.  Times in microseconds on the server's clock.  Returns 0 (allowed)
 * or the wait in microseconds (denied, >= 1).
 */
static const char script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local mode = ARGV[1]\n"
    "if mode == 'r' then\n"
    "  local T, tau = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "  if tat < now then tat = now end\n"
    "  if tat - now > tau then return math.max(1, math.ceil(tat - now - tau)) end\n"
    "  tat = tat + T\n"
    "  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)\n"
    "  return 0\n"
    "elseif mode == 'c' then\n"
    "  if tat >= now then return math.max(1, math.ceil(tat - now)) end\n"
    "  return 0\n"
    "end\n"
    "local per, cap, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "if tat < now - cap then tat = now - cap end\n"
    "tat = tat + n * per\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat + cap - now) / 1000) + 1)\n"
    "return 0\n";

struct call {
    uint64_t seq;               /* its hiredis privdata */
    uint64_t deadline_ns;
    pol_redis_cb cb;            /* NULL once done (answered, timed out, cancelled) */
    void *arg;
    /* to send it again as EVAL after a NOSCRIPT */
    char mode;
    uint8_t key[POL_REDIS_KEY_LEN];
    double a1, a2;
    uint64_t n;
};

struct pol_redis {
    struct event_base *base;
    redisAsyncContext *ac;      /* NULL while down */
    bool connected, stopping;
    char *host;
    uint16_t port;
    uint32_t backoff_ms;
    struct event *retry_ev;     /* back-off, then connect again */
    struct event *conn_ev;      /* connect timeout */
    struct event *dl_ev;        /* the oldest outstanding call's deadline */
    char sha[41];
    struct pol_redis *next;     /* the worker's retired list */
    EVP_MD_CTX *md;             /* pol_redis_key's (allocated once) */
    uint64_t head, tail;        /* calls [head, tail) outstanding; seq = position */
    struct call ring[POL_REDIS_INFLIGHT];
};

static _Atomic uint64_t store_errors;
static _Atomic int64_t last_log_s;

uint64_t pol_store_errors(void)
{
    return atomic_load_explicit(&store_errors, memory_order_relaxed);
}

void pol_store_error(const char *what)
{
    struct timespec ts;
    int64_t last;

    /* an error is rare by nature (the store is down): a shared atomic is fine */
    atomic_fetch_add_explicit(&store_errors, 1, memory_order_relaxed);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    last = atomic_load_explicit(&last_log_s, memory_order_relaxed);
    if (last != ts.tv_sec &&
        atomic_compare_exchange_strong_explicit(&last_log_s, &last, ts.tv_sec,
                                                memory_order_relaxed, memory_order_relaxed))
        gw_log(GW_LOG_WARN, "rate_limit_store: redis: %s (%llu errors so far; logged once a second at most)",
               what, (unsigned long long)pol_store_errors());
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* SHA-256 fetched once: OpenSSL 3 fetches EVP_sha256()'s implementation
 * again at every init */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha256;

static void md_init(void)
{
    md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void pol_redis_key(struct pol_redis *rd, const void *ident, size_t ilen, const void *key, size_t klen,
                   uint8_t out[POL_REDIS_KEY_LEN])
{
    uint8_t d[EVP_MAX_MD_SIZE], n[8];
    unsigned dlen = 0;

    for (int i = 0; i < 8; i++)
        n[i] = (uint8_t)((uint64_t)ilen >> (8 * i));
    pthread_once(&md_once, md_init);
    if (!md_sha256 || !EVP_DigestInit_ex2(rd->md, md_sha256, NULL) || !EVP_DigestUpdate(rd->md, n, sizeof(n)) ||
        !EVP_DigestUpdate(rd->md, ident, ilen) || !EVP_DigestUpdate(rd->md, key, klen) ||
        !EVP_DigestFinal_ex(rd->md, d, &dlen) || dlen < POL_REDIS_KEY_LEN)
        memset(d, 0, sizeof(d));
    memcpy(out, d, POL_REDIS_KEY_LEN);
}

static void key_text(const uint8_t key[POL_REDIS_KEY_LEN], char out[7 + 2 * POL_REDIS_KEY_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";

    memcpy(out, "sluice:", 7);
    for (int i = 0; i < POL_REDIS_KEY_LEN; i++) {
        out[7 + 2 * i] = hex[key[i] >> 4];
        out[8 + 2 * i] = hex[key[i] & 15];
    }
    out[7 + 2 * POL_REDIS_KEY_LEN] = '\0';
}

/* ---- the connection ---- */

static void connect_now(struct pol_redis *rd);

static void fail_all(struct pol_redis *rd)
{
    /* hiredis completes its callbacks with NULL replies when it frees the
     * context; whatever is left (sent on no connection) ends here */
    while (rd->head != rd->tail) {
        struct call *c = &rd->ring[rd->head % POL_REDIS_INFLIGHT];
        pol_redis_cb cb = c->cb;

        rd->head++;
        if (cb) {
            c->cb = NULL;
            pol_store_error("connection lost");
            cb(c->arg, POL_STORE_ERR, 0);
        }
    }
}

static void schedule_retry(struct pol_redis *rd)
{
    struct timeval tv = { rd->backoff_ms / 1000, (rd->backoff_ms % 1000) * 1000 };

    if (rd->stopping)
        return;
    evtimer_add(rd->retry_ev, &tv);
    rd->backoff_ms = rd->backoff_ms >= 1000 ? 2000 : rd->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct pol_redis *rd = ac->data;

    if (rd->ac != ac)
        return;
    evtimer_del(rd->conn_ev);
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        rd->ac = NULL;
        rd->connected = false;
        pol_store_error(ac->errstr[0] ? ac->errstr : "connect failed");
        schedule_retry(rd);
        return;
    }
    rd->connected = true;
    rd->backoff_ms = 100;
    if (rd->stopping) {         /* retired while connecting */
        redisAsyncDisconnect(rd->ac);
        return;
    }
    gw_log(GW_LOG_INFO, "rate_limit_store: redis %s:%u connected", rd->host, rd->port);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct pol_redis *rd = ac->data;

    if (rd->ac != ac)
        return;
    rd->ac = NULL;
    rd->connected = false;
    if (!rd->stopping) {
        pol_store_error(ac->errstr[0] ? ac->errstr : "connection closed");
        schedule_retry(rd);
    }
}

/* The connection did not open in time: drop it (its calls fail) and retry. */
static void on_conn_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pol_redis *rd = arg;
    redisAsyncContext *ac = rd->ac;

    if (!ac || rd->connected)
        return;
    rd->ac = NULL;
    redisAsyncFree(ac);
    pol_store_error("connect timed out");
    fail_all(rd);
    schedule_retry(rd);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    connect_now(arg);
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;

    if (reply && reply->type == REDIS_REPLY_ERROR)
        pol_store_error(reply->str);
}

static void connect_now(struct pol_redis *rd)
{
    struct timeval tv = { 1, 0 };
    redisAsyncContext *ac = redisAsyncConnect(rd->host, rd->port);

    if (!ac || ac->err) {
        pol_store_error(ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(rd);
        return;
    }
    ac->data = rd;
    if (redisLibeventAttach(ac, rd->base) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(rd);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rd->ac = ac;
    rd->connected = false;
    evtimer_add(rd->conn_ev, &tv);
    /* first in the pipe: every EVALSHA after it finds the script */
    redisAsyncCommand(ac, on_script_loaded, NULL, "SCRIPT LOAD %s", script);
}

struct pol_redis *pol_redis_new(struct event_base *base, const char *host, uint16_t port)
{
    struct pol_redis *rd = calloc(1, sizeof(*rd));
    uint8_t d[SHA_DIGEST_LENGTH];

    if (!rd)
        return NULL;
    rd->host = strdup(host);
    rd->base = base;
    rd->port = port;
    rd->backoff_ms = 100;
    rd->retry_ev = evtimer_new(base, on_retry, rd);
    rd->conn_ev = evtimer_new(base, on_conn_timeout, rd);
    rd->dl_ev = NULL;
    rd->md = EVP_MD_CTX_new();
    if (!rd->host || !rd->retry_ev || !rd->conn_ev || !rd->md)
        goto fail;
    SHA1((const unsigned char *)script, sizeof(script) - 1, d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(rd->sha + 2 * i, 3, "%02x", d[i]);
    connect_now(rd);
    return rd;

fail:
    EVP_MD_CTX_free(rd->md);
    if (rd->retry_ev)
        event_free(rd->retry_ev);
    if (rd->conn_ev)
        event_free(rd->conn_ev);
    free(rd->host);
    free(rd);
    return NULL;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg);

void pol_redis_free(struct pol_redis **rdp)
{
    struct pol_redis *rd = *rdp;

    *rdp = NULL;
    if (!rd)
        return;
    rd->stopping = true;
    if (rd->ac) {
        redisAsyncContext *ac = rd->ac;
        rd->ac = NULL;
        redisAsyncFree(ac);     /* completes its calls (NULL replies) */
    }
    fail_all(rd);
    event_free(rd->retry_ev);
    event_free(rd->conn_ev);
    if (rd->dl_ev)
        event_free(rd->dl_ev);
    EVP_MD_CTX_free(rd->md);
    free(rd->host);
    free(rd);
}

bool pol_redis_is(const struct pol_redis *rd, const char *host, uint16_t port)
{
    return rd->port == port && strcmp(rd->host, host) == 0;
}

/* ---- calls ---- */

static void arm_deadline(struct pol_redis *rd)
{
    uint64_t now = mono_ns(), first = UINT64_MAX;
    struct timeval tv;

    for (uint64_t s = rd->head; s != rd->tail; s++) {
        const struct call *c = &rd->ring[s % POL_REDIS_INFLIGHT];
        if (c->cb && c->deadline_ns < first)
            first = c->deadline_ns;
    }
    if (first == UINT64_MAX)
        return;
    first = first > now ? first - now : 0;
    tv.tv_sec = (time_t)(first / 1000000000ull);
    tv.tv_usec = (suseconds_t)(first % 1000000000ull / 1000 + 1);
    if (!rd->dl_ev)
        rd->dl_ev = evtimer_new(rd->base, on_deadline, rd);
    if (rd->dl_ev)
        evtimer_add(rd->dl_ev, &tv);
}

/* Calls past their deadline complete as errors; their replies, when they
 * come, find them done. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct pol_redis *rd = arg;
    uint64_t now = mono_ns();

    for (uint64_t s = rd->head; s != rd->tail; s++) {
        struct call *c = &rd->ring[s % POL_REDIS_INFLIGHT];
        pol_redis_cb cb = c->cb;
        if (cb && c->deadline_ns <= now) {
            c->cb = NULL;
            pol_store_error("no answer in time");
            cb(c->arg, POL_STORE_ERR, 0);
        }
    }
    arm_deadline(rd);
}

static int send_call(struct pol_redis *rd, struct call *c, bool eval);

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct pol_redis *rd = ac->data;
    redisReply *reply = r;
    uint64_t seq = (uint64_t)(uintptr_t)priv;
    struct call *c = &rd->ring[seq % POL_REDIS_INFLIGHT];
    pol_redis_cb cb;
    void *arg;

    if (seq < rd->head || seq >= rd->tail || c->seq != seq)
        return;         /* already failed by fail_all */
    /* replies come in order: everything before seq is answered */
    rd->head = seq + 1;
    cb = c->cb;
    arg = c->arg;
    c->cb = NULL;
    if ((cb || c->mode == 'd') && reply && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && rd->tail - rd->head < POL_REDIS_INFLIGHT) {
        /* the script is gone (a restarted Redis): this call as EVAL, and load it again */
        struct call *n = &rd->ring[rd->tail % POL_REDIS_INFLIGHT];
        *n = *c;
        n->cb = cb;
        n->seq = rd->tail;
        if (send_call(rd, n, true) == REDIS_OK) {
            rd->tail++;
            redisAsyncCommand(ac, on_script_loaded, NULL, "SCRIPT LOAD %s", script);
            return;
        }
        n->cb = NULL;
    }
    if (!cb)
        return;         /* timed out, cancelled, or a debit */
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        pol_store_error(reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "connection lost");
        cb(arg, POL_STORE_ERR, 0);
    } else if (reply->integer > 0) {
        cb(arg, POL_STORE_DENY, (uint64_t)reply->integer);
    } else {
        cb(arg, POL_STORE_OK, 0);
    }
}

static int send_call(struct pol_redis *rd, struct call *c, bool eval)
{
    char k[7 + 2 * POL_REDIS_KEY_LEN + 1], a1[40], a2[40], n[24];
    void *priv = (void *)(uintptr_t)c->seq;
    const char *how = eval ? "EVAL" : "EVALSHA", *body = eval ? script : rd->sha;

    key_text(c->key, k);
    snprintf(a1, sizeof(a1), "%.3f", c->a1);
    snprintf(a2, sizeof(a2), "%.3f", c->a2);
    snprintf(n, sizeof(n), "%llu", (unsigned long long)c->n);
    switch (c->mode) {
    case 'r':
        return redisAsyncCommand(rd->ac, on_reply, priv, "%s %s 1 %s r %s %s", how, body, k, a1, a2);
    case 'c':
        return redisAsyncCommand(rd->ac, on_reply, priv, "%s %s 1 %s c", how, body, k);
    default:
        return redisAsyncCommand(rd->ac, on_reply, priv, "%s %s 1 %s d %s %s %s", how, body, k, a1, a2, n);
    }
}

static uint64_t call(struct pol_redis *rd, char mode, const uint8_t key[POL_REDIS_KEY_LEN], double a1,
                     double a2, uint64_t n, pol_redis_cb cb, void *arg)
{
    struct call *c;

    if (!rd->ac || rd->stopping) {
        pol_store_error("not connected");
        return 0;
    }
    if (rd->tail - rd->head >= POL_REDIS_INFLIGHT) {
        pol_store_error("too many calls outstanding");
        return 0;
    }
    c = &rd->ring[rd->tail % POL_REDIS_INFLIGHT];
    *c = (struct call){ .seq = rd->tail, .deadline_ns = mono_ns() + POL_REDIS_TIMEOUT_MS * 1000000ull,
                        .cb = cb, .arg = arg, .mode = mode, .a1 = a1, .a2 = a2, .n = n };
    memcpy(c->key, key, POL_REDIS_KEY_LEN);
    if (send_call(rd, c, false) != REDIS_OK) {
        c->cb = NULL;
        pol_store_error("command refused (connection closing)");
        return 0;
    }
    rd->tail++;
    if (cb && (!rd->dl_ev || !evtimer_pending(rd->dl_ev, NULL)))
        arm_deadline(rd);
    return c->seq + 1;
}

uint64_t pol_redis_rate(struct pol_redis *rd, const uint8_t key[POL_REDIS_KEY_LEN], double t_us,
                        double tau_us, pol_redis_cb cb, void *arg)
{
    return call(rd, 'r', key, t_us, tau_us, 0, cb, arg);
}

uint64_t pol_redis_budget_check(struct pol_redis *rd, const uint8_t key[POL_REDIS_KEY_LEN],
                                pol_redis_cb cb, void *arg)
{
    return call(rd, 'c', key, 0, 0, 0, cb, arg);
}

void pol_redis_budget_debit(struct pol_redis *rd, const uint8_t key[POL_REDIS_KEY_LEN],
                            double per_token_us, double cap_us, uint64_t tokens)
{
    if (tokens)
        call(rd, 'd', key, per_token_us, cap_us, tokens, NULL, NULL);
}

bool pol_redis_cancel(struct pol_redis *rd, uint64_t handle, const void *arg)
{
    uint64_t seq = handle - 1;
    struct call *c = &rd->ring[seq % POL_REDIS_INFLIGHT];

    if (!handle || seq < rd->head || seq >= rd->tail || c->seq != seq || c->arg != arg || !c->cb)
        return false;
    c->cb = NULL;
    return true;
}

bool pol_redis_idle(const struct pol_redis *rd)
{
    return rd->ac == NULL && rd->head == rd->tail;
}

struct pol_redis **pol_redis_next(struct pol_redis *rd)
{
    return &rd->next;
}

void pol_redis_retire(struct pol_redis *rd)
{
    rd->stopping = true;
    evtimer_del(rd->retry_ev);
    evtimer_del(rd->conn_ev);
    if (rd->ac && rd->connected)
        redisAsyncDisconnect(rd->ac);   /* after the pending replies */
}
