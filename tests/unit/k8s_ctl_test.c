/*
 * k8s_ctl_test.c - the parts of sluice-k8s watch that need no API server:
 * kubeconfig and in-cluster settings (k8s/kconf.c: contexts, base64 and
 * file PEM fields, refusals), and the status write-back (k8s/status.c:
 * conditions per route parent, Gateway listeners, and convergence: a
 * status already written produces no patch), and the route cache
 * (a translation reusing unchanged HTTPRoutes gives the very document and
 * conditions a full one gives).
 */
#include "tap.h"
#include "../../core/arena.c"
#include "../../core/nidx.c"
#include "../../k8s/backends.c"
#include "../../k8s/cond.c"
#include "../../k8s/gateways.c"
#include "../../k8s/hostname.c"
#include "../../k8s/index.c"
#include "../../k8s/kconf.c"
#include "../../k8s/load.c"
#include "../../k8s/obj.c"
#include "../../k8s/routes.c"
#include "../../k8s/status.c"
#include "../../k8s/translate.c"
#include "../../k8s/yaml_read.c"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[256];          /* $TMPDIR/sluice-k8s-ctl-XXXXXX, made by main */

static const char *write_file(const char *name, const char *text)
{
    static char path[4][512];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, 512, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return p;
}

/* base64 of "PEM-CA" and "PEM-CERT", "PEM-KEY" */
#define CA64 "UEVNLUNB"
#define KUBECONFIG(server, user) \
    "apiVersion: v1\nkind: Config\ncurrent-context: c1\n" \
    "contexts:\n- name: c0\n  context: {cluster: other, user: u0}\n- name: c1\n  context: {cluster: k1, user: u1}\n" \
    "clusters:\n- name: other\n  cluster: {server: 'https://wrong:1', certificate-authority-data: " CA64 "}\n" \
    "- name: k1\n  cluster: {server: '" server "', certificate-authority-data: " CA64 "}\n" \
    "users:\n- name: u0\n  user: {token: wrong}\n- name: u1\n  user: " user "\n"

static int kc(struct k8s_conf *c, const char *text, char *err, size_t n)
{
    err[0] = '\0';
    int rc = k8s_conf_kubeconfig(c, write_file("kc.yaml", text), err, n);
    return rc;
}

