/*
 * watch.c - (k8s) sluice-k8s watch: keep a gateway's routing in step with
 * the Gateway API objects of a Kubernetes cluster.
 *
 * One thread per resource LISTs it, then WATCHes from the list's
 * resourceVersion (bookmarks asked for, and their resourceVersion kept, so a
 * reconnect resumes where the stream was; 410 Gone re-lists).  Each
 * connection that fails is retried with a doubling back-off (100 ms to
 * 5 s).  The main thread waits until every resource was listed once, then,
 * at once for a change after a quiet half second, else after 15 ms without
 * a change (at most 250 ms after the first), translates
 * everything into one document and PUTs it to the gateway's admin API when
 * it differs from the last one PUT.  Every second it reads the gateway's
 * config version: a version below the one its PUT got means the gateway
 * restarted, and the document is PUT again.  When the API server goes away
 * nothing is PUT: the gateway keeps the last good config.
 *
 * Owns: the object maps, its threads.  May call: k8s/https, k8s/kconf,
 * k8s/translate, k8s/index, k8s/obj, k8s/cond, cJSON, OpenSSL, pthreads.
 */
#include "watch.h"
#include "cond.h"
#include "https.h"
#include "index.h"
#include "kconf.h"
#include "obj.h"
#include "status.h"
#include "translate.h"
#include "../core/arena.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEBOUNCE_MS 15
#define DEBOUNCE_MAX_MS 250
/* a change after this long without one is translated at once (the leading
 * edge: a lone edit waits for nothing; a burst's later events, arriving
 * while that translation runs, are batched by the debounce) */
#define QUIET_MS 500
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define IO_TIMEOUT_MS 10000
#define MAX_LIST (256u << 20)
#define MAX_EVENT (64u << 20)
#define GW_CHECK_MS 1000

struct res {
    const char *kind;
    const char *path;               /* the collection, across namespaces */
    const char *alt_path;           /* tried when path is 404 (an older version), or NULL */
};

static const struct res RES[] = {
    { "Gateway", "/apis/gateway.networking.k8s.io/v1/gateways", NULL },
    { "HTTPRoute", "/apis/gateway.networking.k8s.io/v1/httproutes", NULL },
    { "ReferenceGrant", "/apis/gateway.networking.k8s.io/v1/referencegrants",
      "/apis/gateway.networking.k8s.io/v1beta1/referencegrants" },
    { "Service", "/api/v1/services", NULL },
    { "EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices", NULL },
    { "Secret", "/api/v1/secrets", NULL },
    { "Namespace", "/api/v1/namespaces", NULL },
};
#define NRES (sizeof RES / sizeof RES[0])

struct watcher;

struct ctl {
    struct k8s_conf conf;
    SSL_CTX *tls;
    struct k8s_opts opt;
    char *admin_host, *admin_port, *admin_token;
    atomic_bool stop;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    cJSON *objs[NRES];              /* per resource: an object keyed "ns/name" */
    /* objects replaced or deleted since the last translation: snap may
     * still borrow them, so they are freed when snap is replaced */
    cJSON *grave;
    /* objects linked since the last translation (it starts from the last
     * store, less the grave, plus these: 11,000 cold objects cost ~10 ms
     * to walk again); relisted: a LIST replaced a whole resource */
    cJSON **added;
    size_t nadded, capadded;
    bool relisted;
    /* bumped by any change but to an HTTPRoute: the route cache
     * (c->opt.cache) reuses an HTTPRoute's translation while it holds */
    unsigned long world;
    bool listed[NRES];
    bool dirty;
    int64_t first_change, last_change;
    cJSON *pending_tr;              /* the newest translation (main thread only) */
    /* what it was made from, for the status write-back (main thread only) */
    struct k8s_store snap;
    struct k8s_conds snap_conds;
    const char *address;            /* --gateway-address, or $POD_IP, or NULL */
};

struct watcher {
    struct ctl *c;
    size_t i;
    pthread_t th;
    char rv[64];
    const char *path;
};

static atomic_bool g_stop;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr);
    fputs("sluice-k8s watch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, true);
}

/* ---------------------------------------------------------------- the store */

static void key_of(const cJSON *o, char *key, size_t n)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    snprintf(key, n, "%s/%s", k8s_str(md, "namespace", ""), k8s_str(md, "name", ""));
}

static void changed_locked(struct ctl *c)
{
    int64_t now = kh_now_ms();
    if (!c->dirty)
        c->first_change = now;
    c->dirty = true;
    c->last_change = now;
    pthread_cond_signal(&c->cv);
}

