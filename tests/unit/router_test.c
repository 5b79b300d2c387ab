/*
 * router_test.c - route precedence, host/path normalisation, rewrites, and a
 * differential check of rt_match against a brute-force reading of the SPEC
 * precedence list.  Configs are built by hand (no config.c): every string a
 * request carries is copied into an exact-size buffer without a NUL, so an
 * over-read shows up under ASan.
 */
#include "tap.h"
#include "../../router/router.c"
#include "../../router/jsonmatch.c"
#include "../../gateway/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation tracking: LeakSanitizer must see nothing left ---- */

static void **tallocs;
static size_t ntallocs, captallocs;

static void *talloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p == NULL)
        abort();
    if (ntallocs == captallocs) {
        captallocs = captallocs ? captallocs * 2 : 256;
        tallocs = realloc(tallocs, captallocs * sizeof(*tallocs));
        if (tallocs == NULL)
            abort();
    }
    tallocs[ntallocs++] = p;
    return p;
}

static void tfree_all(void)
{
    for (size_t i = 0; i < ntallocs; i++)
        free(tallocs[i]);
    free(tallocs);
    tallocs = NULL;
    ntallocs = captallocs = 0;
}

static char *tstr(const char *s)
{
    size_t n = strlen(s);
    char *p = talloc(n + 1);
    memcpy(p, s, n);
    return p;
}

/* No NUL: a reader that runs past len trips ASan. */
static char *tdupn(const char *s, size_t n)
{
    char *p = talloc(n ? n : 1);
    memcpy(p, s, n);
    return p;
}

/* ---- hand-built config ---- */

#define MAXR 12000
#define MAXV 8

static struct sl_config C;
static struct cfg_route *R, **RP;     /* the routes, and C.routes: RP[i] == &R[i] */

static void cfg_reset(void)
{
    if (R == NULL) {
        R = talloc(MAXR * sizeof(*R));
        RP = talloc(MAXR * sizeof(*RP));
        for (size_t i = 0; i < MAXR; i++)
            RP[i] = &R[i];
    }
    memset(R, 0, MAXR * sizeof(*R));
    memset(&C, 0, sizeof(C));
    C.routes = RP;
}

static struct cfg_route *route(const char *name)
{
    struct cfg_route *r = &R[C.nroutes];
    r->index = C.nroutes++;
    r->name = tstr(name);
    return r;
}

static void hosts(struct cfg_route *r, ...)
{
    va_list ap;
    const char *h;
    r->hosts = talloc(MAXV * sizeof(char *));
    va_start(ap, r);
    while ((h = va_arg(ap, const char *)) != NULL)
        r->hosts[r->nhosts++] = tstr(h);
    va_end(ap);
}

static void methods(struct cfg_route *r, ...)
{
    va_list ap;
    const char *m;
    r->methods = talloc(MAXV * sizeof(char *));
    va_start(ap, r);
    while ((m = va_arg(ap, const char *)) != NULL)
        r->methods[r->nmethods++] = tstr(m);
    va_end(ap);
}

/* listener indexes, terminated by -1 */
static void listen_on(struct cfg_route *r, ...)
{
    va_list ap;
    int l;
    r->listeners = talloc(MAXV * sizeof(char *));
    r->listener_idx = talloc(MAXV * sizeof(size_t));
    va_start(ap, r);
    while ((l = va_arg(ap, int)) >= 0) {
        r->listeners[r->nlisteners] = tstr("l");
        r->listener_idx[r->nlisteners++] = (size_t)l;
    }
    va_end(ap);
}

static void set_path(struct cfg_route *r, enum cfg_path_kind k, const char *p)
{
    r->path_kind = k;
    r->path = tstr(p);
    r->path_len = (uint32_t)strlen(p);
}

static void prefix(struct cfg_route *r, const char *p) { set_path(r, CFG_PATH_PREFIX, p); }
static void exact(struct cfg_route *r, const char *p) { set_path(r, CFG_PATH_EXACT, p); }

static void add_kv(struct cfg_kv **v, size_t *n, const char *name, const char *value)
{
    if (*v == NULL)
        *v = talloc(MAXV * sizeof(**v));
    struct cfg_kv *kv = &(*v)[(*n)++];
    kv->name = tstr(name);
    kv->value = tstr(value);
    kv->name_len = (uint32_t)strlen(name);
    kv->value_len = (uint32_t)strlen(value);
}

static void header(struct cfg_route *r, const char *n, const char *v)
{
    add_kv(&r->match_headers, &r->nmatch_headers, n, v);
}

static void query(struct cfg_route *r, const char *n, const char *v)
{
    add_kv(&r->match_query, &r->nmatch_query, n, v);
}

/* ---- requests ---- */

/* hdrs: "name: value" lines separated by '\n', or NULL. target: path[?query]. */
static void make_req(struct rt_request *q, struct h1_header *hv, size_t listener,
                     const char *method, const char *host, const char *target,
                     const char *hdrs)
{
    memset(q, 0, sizeof(*q));
    q->listener = listener;
    q->method = tdupn(method, strlen(method));
    q->method_len = strlen(method);
    if (host) {
        q->host = tdupn(host, strlen(host));
        q->host_len = strlen(host);
    }
    const char *qm = strchr(target, '?');
    size_t plen = qm ? (size_t)(qm - target) : strlen(target);
    q->path = tdupn(target, plen);
    q->path_len = plen;
    if (qm) {
        q->query = tdupn(qm + 1, strlen(qm + 1));
        q->query_len = strlen(qm + 1);
    }
    size_t n = 0;
    while (hdrs && *hdrs) {
        const char *nl = strchr(hdrs, '\n');
        size_t ll = nl ? (size_t)(nl - hdrs) : strlen(hdrs);
        const char *colon = memchr(hdrs, ':', ll);
        size_t nl_ = (size_t)(colon - hdrs);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        size_t vl = (size_t)(hdrs + ll - v);
        hv[n].name = tdupn(hdrs, nl_);
        hv[n].name_len = (uint32_t)nl_;
        hv[n].value = tdupn(v, vl);
        hv[n].value_len = (uint32_t)vl;
        n++;
        hdrs = nl ? nl + 1 : hdrs + ll;
    }
    q->headers = hv;
    q->nheaders = n;
}