static void test_kubeconfig(void)
{
    struct k8s_conf c;
    char err[512];

    ok(kc(&c, KUBECONFIG("https://api.example:6443", "{token: t0k3n}"), err, sizeof err) == 0 &&
       !strcmp(c.host, "api.example") && !strcmp(c.port, "6443") && c.ca_len == 6 && !memcmp(c.ca, "PEM-CA", 6),
       "current-context picks cluster k1: host, port, CA from base64 (%s)", err);
    char *t = k8s_conf_token(&c);
    ok(t && !strcmp(t, "t0k3n") && c.cert == NULL, "bearer token of user u1");
    free(t);
    k8s_conf_free(&c);

    ok(kc(&c, KUBECONFIG("https://[::1]", "{token: x}"), err, sizeof err) == 0 && !strcmp(c.host, "::1") &&
       !strcmp(c.port, "443"), "IPv6 server, default port 443");
    k8s_conf_free(&c);

    const char *tf = write_file("token", "from-file\n\n");
    char user[700];
    snprintf(user, sizeof user, "{tokenFile: '%s'}", tf);
    char text[4096];
    snprintf(text, sizeof text, KUBECONFIG("https://h:1", "%s"), user);
    ok(kc(&c, text, err, sizeof err) == 0, "tokenFile accepted (%s)", err);
    t = k8s_conf_token(&c);
    ok(t && !strcmp(t, "from-file"), "the token file is read at each call, trailing newlines cut");
    free(t);
    write_file("token", "rotated");
    t = k8s_conf_token(&c);
    ok(t && !strcmp(t, "rotated"), "a rotated token is picked up");
    free(t);
    k8s_conf_free(&c);

    const char *crt = write_file("client.crt", "PEM-CERT");
    snprintf(user, sizeof user, "{client-certificate: '%s', client-key-data: UEVNLUtFWQ==}", crt);
    snprintf(text, sizeof text, KUBECONFIG("https://h:1", "%s"), user);
    ok(kc(&c, text, err, sizeof err) == 0 && c.cert_len == 8 && !memcmp(c.cert, "PEM-CERT", 8) &&
       c.key_len == 7 && !memcmp(c.key, "PEM-KEY", 7), "client certificate from a file, key from base64 (%s)", err);
    k8s_conf_free(&c);

    static const struct { const char *text, *want, *what; } bad[] = {
        { KUBECONFIG("http://h:1", "{token: x}"), "only https://", "plain http server" },
        { KUBECONFIG("https://h:1/prefix", "{token: x}"), "path prefix", "server with a path" },
        { KUBECONFIG("https://[::1", "{token: x}"), "bad address", "unclosed IPv6 bracket" },
        { KUBECONFIG("https://h:1", "{exec: {command: aws}}"), "exec", "exec plugin" },
        { KUBECONFIG("https://h:1", "{client-certificate-data: UEVNLUNFUlQ=}"), "needs its key", "cert without key" },
        { KUBECONFIG("https://h:1", "{client-key-data: '***'}"), "not base64", "bad base64" },
        { "apiVersion: v1\nkind: Config\ncurrent-context: nope\ncontexts: []\n", "no current-context", "missing context" },
        { "apiVersion: v1\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
          "clusters: [{name: k, cluster: {server: 'https://h:1', insecure-skip-tls-verify: true}}]\n",
          "insecure-skip-tls-verify", "insecure-skip-tls-verify refused" },
        { "apiVersion: v1\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
          "clusters: [{name: k, cluster: {server: 'https://h:1'}}]\n", "certificate-authority", "no CA" },
        { "a: [unclosed\n", "kc.yaml:", "malformed YAML" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = kc(&c, bad[i].text, err, sizeof err);
        ok(rc == -1 && strstr(err, bad[i].want), "refused: %s (%s)", bad[i].what, err);
        k8s_conf_free(&c);
    }
    ok(k8s_conf_kubeconfig(&c, "/nonexistent/kubeconfig", err, sizeof err) == -1 && strstr(err, "/nonexistent"),
       "a missing file is named (%s)", err);
    k8s_conf_free(&c);
}

static void test_in_cluster(void)
{
    struct k8s_conf c;
    char err[512];

    unsetenv("KUBERNETES_SERVICE_HOST");
    ok(k8s_conf_in_cluster(&c, g_dir, err, sizeof err) == -1 && strstr(err, "KUBERNETES_SERVICE_HOST"),
       "outside a pod: refused with the reason");
    k8s_conf_free(&c);
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    write_file("ca.crt", "PEM-CA");
    write_file("token", "sa-token\n");
    err[0] = '\0';
    ok(k8s_conf_in_cluster(&c, g_dir, err, sizeof err) == 0 && !strcmp(c.host, "10.0.0.1") &&
       !strcmp(c.port, "443") && c.ca_len == 6, "in-cluster: host, port and CA (%s)", err);
    char *t = k8s_conf_token(&c);
    ok(t && !strcmp(t, "sa-token"), "in-cluster token from the service-account file");
    free(t);
    k8s_conf_free(&c);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/none", g_dir);
    ok(k8s_conf_in_cluster(&c, sub, err, sizeof err) == -1 && strstr(err, "ca.crt"),
       "in-cluster without the CA file: refused (%s)", err);
    k8s_conf_free(&c);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

/* ---- status */

struct run {
    struct k8s_store store;
    struct k8s_conds conds;
    struct k8s_load load;
    struct k8s_index ix;
    cJSON *doc;
    struct k8s_status_patch *p;
    size_t np;
};

static void run_status(struct run *r, const char *yaml, const char *address)
{
    memset(r, 0, sizeof(*r));
    k8s_load_text(&r->load, "test.yaml", yaml, strlen(yaml), &r->store, &r->conds);
    k8s_index_build(&r->ix, &r->store, &r->conds);
    struct k8s_opts o = { 0 };
    r->doc = k8s_translate(&r->ix, &o, &r->conds);
    struct k8s_status_in in = { "sluice", address, true, "2026-12-06T00:00:00Z" };
    r->np = k8s_status_compute(&r->store, &r->conds, &in, &r->p);
}

static void run_free(struct run *r)
{
    k8s_status_free(r->p, r->np);
    cJSON_Delete(r->doc);
    k8s_index_free(&r->ix);
    k8s_conds_free(&r->conds);
    k8s_store_free(&r->store);
    k8s_load_free(&r->load);
}

static const struct k8s_status_patch *patch_for(const struct run *r, const char *suffix)
{
    for (size_t i = 0; i < r->np; i++) {
        size_t n = strlen(r->p[i].path), m = strlen(suffix);
        if (n >= m && !strcmp(r->p[i].path + n - m, suffix))
            return &r->p[i];
    }
    return NULL;
}

/* The status of the condition type in a list, "" when absent. */
static const char *cond_status(const cJSON *conds, const char *type, const char **reason)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, conds) {
        if (!strcmp(k8s_str(e, "type", ""), type)) {
            if (reason)
                *reason = k8s_str(e, "reason", "");
            return k8s_str(e, "status", "");
        }
    }
    return "";
}