/* Objects a and b have the same members but for k1 and k2 (present or not). */
static bool same_except(const cJSON *a, const cJSON *b, const char *k1, const char *k2)
{
    const cJSON *e;
    int na = 0, nb = 0;
    if (!cJSON_IsObject(a) || !cJSON_IsObject(b))
        return cJSON_Compare(a, b, true);
    cJSON_ArrayForEach(e, a) {
        if (e->string && (!strcmp(e->string, k1) || !strcmp(e->string, k2)))
            continue;
        na++;
        if (!cJSON_Compare(e, cJSON_GetObjectItemCaseSensitive(b, e->string), true))
            return false;
    }
    cJSON_ArrayForEach(e, b)
        nb += !(e->string && (!strcmp(e->string, k1) || !strcmp(e->string, k2)));
    return na == nb;
}

/* a and b are the same object but for status and the fields the API server
 * bumps on every write (resourceVersion, managedFields). */
static bool same_but_status(const cJSON *a, const cJSON *b)
{
    return same_except(a, b, "status", "metadata") &&
           same_except(cJSON_GetObjectItemCaseSensitive(a, "metadata"),
                       cJSON_GetObjectItemCaseSensitive(b, "metadata"), "resourceVersion", "managedFields");
}

/* Takes o: sets (or, del, removes) it in resource i. */
static void store_set(struct ctl *c, size_t i, cJSON *o, bool del)
{
    char key[600];
    key_of(o, key, sizeof key);
    /* LIST items of core kinds carry no kind: the index needs it */
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "kind"))) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "kind");
        cJSON_AddStringToObject(o, "kind", RES[i].kind);
    }
    pthread_mutex_lock(&c->mu);
    cJSON *prev = cJSON_DetachItemFromObjectCaseSensitive(c->objs[i], key);
    /* a write of status alone (ours, mostly) changes no document: keep the
     * object, but translate nothing for it */
    bool same = !del && prev && same_but_status(prev, o);
    if (prev)
        cJSON_AddItemToArray(c->grave, prev);
    if (!del) {
        if (c->nadded == c->capadded) {
            c->capadded = c->capadded ? 2 * c->capadded : 64;
            c->added = xrealloc(c->added, c->capadded * sizeof(*c->added));
        }
        c->added[c->nadded++] = o;
    }
    if (del)
        cJSON_Delete(o);
    else
        cJSON_AddItemToObject(c->objs[i], key, o);
    if (!same) {
        changed_locked(c);
        c->world += strcmp(RES[i].kind, "HTTPRoute") != 0;
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------------- the API */

/* Sends one request on k (open) and reads the response head: the status,
 * or -1 with err set (k is then not usable). */
static int api_send(struct ctl *c, struct kh_conn *k, const char *method, const char *path,
                    const char *ctype, const char *body, char *err, size_t errlen)
{
    char hdr[8192] = "";
    size_t n = 0;
    char *tok = k8s_conf_token(&c->conf);
    if (tok) {
        if (strlen(tok) > sizeof hdr - 256) {
            free(tok);
            snprintf(err, errlen, "the token is too long");
            return -1;
        }
        n = (size_t)snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
        free(tok);
    }
    if (ctype)
        snprintf(hdr + n, sizeof hdr - n, "Content-Type: %s\r\n", ctype);
    if (kh_send(k, method, c->conf.host, path, hdr, body, body ? strlen(body) : 0,
                kh_now_ms() + IO_TIMEOUT_MS) != 0) {
        snprintf(err, errlen, "%s %s: the request could not be sent", method, path);
        return -1;
    }
    int st = kh_read_head(k, kh_now_ms() + IO_TIMEOUT_MS);
    if (st < 0)
        snprintf(err, errlen, "%s %s: no response", method, path);
    return st;
}

/* One request on a new connection: the status (k open), or -1 with err
 * set (k closed). */
static int api_request(struct ctl *c, struct kh_conn *k, const char *method, const char *path,
                       const char *ctype, const char *body, char *err, size_t errlen)
{
    if (kh_connect(k, c->conf.host, c->conf.port, c->tls, &c->stop, kh_now_ms() + IO_TIMEOUT_MS, err,
                   errlen) != 0)
        return -1;
    int st = api_send(c, k, method, path, ctype, body, err, errlen);
    if (st < 0)
        kh_close(k);
    return st;
}

/* LIST: replaces resource i's objects.  0, 1 not served (404), -1 error. */
static int do_list(struct watcher *w, char *err, size_t errlen)
{
    struct ctl *c = w->c;
    struct kh_conn k;
    int st = api_request(c, &k, "GET", w->path, NULL, NULL, err, errlen);
    if (st < 0)
        return -1;
    struct kh_resp r = { 0 };
    int rb = kh_read_body(&k, &r, MAX_LIST, kh_now_ms() + 60000);
    kh_close(&k);
    if (rb != 0) {
        snprintf(err, errlen, "LIST %s: the body could not be read", w->path);
        return -1;
    }
    if (st == 404) {
        free(r.body);
        return 1;
    }
    if (st != 200) {
        cJSON *s = cJSON_Parse(r.body);
        snprintf(err, errlen, "LIST %s: HTTP %d: %s", w->path, st, k8s_str(s, "message", "(no message)"));
        cJSON_Delete(s);
        free(r.body);
        return -1;
    }
    cJSON *list = cJSON_ParseWithLength(r.body, r.len);
    free(r.body);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(list, "items");
    const char *rv = k8s_str(cJSON_GetObjectItemCaseSensitive(list, "metadata"), "resourceVersion", NULL);
    if (list == NULL || (!cJSON_IsArray(items) && !cJSON_IsNull(items) && items) || rv == NULL) {
        snprintf(err, errlen, "LIST %s: not a List with metadata.resourceVersion", w->path);
        cJSON_Delete(list);
        return -1;
    }
    snprintf(w->rv, sizeof w->rv, "%s", rv);
    cJSON *fresh = cJSON_CreateObject();
    cJSON *it = cJSON_IsArray(items) ? items->child : NULL;
    size_t n = 0;
    while (it) {
        cJSON *next = it->next;
        cJSON_DetachItemViaPointer((cJSON *)items, it);
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "kind")))
            cJSON_AddStringToObject(it, "kind", RES[w->i].kind);
        char key[600];
        key_of(it, key, sizeof key);
        cJSON_DeleteItemFromObjectCaseSensitive(fresh, key);
        cJSON_AddItemToObject(fresh, key, it);
        n++;
        it = next;
    }
    cJSON_Delete(list);
    pthread_mutex_lock(&c->mu);
    cJSON_AddItemToArray(c->grave, c->objs[w->i]);
    c->relisted = true;
    c->objs[w->i] = fresh;
    c->listed[w->i] = true;
    changed_locked(c);
    c->world += strcmp(RES[w->i].kind, "HTTPRoute") != 0;
    pthread_mutex_unlock(&c->mu);
    logf_("listed %zu %s at resourceVersion %s", n, RES[w->i].kind, w->rv);
    return 0;
}