static const struct cfg_route *look(const struct rt_table *t, size_t listener, const char *method,
                                    const char *host, const char *target, const char *hdrs)
{
    struct rt_request q;
    struct h1_header hv[16];
    make_req(&q, hv, listener, method, host, target, hdrs);
    return rt_match(t, &q);
}

static int nlookups;

static void expect_l(const struct rt_table *t, size_t listener, const char *method,
                     const char *host, const char *target, const char *hdrs, const char *want)
{
    const struct cfg_route *r = look(t, listener, method, host, target, hdrs);
    const char *got = r ? r->name : NULL;
    char shown[256];
    snprintf(shown, sizeof(shown), "%s", hdrs ? hdrs : "");
    for (char *p = shown; (p = strchr(p, '\n')) != NULL;)
        *p = ',';           /* one TAP line per test */
    nlookups++;
    ok((got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0),
       "L%zu %s %s %s%s%s -> %s (got %s)", listener, method, host ? host : "(no host)",
       target, hdrs ? " with " : "", shown, want ? want : "404", got ? got : "404");
}

static void expect(const struct rt_table *t, const char *method, const char *host,
                   const char *target, const char *hdrs, const char *want)
{
    expect_l(t, 0, method, host, target, hdrs, want);
}

/* ---- precedence tables ---- */

static void test_hosts(void)
{
    struct cfg_route *r;
    cfg_reset();
    r = route("any");              /* document order first: must still lose to hosts */
    prefix(r, "/");
    r = route("wild");             hosts(r, "*.example.com", NULL); prefix(r, "/");
    r = route("wild-eu");          hosts(r, "*.eu.example.com", NULL); prefix(r, "/");
    r = route("exact");            hosts(r, "api.example.com", NULL); prefix(r, "/");
    r = route("get-only");         hosts(r, "get.example.com", NULL); methods(r, "GET", NULL); prefix(r, "/");
    r = route("only-path");        hosts(r, "fb.example.com", NULL); prefix(r, "/only");
    r = route("wild-get");         hosts(r, "*.eu.example.com", NULL); methods(r, "GET", NULL); exact(r, "/wg");
    r = route("v6");               hosts(r, "[::1]", "fe80::2", NULL); prefix(r, "/");
    r = route("multi");            hosts(r, "m1.test", "m2.test", "*.m.test", NULL); prefix(r, "/");
    r = route("trail");            hosts(r, "dot.test.", NULL); prefix(r, "/");
    r = route("ip4");              hosts(r, "10.0.0.1", NULL); prefix(r, "/");

    struct rt_table *t = rt_table_build(&C);
    ok(t != NULL, "host table built");
    expect(t, "GET", "api.example.com", "/", NULL, "exact");
    expect(t, "GET", "API.Example.COM:8080", "/x", NULL, "exact");
    expect(t, "GET", "api.example.com.", "/x", NULL, "exact");
    expect(t, "GET", "api.example.com.:443", "/x", NULL, "exact");
    expect(t, "GET", "foo.example.com", "/", NULL, "wild");
    expect(t, "GET", "a.b.example.com", "/", NULL, "wild");
    expect(t, "GET", "FOO.EXAMPLE.COM:1", "/", NULL, "wild");
    expect(t, "GET", "x.eu.example.com", "/", NULL, "wild-eu");
    expect(t, "GET", "y.x.eu.example.com", "/", NULL, "wild-eu");
    expect(t, "GET", "eu.example.com", "/", NULL, "wild");           /* *.eu needs a label in front */
    expect(t, "GET", "example.com", "/", NULL, "any");               /* wildcard never matches its base */
    expect(t, "GET", ".example.com", "/", NULL, "any");              /* empty label is no label */
    expect(t, "GET", "xexample.com", "/", NULL, "any");
    expect(t, "GET", "get.example.com", "/", NULL, "get-only");
    expect(t, "POST", "get.example.com", "/", NULL, "wild");         /* exact host's routes fail: fall back */
    expect(t, "GET", "fb.example.com", "/only/x", NULL, "only-path");
    expect(t, "GET", "fb.example.com", "/other", NULL, "wild");      /* exact host, path misses: fall back */
    expect(t, "GET", "a.eu.example.com", "/wg", NULL, "wild-get");   /* exact path within longer wildcard */
    expect(t, "POST", "a.eu.example.com", "/wg", NULL, "wild-eu");   /* ...its method fails: prefix "/" of same bucket */
    expect(t, "GET", "[::1]:8080", "/", NULL, "v6");
    expect(t, "GET", "[::1]", "/", NULL, "v6");
    expect(t, "GET", "[FE80::2]:80", "/", NULL, "v6");
    expect(t, "GET", "fe80::2", "/", NULL, "v6");                    /* bare literal: no port to strip */
    expect(t, "GET", "[::2]:80", "/", NULL, "any");
    expect(t, "GET", "m2.test", "/", NULL, "multi");
    expect(t, "GET", "z.m.test", "/", NULL, "multi");
    expect(t, "GET", "m.test", "/", NULL, "any");
    expect(t, "GET", "dot.test", "/", NULL, "trail");
    expect(t, "GET", "10.0.0.1:80", "/", NULL, "ip4");
    expect(t, "GET", NULL, "/", NULL, "any");
    expect(t, "GET", "", "/", NULL, "any");
    rt_table_free(t);

    /* without an any-host route, unknown hosts are a 404 */
    cfg_reset();
    r = route("exact");            hosts(r, "a.test", NULL); prefix(r, "/");
    r = route("wild");             hosts(r, "*.b.test", NULL); prefix(r, "/p");
    t = rt_table_build(&C);
    expect(t, "GET", "b.test", "/", NULL, NULL);
    expect(t, "GET", "x.b.test", "/q", NULL, NULL);
    expect(t, "GET", "x.b.test", "/p/q", NULL, "wild");
    expect(t, "GET", NULL, "/", NULL, NULL);
    expect(t, "GET", "a.test:99", "/anything", NULL, "exact");
    rt_table_free(t);
}