#define GWY \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra, generation: 3}\n" \
    "spec:\n  gatewayClassName: sluice\n  listeners:\n  - {name: http, port: 80, protocol: HTTP}\n---\n" \
    "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: infra}\n" \
    "spec: {ports: [{name: http, port: 8080}]}\n---\n"
#define ROUTE(name, backend, status) \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: " name ", namespace: infra, generation: 7}\n" \
    "spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: " backend ", port: 8080}]}]}\n" status "---\n"

static void test_status(void)
{
    struct run r;
    run_status(&r, GWY ROUTE("good", "a", "") ROUTE("broken", "missing", ""), "10.1.2.3");
    const struct k8s_status_patch *g = patch_for(&r, "/httproutes/good/status");
    const struct k8s_status_patch *b = patch_for(&r, "/httproutes/broken/status");
    const struct k8s_status_patch *gw = patch_for(&r, "/gateways/gw/status");
    ok(g && b && gw && !strncmp(g->path, "/apis/gateway.networking.k8s.io/v1/namespaces/infra/", 52),
       "a patch per route and for the Gateway, on the status subresource");
    cJSON *gj = g ? cJSON_Parse(g->body) : NULL, *bj = b ? cJSON_Parse(b->body) : NULL;
    cJSON *wj = gw ? cJSON_Parse(gw->body) : NULL;
    const cJSON *gp = cJSON_GetArrayItem(k8s_get(k8s_get(gj, "status"), "parents"), 0);
    const cJSON *bp = cJSON_GetArrayItem(k8s_get(k8s_get(bj, "status"), "parents"), 0);
    const char *reason = NULL;
    ok(!strcmp(k8s_str(gp, "controllerName", ""), K8S_CONTROLLER_NAME) &&
       !strcmp(k8s_str(k8s_get(gp, "parentRef"), "name", ""), "gw"), "route parent: our controller, the Gateway");
    ok(!strcmp(cond_status(k8s_get(gp, "conditions"), "Accepted", NULL), "True") &&
       !strcmp(cond_status(k8s_get(gp, "conditions"), "ResolvedRefs", NULL), "True"),
       "a good route: Accepted and ResolvedRefs True");
    ok(!strcmp(cond_status(k8s_get(bp, "conditions"), "ResolvedRefs", &reason), "False") &&
       !strcmp(reason, "BackendNotFound"), "a missing Service: ResolvedRefs False, BackendNotFound");
    long gen = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, k8s_get(gp, "conditions"))
        k8s_int(e, "observedGeneration", 0, 1L << 40, &gen);
    ok(gen == 7, "observedGeneration is the route's generation");
    const cJSON *ws = k8s_get(wj, "status");
    ok(!strcmp(cond_status(k8s_get(ws, "conditions"), "Programmed", NULL), "True") &&
       !strcmp(k8s_str(cJSON_GetArrayItem(k8s_get(ws, "addresses"), 0), "value", ""), "10.1.2.3") &&
       !strcmp(k8s_str(cJSON_GetArrayItem(k8s_get(ws, "addresses"), 0), "type", ""), "IPAddress"),
       "Gateway Programmed, its address an IPAddress");
    const cJSON *l0 = cJSON_GetArrayItem(k8s_get(ws, "listeners"), 0);
    long attached = -1;
    k8s_int(l0, "attachedRoutes", 0, 100, &attached);
    ok(attached == 2 && !strcmp(k8s_str(l0, "name", ""), "http"), "listener http: 2 attached routes");

    /* converges: with those statuses written, nothing more to patch */
    char yaml[8192];
    char *gs = cJSON_PrintUnformatted(k8s_get(gj, "status")), *bs = cJSON_PrintUnformatted(k8s_get(bj, "status"));
    char *ws_ = cJSON_PrintUnformatted(ws);
    snprintf(yaml, sizeof yaml,
             "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra, generation: 3}\n"
             "spec:\n  gatewayClassName: sluice\n  listeners:\n  - {name: http, port: 80, protocol: HTTP}\nstatus: %s\n---\n"
             "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: infra}\n"
             "spec: {ports: [{name: http, port: 8080}]}\n---\n"
             ROUTE("good", "a", "status: %s\n") ROUTE("broken", "missing", "status: %s\n"), ws_, gs, bs);
    free(gs);
    free(bs);
    free(ws_);
    cJSON_Delete(gj);
    cJSON_Delete(bj);
    cJSON_Delete(wj);
    run_free(&r);
    run_status(&r, yaml, "10.1.2.3");
    ok(r.np == 0, "statuses already written: no patch (%zu)", r.np);
    run_free(&r);

    /* another controller's parent entry is kept */
    run_status(&r, GWY ROUTE("good", "a",
               "status: {parents: [{parentRef: {name: theirs}, controllerName: example.com/other, "
               "conditions: [{type: Accepted, status: 'True', reason: Accepted}]}]}\n"), NULL);
    g = patch_for(&r, "/httproutes/good/status");
    gj = g ? cJSON_Parse(g->body) : NULL;
    int theirs = 0, ours = 0;
    cJSON_ArrayForEach(e, k8s_get(k8s_get(gj, "status"), "parents")) {
        theirs += !strcmp(k8s_str(e, "controllerName", ""), "example.com/other");
        ours += !strcmp(k8s_str(e, "controllerName", ""), K8S_CONTROLLER_NAME);
    }
    ok(theirs == 1 && ours == 1, "another controller's parent status is kept beside ours");
    cJSON_Delete(gj);
    run_free(&r);
}