enum { W_END, W_ERROR, W_GONE };

/* One event line.  W_END to go on, W_GONE, W_ERROR. */
static int on_event(struct watcher *w, const char *line, size_t len)
{
    cJSON *ev = cJSON_ParseWithLength(line, len);
    const char *type = k8s_str(ev, "type", NULL);
    cJSON *o = cJSON_GetObjectItemCaseSensitive(ev, "object");
    const char *rv = k8s_str(cJSON_GetObjectItemCaseSensitive(o, "metadata"), "resourceVersion", NULL);
    int rc = W_END;
    if (type == NULL || !cJSON_IsObject(o)) {
        logf_("%s: a watch event that is not {type, object}: ignored", RES[w->i].kind);
    } else if (!strcmp(type, "ERROR")) {
        double code = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "code"));
        logf_("%s: watch error %g: %s", RES[w->i].kind, code, k8s_str(o, "message", ""));
        rc = code == 410 ? W_GONE : W_ERROR;
    } else if (!strcmp(type, "BOOKMARK")) {
        if (rv)
            snprintf(w->rv, sizeof w->rv, "%s", rv);
    } else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED") || !strcmp(type, "DELETED")) {
        if (rv)
            snprintf(w->rv, sizeof w->rv, "%s", rv);
        cJSON_DetachItemViaPointer(ev, o);
        store_set(w->c, w->i, o, type[0] == 'D');
    } else {
        logf_("%s: unknown watch event type %s: ignored", RES[w->i].kind, type);
    }
    cJSON_Delete(ev);
    return rc;
}