static void test_paths(void)
{
    struct cfg_route *r;
    cfg_reset();
    r = route("catchall");                                     /* no path: matches everything */
    r = route("pre-match");        prefix(r, "/match");
    r = route("ex-match");         exact(r, "/match");         /* later in document, still wins */
    r = route("pre-deep");         prefix(r, "/match/prefix/one");
    r = route("ex-deep");          exact(r, "/match/exact/one");
    r = route("api");              prefix(r, "/api");
    r = route("docs");             prefix(r, "/docs/");        /* hand-built, not normalised */
    r = route("ex-slash");         exact(r, "/slash/");
    r = route("post-exact");       exact(r, "/p"); methods(r, "POST", NULL);
    r = route("pre-p");            prefix(r, "/p");
    r = route("case");             prefix(r, "/Case");

    struct rt_table *t = rt_table_build(&C);
    expect(t, "GET", "h", "/match", NULL, "ex-match");
    expect(t, "GET", "h", "/match/", NULL, "pre-match");
    expect(t, "GET", "h", "/match/x", NULL, "pre-match");
    expect(t, "GET", "h", "/matchx", NULL, "catchall");
    expect(t, "GET", "h", "/match/prefix/one", NULL, "pre-deep");
    expect(t, "GET", "h", "/match/prefix/one/two/three", NULL, "pre-deep");
    expect(t, "GET", "h", "/match/prefix/onex", NULL, "pre-match");
    expect(t, "GET", "h", "/match/exact/one", NULL, "ex-deep");
    expect(t, "GET", "h", "/match/exact/one/", NULL, "pre-match");
    expect(t, "GET", "h", "/api", NULL, "api");
    expect(t, "GET", "h", "/api/", NULL, "api");
    expect(t, "GET", "h", "/api/x/y?z=1", NULL, "api");
    expect(t, "GET", "h", "/apix", NULL, "catchall");
    expect(t, "GET", "h", "/ap", NULL, "catchall");
    expect(t, "GET", "h", "/docs", NULL, "docs");
    expect(t, "GET", "h", "/docs/a", NULL, "docs");
    expect(t, "GET", "h", "/slash/", NULL, "ex-slash");
    expect(t, "GET", "h", "/slash", NULL, "catchall");
    expect(t, "POST", "h", "/p", NULL, "post-exact");
    expect(t, "GET", "h", "/p", NULL, "pre-p");                /* exact slot fails: longest prefix */
    expect(t, "GET", "h", "/case/x", NULL, "catchall");        /* paths are case-sensitive */
    expect(t, "GET", "h", "/Case/x", NULL, "case");
    expect(t, "GET", "h", "/", NULL, "catchall");
    expect(t, "GET", "h", "", NULL, "catchall");
    expect(t, "OPTIONS", "h", "*", NULL, "catchall");
    expect(t, "GET", "h", "//api", NULL, "catchall");
    expect(t, "GET", "h", "/api//x", NULL, "api");
    rt_table_free(t);

    /* no "/" anywhere: misses are 404, not a stray prefix */
    cfg_reset();
    r = route("a");                prefix(r, "/a/b");
    r = route("e");                exact(r, "/e");
    t = rt_table_build(&C);
    expect(t, "GET", "h", "/a", NULL, NULL);
    expect(t, "GET", "h", "/a/b", NULL, "a");
    expect(t, "GET", "h", "/a/bc", NULL, NULL);
    expect(t, "GET", "h", "/e/", NULL, NULL);
    expect(t, "GET", "h", "/", NULL, NULL);
    rt_table_free(t);

    /* prefixes deeper than RT_MAX_DEPTH take the slow boundary path */
    char deep[256], deeper[300];
    size_t n = 0;
    for (int i = 0; i < RT_MAX_DEPTH + 6; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "/%c", 'a' + i % 26);
    snprintf(deeper, sizeof(deeper), "%s/tail/more", deep);
    cfg_reset();
    r = route("root");             prefix(r, "/");
    r = route("deep");             prefix(r, deep);
    r = route("shallow");          prefix(r, "/a/b");
    t = rt_table_build(&C);
    expect(t, "GET", "h", deeper, NULL, "deep");
    expect(t, "GET", "h", deep, NULL, "deep");
    deep[n - 1] = 'Z';
    expect(t, "GET", "h", deep, NULL, "shallow");
    rt_table_free(t);
}