/* ---- the route cache */

struct snap {
    struct k8s_store st;
    struct k8s_conds conds;
    struct k8s_index ix;
};

/* A store borrowing objs (as sluice-k8s watch's does), indexed. */
static void snap_make(struct snap *s, cJSON **objs, size_t n)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n; i++)
        if (objs[i])
            k8s_store_borrow(&s->st, objs[i], "test", &s->conds);
    k8s_index_build(&s->ix, &s->st, &s->conds);
}

static void snap_free(struct snap *s)
{
    k8s_index_free(&s->ix);
    k8s_conds_free(&s->conds);
    k8s_store_free(&s->st);
}

static char *conds_text(const struct k8s_conds *c)
{
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    for (size_t i = 0; f && i < c->n; i++) {
        const struct k8s_cond *k = &c->v[i];
        fprintf(f, "%s|%s|%s|%s|%s|%s|%s\n", k->kind, k->ns, k->name, k->type, k->status, k->reason, k->message);
    }
    if (f)
        fclose(f);
    return mem;
}

/* Translates objs with the cache (world w) and without it: the same
 * document and conditions?  *doc gets the cached translation's document
 * (the caller deletes the one before it afterwards). */
static bool same_as_full(struct k8s_rcache *rc, unsigned long w, cJSON **objs, size_t n, cJSON **doc,
                         size_t *reused, size_t *made)
{
    struct snap a, b;
    snap_make(&a, objs, n);
    snap_make(&b, objs, n);
    struct k8s_opts oc = { .cache = rc, .world = w }, of = { 0 };
    *doc = k8s_translate(&a.ix, &oc, &a.conds);
    cJSON *full = k8s_translate(&b.ix, &of, &b.conds);
    k8s_rcache_counts(rc, reused, made);
    char *t1 = cJSON_PrintUnformatted(*doc), *t2 = cJSON_PrintUnformatted(full);
    char *c1 = conds_text(&a.conds), *c2 = conds_text(&b.conds);
    bool same = t1 && t2 && c1 && c2 && !strcmp(t1, t2) && !strcmp(c1, c2);
    if (!same)
        printf("# cached:\n# %s\n# %s\n# full:\n# %s\n# %s\n", t1, c1, t2, c2);
    free(t1);
    free(t2);
    free(c1);
    free(c2);
    cJSON_Delete(full);
    snap_free(&a);
    snap_free(&b);
    return same;
}

#define RC_ROUTE(name, host, svc, extra) \
    "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: " name ", namespace: infra}\n" \
    "spec: {parentRefs: [{name: gw}], hostnames: [" host "], rules: [{backendRefs: [{name: " svc ", port: 8080}]" extra "}]}\n"
#define RC_SVC(name) \
    "apiVersion: v1\nkind: Service\nmetadata: {name: " name ", namespace: infra}\n" \
    "spec: {ports: [{name: http, port: 8080}]}\n"