/* WATCH from w->rv until the stream ends: W_END, W_GONE or W_ERROR. */
static int do_watch(struct watcher *w, char *err, size_t errlen)
{
    char path[1024];
    /* the server ends the watch within timeoutSeconds; a fresh one then
     * resumes from the last resourceVersion seen */
    snprintf(path, sizeof path, "%s?watch=true&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%d",
             w->path, w->rv, 240 + (int)(w->i * 7));
    struct kh_conn k;
    int st = api_request(w->c, &k, "GET", path, NULL, NULL, err, errlen);
    if (st < 0)
        return W_ERROR;
    if (st != 200) {
        struct kh_resp r = { 0 };
        kh_read_body(&k, &r, 1 << 20, kh_now_ms() + IO_TIMEOUT_MS);
        kh_close(&k);
        cJSON *s = r.body ? cJSON_Parse(r.body) : NULL;
        snprintf(err, errlen, "WATCH %s: HTTP %d: %s", w->path, st, k8s_str(s, "message", "(no message)"));
        cJSON_Delete(s);
        free(r.body);
        return st == 410 ? W_GONE : W_ERROR;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    int rc = W_END;
    while (buf) {
        if (cap - len < 16384) {
            if (cap >= MAX_EVENT) {
                snprintf(err, errlen, "WATCH %s: an event larger than %u bytes", w->path, MAX_EVENT);
                rc = W_ERROR;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                rc = W_ERROR;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = kh_body_read(&k, buf + len, cap - len, -1);
        if (got <= 0) {
            if (got < 0) {
                snprintf(err, errlen, "WATCH %s: the stream broke", w->path);
                rc = W_ERROR;
            }
            break;
        }
        len += (size_t)got;
        char *start = buf, *nl;
        while (rc == W_END && (nl = memchr(start, '\n', len - (size_t)(start - buf))) != NULL) {
            if (nl > start)
                rc = on_event(w, start, (size_t)(nl - start));
            start = nl + 1;
        }
        if (rc != W_END) {
            if (rc == W_ERROR)
                snprintf(err, errlen, "WATCH %s: an ERROR event", w->path);
            break;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
    }
    free(buf);
    kh_close(&k);
    return rc;
}

static void sleep_ms(struct ctl *c, int64_t ms)
{
    int64_t end = kh_now_ms() + ms;
    while (!atomic_load(&c->stop) && kh_now_ms() < end) {
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

static void *watch_main(void *arg)
{
    struct watcher *w = arg;
    struct ctl *c = w->c;
    bool need_list = true;
    int64_t backoff = BACKOFF_MIN_MS;
    char err[512];
    w->path = RES[w->i].path;
    while (!atomic_load(&c->stop)) {
        if (need_list) {
            int r = do_list(w, err, sizeof err);
            if (r == 1 && RES[w->i].alt_path && w->path != RES[w->i].alt_path) {
                w->path = RES[w->i].alt_path;
                continue;
            }
            if (r == 1) {
                /* the kind is not served (its CRD is not installed): none of it */
                logf_("%s: not served by the API server (%s): taken as none, asked again in 30 s",
                      RES[w->i].kind, w->path);
                pthread_mutex_lock(&c->mu);
                c->listed[w->i] = true;
                changed_locked(c);
                pthread_mutex_unlock(&c->mu);
                w->path = RES[w->i].path;
                sleep_ms(c, 30000);
                continue;
            }
            if (r != 0) {
                if (!atomic_load(&c->stop))
                    logf_("%s; retrying in %lld ms", err, (long long)backoff);
                sleep_ms(c, backoff);
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            need_list = false;
        }
        int64_t t0 = kh_now_ms();
        int r = do_watch(w, err, sizeof err);
        if (atomic_load(&c->stop))
            break;
        if (r == W_GONE) {
            logf_("%s: resourceVersion %s is too old (410 Gone): listing again", RES[w->i].kind, w->rv);
            need_list = true;
            continue;
        }
        if (r == W_END) {
            backoff = BACKOFF_MIN_MS;
            if (kh_now_ms() - t0 > 1000)
                continue;       /* a watch that ran its time: resume at once */
            sleep_ms(c, BACKOFF_MIN_MS);
            continue;
        }
        if (kh_now_ms() - t0 > 5000)
            backoff = BACKOFF_MIN_MS;   /* the watch had been up: a fresh failure */
        logf_("%s; watching again from resourceVersion %s in %lld ms", err, w->rv, (long long)backoff);
        sleep_ms(c, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

/* ---------------------------------------------------------------- the gateway */

/* One request to the admin API: the status (body in *r), or -1. */
static int admin_call(struct ctl *c, const char *method, const char *body, struct kh_resp *r)
{
    struct kh_conn k;
    char err[256], hdr[1200] = "";
    memset(r, 0, sizeof(*r));
    if (kh_connect(&k, c->admin_host, c->admin_port, NULL, &g_stop, kh_now_ms() + 3000, err,
                   sizeof err) != 0)
        return -1;
    size_t n = 0;
    if (c->admin_token)
        n = (size_t)snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", c->admin_token);
    if (body)
        snprintf(hdr + n, sizeof hdr - n, "Content-Type: application/json\r\nConnection: close\r\n");
    else
        snprintf(hdr + n, sizeof hdr - n, "Connection: close\r\n");
    int st = -1;
    int64_t dl = kh_now_ms() + 30000;
    if (kh_send(&k, method, c->admin_host, "/config", hdr, body, body ? strlen(body) : 0, dl) == 0 &&
        (st = kh_read_head(&k, dl)) >= 0 && kh_read_body(&k, r, 256u << 20, dl) != 0)
        st = -1;
    kh_close(&k);
    return st;
}

/* The running config (GET /config), or NULL. *version set. */
static cJSON *admin_get(struct ctl *c, double *version)
{
    struct kh_resp r;
    int st = admin_call(c, "GET", NULL, &r);
    cJSON *doc = st == 200 ? cJSON_ParseWithLength(r.body, r.len) : NULL;
    free(r.body);
    if (doc == NULL)
        return NULL;
    *version = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "version"));
    return doc;
}

/* The document to PUT: the gateway's own settings (admin, workers,
 * timeouts, ...) from base, with listeners, upstreams and routes from the
 * translation.  A malloc'd string. */
static char *merge_doc(struct ctl *c, const cJSON *base, cJSON *tr)
{
    /* base's own members only (its listeners, upstreams and routes, the
     * bulk of it, are replaced: not worth a copy) */
    static const char *const keys[] = { "listeners", "upstreams", "routes" };
    cJSON *d = cJSON_CreateObject();
    const cJSON *e;
    cJSON_ArrayForEach(e, base) {
        if (e->string == NULL || !strcmp(e->string, "version") || !strcmp(e->string, keys[0]) ||
            !strcmp(e->string, keys[1]) || !strcmp(e->string, keys[2]))
            continue;
        cJSON_AddItemToObject(d, e->string, cJSON_Duplicate(e, true));
    }
    cJSON *adm = cJSON_GetObjectItemCaseSensitive(d, "admin");
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(adm, "token")))
        cJSON_ReplaceItemInObjectCaseSensitive(adm, "token", cJSON_CreateString(c->admin_token ? c->admin_token : ""));
    /* the translation's arrays are lent to d for printing, not copied */
    cJSON *lent[3];
    for (size_t i = 0; i < 3; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(d, keys[i]);
        lent[i] = cJSON_DetachItemFromObjectCaseSensitive(tr, keys[i]);
        cJSON_AddItemToObject(d, keys[i], lent[i] ? lent[i] : cJSON_CreateArray());
    }
    char *s = cJSON_PrintUnformatted(d);
    for (size_t i = 0; i < 3; i++)
        if (lent[i])
            cJSON_AddItemToObject(tr, keys[i], cJSON_DetachItemFromObjectCaseSensitive(d, keys[i]));
    cJSON_Delete(d);
    return s;
}

/* Translates what is stored now: the document; the conditions as text in
 * *conds_text (malloc'd).  The store borrows the watched objects instead of
 * copying them (11,000 objects cost ~40 ms to copy): the watch threads only
 * link and unlink them under c->mu, never change one in place, and what
 * they unlink waits in c->grave until no snapshot can point to it. */
static int by_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(const cJSON *const *)a, y = (uintptr_t)*(const cJSON *const *)b;
    return x < y ? -1 : x > y;
}

static bool in_sorted(cJSON **v, size_t n, const cJSON *p)
{
    return n && bsearch(&p, v, n, sizeof(*v), by_ptr) != NULL;
}

/* The store of everything watched, lock held: the last one less what went
 * to the grave, plus what was linked since (a LIST, or more than a few
 * changes: walked anew). */
static void store_now(struct ctl *c, struct k8s_store *st, struct k8s_conds *conds)
{
    size_t ndead = (size_t)cJSON_GetArraySize(c->grave);
    if (c->relisted || c->snap.n == 0 || ndead + c->nadded > c->snap.n / 8 + 64) {
        for (size_t i = 0; i < NRES; i++) {
            cJSON *o;
            cJSON_ArrayForEach(o, c->objs[i])
                k8s_store_borrow(st, o, "the API server", conds);
        }
        return;
    }
    cJSON **dead = xmalloc((ndead ? ndead : 1) * sizeof(*dead));
    size_t k = 0;
    cJSON *o;
    cJSON_ArrayForEach(o, c->grave)
        dead[k++] = o;
    qsort(dead, ndead, sizeof(*dead), by_ptr);
    st->cap = c->snap.n + c->nadded;
    st->v = xmalloc((st->cap ? st->cap : 1) * sizeof(*st->v));
    for (size_t i = 0; i < c->snap.n; i++)
        if (!in_sorted(dead, ndead, c->snap.v[i].doc))
            st->v[st->n++] = c->snap.v[i];
    for (size_t i = 0; i < c->nadded; i++)
        if (!in_sorted(dead, ndead, c->added[i]))
            k8s_store_borrow(st, c->added[i], "the API server", conds);
    free(dead);
}

static cJSON *translate_now(struct ctl *c, char **conds_text)
{
    struct k8s_store st = { 0 };
    struct k8s_conds conds = { 0 };
    pthread_mutex_lock(&c->mu);
    c->dirty = false;
    store_now(c, &st, &conds);
    c->nadded = 0;
    c->relisted = false;
    cJSON *dead = c->grave;         /* in the old snapshot at most */
    c->grave = cJSON_CreateArray();
    c->opt.world = c->world;
    pthread_mutex_unlock(&c->mu);
    struct k8s_index ix;
    k8s_index_build(&ix, &st, &conds);
    cJSON *doc = k8s_translate(&ix, &c->opt, &conds);
    k8s_index_free(&ix);
    k8s_store_free(&c->snap);
    k8s_conds_free(&c->snap_conds);
    cJSON_Delete(dead);
    char *mem = NULL;
    size_t memlen = 0;
    FILE *f = open_memstream(&mem, &memlen);
    if (f) {
        k8s_conds_print(&conds, f);
        fclose(f);
    }
    *conds_text = mem;
    c->snap = st;
    c->snap_conds = conds;
    return doc;
}

/* PATCHes the status of every route and Gateway whose status the last
 * translation (now running on the gateway) changes. */
static void write_status(struct ctl *c)
{
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    struct k8s_status_in in = { c->opt.gateway_class, c->address, true, now };
    struct k8s_status_patch *p = NULL;
    size_t n = k8s_status_compute(&c->snap, &c->snap_conds, &in, &p);
    int64_t t0 = kh_now_ms();
    struct kh_conn k;
    bool open = false;
    for (size_t i = 0; i < n && !atomic_load(&g_stop); i++) {
        /* a change waiting is more urgent than status: the next translation
         * computes the status again anyway */
        pthread_mutex_lock(&c->mu);
        bool dirty = c->dirty;
        pthread_mutex_unlock(&c->mu);
        if (dirty) {
            logf_("status: %zu of %zu PATCHes left for the next translation", n - i, n);
            break;
        }
        char err[512];
        int st = -1;
        /* one kept-alive connection for the batch; a reused one that fails
         * gets one fresh try */
        for (int attempt = 0; attempt < 2 && st < 0; attempt++) {
            bool reused = open;
            if (!open && kh_connect(&k, c->conf.host, c->conf.port, c->tls, &g_stop,
                                    kh_now_ms() + IO_TIMEOUT_MS, err, sizeof err) == 0)
                open = true;
            if (open)
                st = api_send(c, &k, "PATCH", p[i].path, "application/merge-patch+json", p[i].body, err,
                              sizeof err);
            if (st < 0 && open) {
                kh_close(&k);
                open = false;
            }
            if (!reused)
                break;
        }
        if (st < 0) {
            logf_("status: %s", err);
            continue;
        }
        struct kh_resp r = { 0 };
        if (kh_read_body(&k, &r, 1 << 20, kh_now_ms() + IO_TIMEOUT_MS) != 0) {
            kh_close(&k);
            open = false;
        }
        if (st == 200) {
            if (n <= 10)
                logf_("status: PATCH %s", p[i].path);
        } else if (st != 404) {    /* 404: deleted meanwhile, its event is on its way */
            cJSON *e = r.body ? cJSON_Parse(r.body) : NULL;
            logf_("status: PATCH %s: HTTP %d: %s", p[i].path, st, k8s_str(e, "message", "(no message)"));
            cJSON_Delete(e);
        }
        free(r.body);
    }
    if (open)
        kh_close(&k);
    if (n > 10)
        logf_("status: %zu PATCHes in %lld ms", n, (long long)(kh_now_ms() - t0));
    k8s_status_free(p, n);
}

static bool all_listed(struct ctl *c)
{
    for (size_t i = 0; i < NRES; i++)
        if (!c->listed[i])
            return false;
    return true;
}

static int run(struct ctl *c)
{
    struct watcher ws[NRES];
    for (size_t i = 0; i < NRES; i++) {
        ws[i] = (struct watcher){ .c = c, .i = i };
        if (pthread_create(&ws[i].th, NULL, watch_main, &ws[i]) != 0) {
            logf_("cannot start a thread");
            atomic_store(&c->stop, true);
            for (size_t j = 0; j < i; j++)
                pthread_join(ws[j].th, NULL);
            return 2;
        }
    }
    char *last_put = NULL, *last_conds = NULL;
    cJSON *base = NULL;
    double put_version = 0;
    bool pending = false;           /* a document that still has to reach the gateway */
    bool status_due = false;        /* the snapshot's status is still to be written */
    int64_t translate_ms = 0, last_translated = INT64_MIN / 2;
    int64_t next_check = 0, retry_at = 0;
    while (!atomic_load(&g_stop)) {
        pthread_mutex_lock(&c->mu);
        /* asleep until a change, or until the debounce of one ends (a
         * change that is not ready must not spin this loop) */
        int64_t wait_ms = 20, now = kh_now_ms();
        if (c->dirty) {
            int64_t due = c->last_change + DEBOUNCE_MS, cap = c->first_change + DEBOUNCE_MAX_MS;
            if (c->first_change - last_translated >= QUIET_MS)
                due = now;
            wait_ms = (due < cap ? due : cap) - now;
            if (!all_listed(c))
                wait_ms = 20;
        }
        if (wait_ms > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += wait_ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
        now = kh_now_ms();
        bool ready = c->dirty && all_listed(c) &&
                     (now - c->last_change >= DEBOUNCE_MS || now - c->first_change >= DEBOUNCE_MAX_MS ||
                      c->first_change - last_translated >= QUIET_MS);
        pthread_mutex_unlock(&c->mu);

        if (ready) {
            char *ct = NULL;
            int64_t tt = kh_now_ms();
            cJSON *tr = translate_now(c, &ct);
            last_translated = kh_now_ms();
            translate_ms = last_translated - tt;
            if (tr == NULL)
                k8s_rcache_forget(c->opt.cache);
            if (ct && (last_conds == NULL || strcmp(ct, last_conds) != 0))
                fputs(ct, stderr);
            free(last_conds);
            last_conds = ct;
            if (tr) {
                /* after the translation: it moved what it reused out of this one */
                cJSON_Delete(c->pending_tr);
                c->pending_tr = tr;
                pending = true;
                status_due = true;
            }
        }
        if (pending && c->pending_tr && kh_now_ms() >= retry_at) {
            if (base == NULL) {
                double v = 0;
                base = admin_get(c, &v);
                if (base == NULL) {
                    logf_("the gateway's admin API (%s:%s) does not answer GET /config; retrying",
                          c->admin_host, c->admin_port);
                    retry_at = kh_now_ms() + 500;
                    continue;
                }
            }
            int64_t tm = kh_now_ms();
            char *doc = merge_doc(c, base, c->pending_tr);
            tm = kh_now_ms() - tm;
            if (last_put && doc && !strcmp(doc, last_put)) {
                free(doc);
                pending = false;
                if (status_due)
                    write_status(c);
                status_due = false;
            } else if (doc) {
                struct kh_resp r;
                int64_t t0 = kh_now_ms();
                int st = admin_call(c, "PUT", doc, &r);
                if (st == 200) {
                    cJSON *a = cJSON_ParseWithLength(r.body, r.len);
                    put_version = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a, "version"));
                    cJSON_Delete(a);
                    size_t reused, made;
                    k8s_rcache_counts(c->opt.cache, &reused, &made);
                    logf_("PUT /config: version %g (%lld ms; translate %lld ms: %zu HTTPRoutes reused, %zu "
                          "translated; merge %lld ms)", put_version, (long long)(kh_now_ms() - t0),
                          (long long)translate_ms, reused, made, (long long)tm);
                    free(last_put);
                    last_put = doc;
                    pending = false;
                    if (status_due)
                        write_status(c);
                    status_due = false;
                } else {
                    logf_("PUT /config: %s%s; retrying", st < 0 ? "no answer" : "refused: ",
                          st < 0 ? "" : (r.body ? r.body : ""));
                    free(doc);
                    retry_at = kh_now_ms() + (st < 0 ? 500 : 5000);
                }
                free(r.body);
            }
        }
        if (last_put && kh_now_ms() >= next_check) {
            next_check = kh_now_ms() + GW_CHECK_MS;
            double v = 0;
            cJSON *cur = admin_get(c, &v);
            if (cur && v < put_version) {
                logf_("the gateway's config version went back (%g < %g): it restarted; PUT again", v,
                      put_version);
                cJSON_Delete(base);
                base = cur;
                cur = NULL;
                free(last_put);
                last_put = NULL;
                pending = true;
                retry_at = 0;
            }
            cJSON_Delete(cur);
        }
    }
    atomic_store(&c->stop, true);
    for (size_t i = 0; i < NRES; i++)
        pthread_join(ws[i].th, NULL);
    free(last_put);
    free(last_conds);
    cJSON_Delete(base);
    return 0;
}

/* ---------------------------------------------------------------- command line */

static int parse_admin(struct ctl *c, const char *url)
{
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "sluice-k8s watch: --admin %s: expected http://HOST:PORT (https to the admin API "
                "is not supported)\n", url);
        return -1;
    }
    const char *h = url + 7, *end = h + strcspn(h, "/");
    const char *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (rb && rb + 1 < end && rb[1] == ':') {
            c->admin_host = strndup(h + 1, (size_t)(rb - h - 1));
            colon = rb + 1;
        }
    } else if ((colon = memchr(h, ':', (size_t)(end - h))) != NULL) {
        c->admin_host = strndup(h, (size_t)(colon - h));
    }
    if (colon == NULL || c->admin_host == NULL || !*c->admin_host || colon + 1 >= end ||
        (*end && strcmp(end, "/") != 0)) {
        fprintf(stderr, "sluice-k8s watch: --admin %s: expected http://HOST:PORT\n", url);
        return -1;
    }
    c->admin_port = strndup(colon + 1, (size_t)(end - colon - 1));
    return 0;
}

int k8s_watch_main(int argc, char **argv)
{
    const char *kubeconfig = NULL, *admin = NULL, *token = NULL;
    bool in_cluster = false;
    struct ctl *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return 2;
    c->opt = (struct k8s_opts){ .gateway_class = "sluice", .bind_host = "0.0.0.0" };
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--in-cluster")) {
            in_cluster = true;
        } else if (i + 1 < argc && !strcmp(a, "--kubeconfig")) {
            kubeconfig = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--admin")) {
            admin = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--admin-token")) {
            token = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--gateway-class")) {
            c->opt.gateway_class = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--gateway-address")) {
            c->address = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--listen-host")) {
            c->opt.bind_host = argv[++i];
        } else {
            fprintf(stderr, "sluice-k8s watch: %s: unknown or incomplete argument\n", a);
            free(c);
            return 1;
        }
    }
    if ((kubeconfig != NULL) == in_cluster || admin == NULL || !*c->opt.gateway_class ||
        !*c->opt.bind_host) {
        fprintf(stderr, "usage: sluice-k8s watch (--kubeconfig FILE | --in-cluster) --admin http://HOST:PORT\n"
                        "                        [--admin-token T] [--gateway-class NAME] [--listen-host HOST]\n"
                        "                        [--gateway-address ADDR (default $POD_IP)]\n");
        free(c);
        return 1;
    }
    int rc = 1;
    char err[1024];
    if (parse_admin(c, admin) != 0)
        goto out;
    if (token && !*token)
        token = NULL;
    if (c->address == NULL || !*c->address)
        c->address = getenv("POD_IP");
    c->admin_token = token ? strdup(token) : NULL;
    if (c->admin_token && strlen(c->admin_token) > 1000) {
        fprintf(stderr, "sluice-k8s watch: --admin-token is too long\n");
        goto out;
    }
    const char *sa = getenv("SLUICE_K8S_SERVICEACCOUNT_DIR");
    if ((kubeconfig ? k8s_conf_kubeconfig(&c->conf, kubeconfig, err, sizeof err)
                    : k8s_conf_in_cluster(&c->conf, sa && *sa ? sa : "/var/run/secrets/kubernetes.io/serviceaccount",
                                          err, sizeof err)) != 0) {
        fprintf(stderr, "sluice-k8s watch: %s\n", err);
        goto out;
    }
    c->tls = kh_tls_ctx(c->conf.ca, c->conf.ca_len, c->conf.cert, c->conf.cert_len, c->conf.key,
                        c->conf.key_len, err, sizeof err);
    if (c->tls == NULL) {
        fprintf(stderr, "sluice-k8s watch: %s\n", err);
        goto out;
    }
    struct sigaction sa_ = { .sa_handler = on_signal };
    sigemptyset(&sa_.sa_mask);
    sigaction(SIGTERM, &sa_, NULL);
    sigaction(SIGINT, &sa_, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    for (size_t i = 0; i < NRES; i++)
        c->objs[i] = cJSON_CreateObject();
    c->grave = cJSON_CreateArray();
    c->opt.cache = k8s_rcache_new();
    logf_("API server %s:%s, gateway admin %s:%s", c->conf.host, c->conf.port, c->admin_host, c->admin_port);
    rc = run(c);
    cJSON_Delete(c->pending_tr);
    k8s_rcache_free(c->opt.cache);
    k8s_store_free(&c->snap);
    for (size_t i = 0; i < NRES; i++)
        cJSON_Delete(c->objs[i]);
    cJSON_Delete(c->grave);
    free(c->added);
    k8s_conds_free(&c->snap_conds);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
out:
    SSL_CTX_free(c->tls);
    k8s_conf_free(&c->conf);
    free(c->admin_host);
    free(c->admin_port);
    free(c->admin_token);
    free(c);
    return rc;
}