static void test_refinements(void)
{
    struct cfg_route *r;
    cfg_reset();
    r = route("plain");            hosts(r, "c.test", NULL); prefix(r, "/c");
    r = route("plain-dup");        hosts(r, "c.test", NULL); prefix(r, "/c");
    r = route("q2");               hosts(r, "c.test", NULL); prefix(r, "/c"); query(r, "v", "2"); query(r, "w", "x");
    r = route("q1");               hosts(r, "c.test", NULL); prefix(r, "/c"); query(r, "v", "2");
    r = route("hdr1");             hosts(r, "c.test", NULL); prefix(r, "/c"); header(r, "x-env", "canary");
    r = route("hdr2");             hosts(r, "c.test", NULL); prefix(r, "/c"); header(r, "x-env", "canary"); header(r, "x-user", "bob");
    r = route("method");           hosts(r, "c.test", NULL); prefix(r, "/c"); methods(r, "POST", "PUT", NULL);
    r = route("method-hdr");       hosts(r, "c.test", NULL); prefix(r, "/c"); methods(r, "POST", NULL); header(r, "x-env", "canary");
    r = route("plus");             hosts(r, "c.test", NULL); prefix(r, "/c"); query(r, "p", "a+b");
    r = route("flag");             hosts(r, "c.test", NULL); prefix(r, "/c"); query(r, "flag", "");

    struct rt_table *t = rt_table_build(&C);
    expect(t, "GET", "c.test", "/c", NULL, "plain");                           /* document order */
    expect(t, "POST", "c.test", "/c", NULL, "method");
    expect(t, "PUT", "c.test", "/c", NULL, "method");
    expect(t, "post", "c.test", "/c", NULL, "plain");                          /* method is case-sensitive */
    expect(t, "POST", "c.test", "/c", "x-env: canary", "method-hdr");          /* method beats header count */
    expect(t, "POST", "c.test", "/c", "x-env: canary\nx-user: bob", "method-hdr");
    expect(t, "GET", "c.test", "/c", "x-env: canary", "hdr1");
    expect(t, "GET", "c.test", "/c", "X-Env: canary", "hdr1");                 /* name case-insensitive */
    expect(t, "GET", "c.test", "/c", "x-env: Canary", "plain");                /* value exact */
    expect(t, "GET", "c.test", "/c", "x-env: prod\nx-env: canary", "hdr1");    /* any of several */
    expect(t, "GET", "c.test", "/c", "x-env: canary\nx-user: bob", "hdr2");    /* more headers first */
    expect(t, "GET", "c.test", "/c?v=2&w=x", "x-env: canary", "hdr1");         /* headers beat queries */
    expect(t, "GET", "c.test", "/c?v=2", NULL, "q1");
    expect(t, "GET", "c.test", "/c?v=2&w=x", NULL, "q2");                      /* more queries first */
    expect(t, "GET", "c.test", "/c?w=x&v=2", NULL, "q2");
    expect(t, "GET", "c.test", "/c?x=1&v=2&y", NULL, "q1");
    expect(t, "GET", "c.test", "/c?V=2", NULL, "plain");                       /* query name case-sensitive */
    expect(t, "GET", "c.test", "/c?v=22", NULL, "plain");
    expect(t, "GET", "c.test", "/c?v=%32", NULL, "plain");                     /* no percent-decoding */
    expect(t, "GET", "c.test", "/c?p=a+b", NULL, "plus");
    expect(t, "GET", "c.test", "/c?p=a%20b", NULL, "plain");
    expect(t, "GET", "c.test", "/c?p=a b", NULL, "plain");
    expect(t, "GET", "c.test", "/c?flag", NULL, "flag");
    expect(t, "GET", "c.test", "/c?flag=", NULL, "flag");
    expect(t, "GET", "c.test", "/c/sub?v=2", NULL, "q1");
    rt_table_free(t);
}

static void test_listeners(void)
{
    struct cfg_route *r;
    cfg_reset();
    r = route("l1-only");          listen_on(r, 1, -1); prefix(r, "/l");
    r = route("l0-l2");            listen_on(r, 0, 2, -1); exact(r, "/l/x");
    r = route("all");              prefix(r, "/l");
    r = route("l2-host");          listen_on(r, 2, -1); hosts(r, "h.test", NULL);

    struct rt_table *t = rt_table_build(&C);
    expect_l(t, 1, "GET", "h", "/l/y", NULL, "l1-only");
    expect_l(t, 0, "GET", "h", "/l/y", NULL, "all");
    expect_l(t, 0, "GET", "h", "/l/x", NULL, "l0-l2");
    expect_l(t, 1, "GET", "h", "/l/x", NULL, "l1-only");
    expect_l(t, 2, "GET", "h", "/l/x", NULL, "l0-l2");
    expect_l(t, 2, "GET", "h.test", "/other", NULL, "l2-host");
    expect_l(t, 1, "GET", "h.test", "/other", NULL, NULL);
    expect_l(t, 1, "GET", "h.test", "/l", NULL, "l1-only");
    rt_table_free(t);
}

/* Many hosts and paths: exercises table growth and probing, not precedence. */
static void test_many(void)
{
    char buf[64];
    cfg_reset();
    const int N = 5000;
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "r%d", i);
        struct cfg_route *r = route(buf);
        snprintf(buf, sizeof(buf), i % 3 == 0 ? "*.w%d.test" : "h%d.test", i);
        hosts(r, buf, NULL);
        snprintf(buf, sizeof(buf), "/p%d/q", i % 97);
        prefix(r, buf);
    }
    struct rt_table *t = rt_table_build(&C);
    int bad = 0, misses_bad = 0;
    for (int i = 0; i < N; i++) {
        char host[64], path[64], want[32];
        snprintf(host, sizeof(host), i % 3 == 0 ? "x.w%d.test" : "H%d.TEST", i);
        snprintf(path, sizeof(path), "/p%d/q/r", i % 97);
        snprintf(want, sizeof(want), "r%d", i);
        const struct cfg_route *r = look(t, 0, "GET", host, path, NULL);
        bad += r == NULL || strcmp(r->name, want) != 0;
        snprintf(path, sizeof(path), "/p%d/qq", i % 97);
        misses_bad += look(t, 0, "GET", host, path, NULL) != NULL;
    }
    ok(bad == 0, "%d routes over %d hosts: every host finds its route (%d wrong)", N, N, bad);
    ok(misses_bad == 0, "%d near-miss paths are 404 (%d wrong)", N, misses_bad);
    rt_table_free(t);

    cfg_reset();
    t = rt_table_build(&C);
    ok(t != NULL && look(t, 0, "GET", "a", "/", NULL) == NULL, "empty config: builds, everything 404");
    rt_table_free(t);
    rt_table_free(NULL);
}