#define RC_SLICE(name, ip) \
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n" \
    "metadata: {name: " name "-x, namespace: infra, labels: {kubernetes.io/service-name: " name "}}\n" \
    "addressType: IPv4\nports: [{name: http, port: 3000}]\nendpoints: [{addresses: [" ip "]}]\n"

static cJSON *obj(const char *yaml)
{
    struct k8s_read_err re;
    cJSON *d = k8s_text_parse(yaml, strlen(yaml), &re);
    if (cJSON_IsArray(d)) {
        cJSON *o = cJSON_DetachItemFromArray(d, 0);
        cJSON_Delete(d);
        d = o;
    }
    return d;
}

static void test_route_cache(void)
{
    cJSON *o[12] = { 0 };
    o[0] = obj("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\n"
               "spec:\n  gatewayClassName: sluice\n  listeners:\n  - {name: http, port: 80, protocol: HTTP}\n"
               "  - {name: api, port: 80, protocol: HTTP, hostname: api.example.com}\n");
    o[1] = obj(RC_SVC("a"));
    o[2] = obj(RC_SVC("b"));
    o[3] = obj(RC_SLICE("a", "10.0.0.1"));
    o[4] = obj(RC_SLICE("b", "10.0.0.2"));
    o[5] = obj(RC_ROUTE("r1", "api.example.com", "a", ""));
    o[6] = obj(RC_ROUTE("r2", "www.example.com", "b", ""));
    o[7] = obj(RC_ROUTE("r3", "x.example.com", "missing", ""));        /* a condition */
    o[8] = obj(RC_ROUTE("r4", "y.example.com", "a", ", filters: [{type: RequestMirror}]"));
    struct k8s_rcache *rc = k8s_rcache_new();
    cJSON *doc = NULL, *prev;
    size_t reused = 0, made = 0;
    bool same;

    same = same_as_full(rc, 1, o, 12, &doc, &reused, &made);
    ok(same && reused == 0 && made == 4,
       "first translation: all four HTTPRoutes made (%zu, %zu)", reused, made);
    prev = doc;
    same = same_as_full(rc, 1, o, 12, &doc, &reused, &made);
    ok(same && reused == 4 && made == 0,
       "nothing changed: all reused, the same document and conditions (%zu, %zu)", reused, made);
    cJSON_Delete(prev);

    /* one route changed (a new object), one added, one deleted */
    cJSON *old6 = o[6], *old7 = o[7];
    o[6] = obj(RC_ROUTE("r2", "www.example.com", "a", ""));
    o[9] = obj(RC_ROUTE("r5", "z.example.com", "b", ""));
    o[7] = NULL;
    prev = doc;
    same = same_as_full(rc, 1, o, 12, &doc, &reused, &made);
    ok(same && reused == 2 && made == 2,
       "one HTTPRoute changed, one added, one deleted: two reused, two made (%zu, %zu)", reused, made);
    cJSON_Delete(prev);
    cJSON_Delete(old6);
    cJSON_Delete(old7);

    /* an upstream only the deleted route used is gone; b now used by r5 only */
    bool has_missing = false;
    const cJSON *u;
    cJSON_ArrayForEach(u, cJSON_GetObjectItem(doc, "upstreams"))
        has_missing |= strstr(k8s_str(u, "name", ""), "missing") != NULL;
    ok(!has_missing && cJSON_GetArraySize(cJSON_GetObjectItem(doc, "upstreams")) == 2, "upstreams follow the routes");

    /* another kind changed: the caller bumps world, everything is made again */
    cJSON *old3 = o[3];
    o[3] = obj(RC_SLICE("a", "10.0.0.9"));
    prev = doc;
    same = same_as_full(rc, 2, o, 12, &doc, &reused, &made);
    ok(same && reused == 0 && made == 4,
       "an EndpointSlice changed (world bumped): all made, with the new address (%zu, %zu)", reused, made);
    cJSON_Delete(prev);
    cJSON_Delete(old3);

    /* forget (the caller drops the document): the next translation makes all */
    k8s_rcache_forget(rc);
    cJSON_Delete(doc);
    same = same_as_full(rc, 2, o, 12, &doc, &reused, &made);
    ok(same && reused == 0 && made == 4,
       "after forget: all made (%zu, %zu)", reused, made);
    cJSON_Delete(doc);
    k8s_rcache_free(rc);
    for (size_t i = 0; i < 12; i++)
        cJSON_Delete(o[i]);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/sluice-k8s-ctl-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL)
        return 1;
    test_kubeconfig();
    test_in_cluster();
    test_status();
    test_route_cache();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", g_dir);
    return tap_done();
}