/* ---- differential test against a brute-force reading of the SPEC ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* Score of a route for a request, compared lexicographically; -1 host = no match. */
struct score { long v[7]; };

static int score_cmp(const struct score *a, const struct score *b)
{
    for (int i = 0; i < 7; i++)
        if (a->v[i] != b->v[i])
            return a->v[i] < b->v[i] ? -1 : 1;
    return 0;
}

static void lower_copy(char *dst, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    dst[n] = '\0';
}

static bool ref_query_has(const char *q, const char *name, const char *value)
{
    char buf[256];
    if (q == NULL)
        return false;
    snprintf(buf, sizeof(buf), "%s", q);
    for (char *save = NULL, *tok = strtok_r(buf, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        const char *v = "";
        if (eq) {
            *eq = '\0';
            v = eq + 1;
        }
        if (strcmp(tok, name) == 0 && strcmp(v, value) == 0)
            return true;
    }
    return false;
}

/* hostn: normalised, lower-case request host ("" if none); path, query
 * NUL-terminated (query NULL if none). */
static bool ref_score(const struct cfg_route *r, size_t listener, const char *method,
                      const char *hostn, const char *path, const char *query,
                      const char *hdrs, struct score *s)
{
    long hs = -1, hl = 0;
    if (r->nhosts == 0) {
        hs = 0;
    } else {
        for (size_t i = 0; i < r->nhosts; i++) {
            const char *h = r->hosts[i];
            size_t hn = strlen(hostn), kn = strlen(h);
            if (h[0] == '*') {
                const char *suf = h + 1;
                size_t sn = kn - 1;
                if (hn > sn && strcmp(hostn + hn - sn, suf) == 0 &&
                    (hs < 1 || (hs == 1 && (long)sn > hl))) {
                    hs = 1;
                    hl = (long)sn;
                }
            } else if (strcmp(h, hostn) == 0) {
                hs = 2;
                hl = 0;
            }
        }
    }
    if (hs < 0)
        return false;
    long ps, pl = 0;
    size_t plen = strlen(path);
    if (r->path_kind == CFG_PATH_EXACT) {
        if (strcmp(r->path, path) != 0)
            return false;
        ps = 2;
    } else if (r->path_kind == CFG_PATH_PREFIX && strcmp(r->path, "/") != 0) {
        size_t k = strlen(r->path);
        if (k > plen || strncmp(r->path, path, k) != 0 || (plen > k && path[k] != '/'))
            return false;
        ps = 1;
        pl = (long)k;
    } else {
        ps = 1;
        pl = 1;
    }
    if (r->nlisteners) {
        bool f = false;
        for (size_t i = 0; i < r->nlisteners; i++)
            f |= r->listener_idx[i] == listener;
        if (!f)
            return false;
    }
    if (r->nmethods) {
        bool f = false;
        for (size_t i = 0; i < r->nmethods; i++)
            f |= strcmp(r->methods[i], method) == 0;
        if (!f)
            return false;
    }
    for (size_t i = 0; i < r->nmatch_headers; i++) {
        char want[128], line[128];
        bool f = false;
        snprintf(want, sizeof(want), "%s: %s", r->match_headers[i].name, r->match_headers[i].value);
        for (const char *p = hdrs; p && *p;) {
            const char *nl = strchr(p, '\n');
            size_t ll = nl ? (size_t)(nl - p) : strlen(p);
            lower_copy(line, p, ll);
            const char *colon = strchr(line, ':');
            /* lower-case only the name part of the request line */
            memcpy(line + (colon - line), p + (colon - line), ll - (size_t)(colon - line));
            f |= strcmp(line, want) == 0;
            p = nl ? nl + 1 : p + ll;
        }
        if (!f)
            return false;
    }
    for (size_t i = 0; i < r->nmatch_query; i++)
        if (!ref_query_has(query, r->match_query[i].name, r->match_query[i].value))
            return false;
    *s = (struct score){{ hs, hl, ps, pl, r->nmethods > 0, (long)r->nmatch_headers,
                          (long)r->nmatch_query }};
    return true;
}

static const struct cfg_route *ref_match(size_t listener, const char *method, const char *host,
                                         const char *target, const char *hdrs)
{
    char hostn[128] = "", path[128], qbuf[128];
    const char *query = NULL;
    if (host) {
        const char *h = host;
        size_t n = strlen(h);
        if (h[0] == '[') {
            n = (size_t)(strchr(h, ']') - h) - 1;
            h++;
        } else if (strchr(h, ':')) {
            n = (size_t)(strchr(h, ':') - h);
        }
        if (n > 0 && h[n - 1] == '.')
            n--;
        lower_copy(hostn, h, n);
    }
    snprintf(path, sizeof(path), "%s", target);
    char *qm = strchr(path, '?');
    if (qm) {
        *qm = '\0';
        snprintf(qbuf, sizeof(qbuf), "%s", qm + 1);
        query = qbuf;
    }
    const struct cfg_route *best = NULL;
    struct score bs = {{0}}, s;
    for (size_t i = 0; i < C.nroutes; i++) {
        if (!ref_score(C.routes[i], listener, method, hostn, path, query, hdrs, &s))
            continue;
        if (best == NULL || score_cmp(&s, &bs) > 0) {   /* ties: the earlier route stays */
            best = C.routes[i];
            bs = s;
        }
    }
    return best;
}

/* Random requests of the differential test. */
static const char *rhosts[] = { "a.com", "A.com:80", "b.a.com", "z.b.a.com", "q.a.com",
                                "c.org", "x.c.org", "X.C.ORG.", "org", "[::1]:8", NULL,
                                "a.com.", "y.x.c.org:1", "a.b.LONG-subdomain.example-company.com:8443",
                                "long-subdomain.example-company.com" };
static const char *rpaths[] = { "/", "/x", "/x/", "/x/y", "/x/y/z", "/x/y/z/w", "/x/y/z/w/v",
                                "/xy", "/xyz", "/y/x", "", "//x", "/x//y", "/y" };
static const char *rqueries[] = { "", "?q=1", "?q=2&r=", "?r&q=1", "?q=1+", "?Q=1", "?q=1&q=2" };
static const char *rmethods[] = { "GET", "POST", "get" };
static const char *rhdrs[] = { NULL, "x-a: 1", "X-A: 2", "x-b: 1\nx-a: 2", "x-a: 2\nx-a: 1",
                               "x-a: 1\nx-b: 1" };

struct diff_count {
    long agree, disagree, hits;
};

/* n random lookups on t, each checked against ref_match() on C. */
static void diff_lookups(const struct rt_table *t, int n, const char *when, struct diff_count *dc)
{
    char target[128];

    for (int k = 0; k < n; k++) {
        size_t l = rnd(2);
        const char *m = rmethods[rnd(3)];
        const char *h = rhosts[rnd(15)];
        const char *hd = rhdrs[rnd(6)];
        snprintf(target, sizeof(target), "%s%s", rpaths[rnd(14)], rqueries[rnd(7)]);
        const struct cfg_route *got = look(t, l, m, h, target, hd);
        const struct cfg_route *want = ref_match(l, m, h, target, hd);
        dc->hits += want != NULL;
        if (got == want) {
            dc->agree++;
        } else if (dc->disagree++ < 5) {
            printf("# %s: L%zu %s %s %s [%s]: router %s, reference %s\n", when, l, m,
                   h ? h : "-", target, hd ? hd : "", got ? got->name : "404",
                   want ? want->name : "404");
        }
    }
}

static void test_differential(void)
{
    static const char *chosts[] = { "a.com", "b.a.com", "*.a.com", "*.b.a.com", "c.org",
                                    "*.org", "x.c.org", "*.long-subdomain.example-company.com" };
    static const char *cpaths[] = { "/", "/x", "/x/y", "/x/y/z", "/xy", "/y", "/x/y/z/w" };
    static const char *kv[][2] = { { "x-a", "1" }, { "x-a", "2" }, { "x-b", "1" } };
    static const char *qv[][2] = { { "q", "1" }, { "q", "2" }, { "r", "" } };
    struct diff_count dc = { 0 }, du = { 0 };
    long upd_shared = 0, upd_wrong = 0;
    char namebuf[16];

    for (int round = 0; round < 300; round++) {
        cfg_reset();
        int nr = 1 + (int)rnd(14);
        for (int i = 0; i < nr; i++) {
            snprintf(namebuf, sizeof(namebuf), "r%d", i);
            struct cfg_route *r = route(namebuf);
            int nh = (int)rnd(3);
            if (nh) {
                r->hosts = talloc(MAXV * sizeof(char *));
                for (int j = 0; j < nh; j++)
                    r->hosts[r->nhosts++] = tstr(chosts[rnd(8)]);
            }
            switch (rnd(3)) {
            case 0: break;
            case 1: prefix(r, cpaths[rnd(7)]); break;
            default: exact(r, cpaths[rnd(7)]); break;
            }
            switch (rnd(5)) {
            case 0: methods(r, "GET", NULL); break;
            case 1: methods(r, "POST", "GET", NULL); break;
            default: break;
            }
            for (int j = (int)rnd(3); j > 0; j--) {
                int k = (int)rnd(3);
                header(r, kv[k][0], kv[k][1]);
            }
            for (int j = (int)rnd(4) / 2; j > 0; j--) {
                int k = (int)rnd(3);
                query(r, qv[k][0], qv[k][1]);
            }
            switch (rnd(6)) {
            case 0: listen_on(r, 0, -1); break;
            case 1: listen_on(r, 1, 0, -1); break;
            default: break;
            }
        }
        struct rt_table *t = rt_table_build(&C);
        diff_lookups(t, 300, "mismatch", &dc);

        /* a reload: the same routes with one changed, in a new array */
        struct sl_config old = C;
        /* as a reload builds it: the unchanged structs shared, the changed
         * route a struct of its own */
        struct cfg_route **r2 = talloc((size_t)nr * sizeof(*r2));
        memcpy(r2, RP, (size_t)nr * sizeof(*r2));
        int k = (int)rnd((unsigned)nr), what = (int)rnd(9);
        struct cfg_route *x = r2[k] = talloc(sizeof(*x));
        *x = R[k];
        bool values_only = what < 3;
        switch (what) {
        case 0:     /* header values, not how many */
            if (x->nmatch_headers) {
                struct cfg_kv *v = talloc(x->nmatch_headers * sizeof(*v));
                memcpy(v, x->match_headers, x->nmatch_headers * sizeof(*v));
                v[0].value = tstr(strcmp(v[0].value, "1") == 0 ? "2" : "1");
                x->match_headers = v;
                break;
            }
            /* fall through */
        case 1:     /* which methods, not whether */
            if (x->nmethods) {
                x->methods = talloc(MAXV * sizeof(char *));
                x->methods[0] = tstr(strcmp(R[k].methods[0], "GET") == 0 ? "POST" : "GET");
                for (size_t j = 1; j < x->nmethods; j++)
                    x->methods[j] = R[k].methods[j];
                break;
            }
            /* fall through */
        case 2:     /* the name (what it does, in the config) */
            x->name = tstr("renamed");
            break;
        case 3:     /* the hosts: "d.net" is none of chosts */
            x->nhosts = 0;
            hosts(x, "d.net", NULL);
            break;
        case 4: set_path(x, R[k].path_kind == CFG_PATH_EXACT ? CFG_PATH_PREFIX : CFG_PATH_EXACT, "/x/q"); break;
        case 5: if (R[k].nmethods) { x->methods = NULL; x->nmethods = 0; } else { methods(x, "GET", NULL); } break;
        case 6:     /* one header condition more (a copy: the old route keeps its own) */
        case 7: {   /* one query condition more */
            struct cfg_kv **v = what == 6 ? &x->match_headers : &x->match_query;
            size_t *n = what == 6 ? &x->nmatch_headers : &x->nmatch_query;
            struct cfg_kv *c = talloc(MAXV * sizeof(*c));
            if (*n)
                memcpy(c, *v, *n * sizeof(*c));
            *v = c;
            add_kv(v, n, what == 6 ? "x-b" : "r", what == 6 ? "1" : "");
            break;
        }
        default: if (R[k].nlisteners) { x->listeners = NULL; x->listener_idx = NULL; x->nlisteners = 0; }
                 else { listen_on(x, 1, -1); }
                 break;
        }
        C.routes = r2;
        bool shared = false;
        struct rt_table *t2 = rt_table_update(t, &old, &C, &shared);
        rt_table_free(t);       /* the new table outlives the old */
        if (shared != values_only && upd_wrong++ < 5)
            printf("# round %d: change %d to route %d: index %s\n", round, what, k,
                   shared ? "shared" : "rebuilt");
        upd_shared += shared;
        diff_lookups(t2, 100, "after update", &du);
        rt_table_free(t2);
    }
    ok(dc.disagree == 0 && dc.hits > 1000 && dc.hits < dc.agree,
       "differential: %ld random lookups agree with brute force (%ld hits), %ld disagree",
       dc.agree, dc.hits, dc.disagree);
    ok(du.disagree == 0 && du.agree > 10000,
       "after rt_table_update: %ld lookups agree with brute force, %ld disagree",
       du.agree, du.disagree);
    ok(upd_wrong == 0 && upd_shared > 50 && upd_shared < 250,
       "rt_table_update shares the index exactly when only values changed (%ld of 300 shared, "
       "%ld wrong)", upd_shared, upd_wrong);
}

/* The one-pass scans must give exactly the key hashes the table was built
 * with, at every word alignment. */
static void test_scan_hashes(void)
{
    static const char alpha[] = "aB/.x-Z9";
    struct rt_core fake;
    memset(&fake, 0, sizeof(fake));
    fake.max_depth = RT_MAX_DEPTH;
    int bad = 0, checked = 0;
    for (int round = 0; round < 3000; round++) {
        char buf[48];
        size_t n = rnd(sizeof(buf));
        for (size_t i = 0; i < n; i++)
            buf[i] = alpha[rnd(8)];
        char *s = tdupn(buf, n);

        struct rt_pathinfo pi;
        path_scan(&fake, s, n, &pi);
        bad += pi.hfull != path_hash(s, n);
        checked++;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] != '/')
                continue;
            if (k >= 1 && k < RT_MAX_DEPTH) {
                bad += pi.pos[k] != i || pi.h[k] != path_hash(s, i);
                checked++;
            }
            k++;
        }
        bad += pi.nslash != k;

        uint32_t dpos[RT_MAX_LABELS], nd;
        uint64_t dh[RT_MAX_LABELS];
        uint64_t full = host_scan(s, n, RT_MAX_LABELS, dpos, dh, &nd);
        bad += full != host_hash(s, n);
        checked++;
        uint32_t want = 0;
        for (size_t i = n; i-- > 1;) {
            if (s[i] != '.')
                continue;
            bad += want >= nd || dpos[want] != i || dh[want] != host_hash(s + i, n - i);
            want++;
            checked++;
        }
        bad += nd != want;
    }
    ok(bad == 0, "scan hashes equal key hashes (%d checked, %d bad)", checked, bad);
    ok(host_hash("Api.Example.COM", 15) == host_hash("api.example.com", 15) &&
       host_hash("api.example.con", 15) != host_hash("api.example.com", 15),
       "host hash ignores case only");
}

/* ---- rewrite table ---- */

struct rw_case {
    enum cfg_path_kind kind;
    const char *match;          /* configured path */
    enum cfg_rewrite_kind rw;
    const char *value;          /* replace_prefix / replace_path */
    const char *path;           /* request path */
    const char *want;
};

static void test_rewrite(void)
{
    static const struct rw_case cases[] = {
        { CFG_PATH_PREFIX, "/api", CFG_RW_STRIP_PREFIX, NULL, "/api/x", "/x" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_STRIP_PREFIX, NULL, "/api", "/" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_STRIP_PREFIX, NULL, "/api/", "/" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_STRIP_PREFIX, NULL, "/api/x/y/", "/x/y/" },
        { CFG_PATH_PREFIX, "/api/", CFG_RW_STRIP_PREFIX, NULL, "/api/x", "/x" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_STRIP_PREFIX, NULL, "/apix", "/apix" },
        { CFG_PATH_PREFIX, "/", CFG_RW_STRIP_PREFIX, NULL, "/x", "/x" },
        { CFG_PATH_PREFIX, "/", CFG_RW_STRIP_PREFIX, NULL, "/", "/" },
        { CFG_PATH_ANY, NULL, CFG_RW_STRIP_PREFIX, NULL, "/a/b", "/a/b" },
        { CFG_PATH_EXACT, "/old", CFG_RW_STRIP_PREFIX, NULL, "/old", "/" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_REPLACE_PREFIX, "/v2", "/api/x", "/v2/x" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_REPLACE_PREFIX, "/v2", "/api", "/v2" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_REPLACE_PREFIX, "/v2", "/api/", "/v2/" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_REPLACE_PREFIX, "/v2/", "/api/x", "/v2/x" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_REPLACE_PREFIX, "/", "/api/x", "/x" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_REPLACE_PREFIX, "/", "/api", "/" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_REPLACE_PREFIX, "/", "/api/", "/" },
        { CFG_PATH_PREFIX, "/api", CFG_RW_REPLACE_PREFIX, "", "/api", "/" },
        { CFG_PATH_PREFIX, "/", CFG_RW_REPLACE_PREFIX, "/v2", "/x", "/v2/x" },
        { CFG_PATH_PREFIX, "/prefix/one", CFG_RW_REPLACE_PREFIX, "/one", "/prefix/one/two", "/one/two" },
        { CFG_PATH_PREFIX, "/strip-prefix", CFG_RW_REPLACE_PREFIX, "/", "/strip-prefix", "/" },
        { CFG_PATH_PREFIX, "/strip-prefix", CFG_RW_REPLACE_PREFIX, "/", "/strip-prefix/three", "/three" },
        { CFG_PATH_PREFIX, "/full/one", CFG_RW_REPLACE_PATH, "/one", "/full/one/two", "/one" },
        { CFG_PATH_EXACT, "/x", CFG_RW_REPLACE_PATH, "/y/z", "/x", "/y/z" },
        { CFG_PATH_PREFIX, "/a", CFG_RW_NONE, NULL, "/a/b%20c", "/a/b%20c" },
    };
    char out[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct rw_case *c = &cases[i];
        struct cfg_route r;
        memset(&r, 0, sizeof(r));
        if (c->match)
            set_path(&r, c->kind, c->match);
        r.rewrite = c->rw;
        if (c->value) {
            r.rewrite_path = tstr(c->value);
            r.rewrite_path_len = (uint32_t)strlen(c->value);
        }
        char *in = tdupn(c->path, strlen(c->path));
        memset(out, 'X', sizeof(out));
        int n = rt_rewrite_path(&r, in, strlen(c->path), out, sizeof(out));
        ok(n == (int)strlen(c->want) && memcmp(out, c->want, (size_t)n) == 0 && out[n] == '\0',
           "rewrite %s %s %s: %s -> %s (got %.*s)", c->match ? c->match : "(any)",
           c->rw == CFG_RW_STRIP_PREFIX ? "strip" : c->rw == CFG_RW_REPLACE_PREFIX ? "replace_prefix"
           : c->rw == CFG_RW_REPLACE_PATH ? "replace_path" : "none",
           c->value ? c->value : "", c->path, c->want, n < 0 ? 4 : n, n < 0 ? "(-1)" : out);
    }

    /* capacity: an exact fit works (no NUL then), one byte short is -1 */
    struct cfg_route r;
    memset(&r, 0, sizeof(r));
    prefix(&r, "/api");
    r.rewrite = CFG_RW_REPLACE_PREFIX;
    r.rewrite_path = tstr("/v2");
    r.rewrite_path_len = 3;
    char small[5];
    ok(rt_rewrite_path(&r, "/api/x", 6, small, 5) == 5 && memcmp(small, "/v2/x", 5) == 0,
       "rewrite into an exact-size buffer");
    ok(rt_rewrite_path(&r, "/api/x", 6, small, 4) == -1, "rewrite into a short buffer is -1");
    ok(rt_rewrite_path(&r, "/api", 4, small, 0) == -1, "rewrite into no buffer is -1");

    /* the route rt_match picks rewrites with its own prefix */
    cfg_reset();
    struct cfg_route *a = route("short");
    prefix(a, "/svc");
    a->rewrite = CFG_RW_STRIP_PREFIX;
    struct cfg_route *b = route("long");
    prefix(b, "/svc/v1");
    b->rewrite = CFG_RW_REPLACE_PREFIX;
    b->rewrite_path = tstr("/internal");
    b->rewrite_path_len = 9;
    struct rt_table *t = rt_table_build(&C);
    const struct cfg_route *m = look(t, 0, "GET", "h", "/svc/v1/users", NULL);
    int n = m ? rt_rewrite_path(m, "/svc/v1/users", 13, out, sizeof(out)) : -1;
    ok(n > 0 && strcmp(out, "/internal/users") == 0, "match then rewrite: /svc/v1/users -> %s",
       n > 0 ? out : "(fail)");
    m = look(t, 0, "GET", "h", "/svc/v10", NULL);
    n = m ? rt_rewrite_path(m, "/svc/v10", 8, out, sizeof(out)) : -1;
    ok(n > 0 && strcmp(out, "/v10") == 0, "match then rewrite: /svc/v10 -> %s", n > 0 ? out : "(fail)");
    rt_table_free(t);
}

int main(void)
{
    test_hosts();
    test_paths();
    test_refinements();
    test_listeners();
    test_many();
    test_differential();
    test_scan_hashes();
    test_rewrite();
    ok(nlookups >= 30, "precedence table has %d lookups", nlookups);
    tfree_all();
    return tap_done();
}
