/*
 * k8s_test.c - the Gateway API translator (k8s/): hostname intersection,
 * the YAML reader (types, documents, aliases, hostile input), and
 * translations of small manifests: precedence order, ReferenceGrant,
 * EndpointSlices, shared ports, weights, bad input giving conditions.
 */
#include "tap.h"
#include "../../core/arena.c"
#include "../../core/nidx.c"
#include "../../k8s/backends.c"
#include "../../k8s/cond.c"
#include "../../k8s/gateways.c"
#include "../../k8s/hostname.c"
#include "../../k8s/index.c"
#include "../../k8s/load.c"
#include "../../k8s/obj.c"
#include "../../k8s/routes.c"
#include "../../k8s/translate.c"
#include "../../k8s/yaml_read.c"

#include <stdlib.h>
#include <string.h>

/* ---- helpers */

struct run {
    struct k8s_store store;
    struct k8s_conds conds;
    struct k8s_load load;
    struct k8s_index ix;
    cJSON *doc;
    int rc;
};

static void run_yaml(struct run *r, const char *yaml)
{
    memset(r, 0, sizeof(*r));
    r->rc = k8s_load_text(&r->load, "test.yaml", yaml, strlen(yaml), &r->store, &r->conds);
    k8s_index_build(&r->ix, &r->store, &r->conds);
    struct k8s_opts o = { 0 };
    r->doc = k8s_translate(&r->ix, &o, &r->conds);
}

static void run_free(struct run *r)
{
    cJSON_Delete(r->doc);
    k8s_index_free(&r->ix);
    k8s_conds_free(&r->conds);
    k8s_store_free(&r->store);
    k8s_load_free(&r->load);
}

static const cJSON *route(const struct run *r, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(r->doc, "routes"), i);
}

static int nroutes(const struct run *r)
{
    return cJSON_GetArraySize(cJSON_GetObjectItem(r->doc, "routes"));
}

static bool has_cond(const struct run *r, const char *name, const char *reason)
{
    for (size_t i = 0; i < r->conds.n; i++)
        if (strcmp(r->conds.v[i].reason, reason) == 0 && (!name || strcmp(r->conds.v[i].name, name) == 0))
            return true;
    return false;
}

static int respond_status(const cJSON *rt)
{
    const cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(rt, "respond"), "status");
    return s ? s->valueint : 0;
}

static const char *jstr(const cJSON *o, const char *path)
{
    /* "a.b.0.c" */
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
        o = cJSON_IsArray(o) ? cJSON_GetArrayItem(o, atoi(k)) : cJSON_GetObjectItem(o, k);
    return cJSON_IsString(o) ? o->valuestring : NULL;
}

#define GW(extra) \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\n" \
    "spec:\n  gatewayClassName: sluice\n  listeners:\n" extra "---\n"
#define SVC(ns, name) \
    "apiVersion: v1\nkind: Service\nmetadata: {name: " name ", namespace: " ns "}\n" \
    "spec: {ports: [{name: http, port: 8080, targetPort: 3000}]}\n---\n"

/* ---- hostname */

static void test_hostnames(void)
{
    static const struct { const char *l, *h, *want; } t[] = {
        { NULL, "a.com", "a.com" },
        { "a.com", "a.com", "a.com" },
        { "a.com", "b.com", NULL },
        { "*.wildcard.io", "foo.wildcard.io", "foo.wildcard.io" },
        { "*.wildcard.io", "foo.bar.wildcard.io", "foo.bar.wildcard.io" },
        { "*.wildcard.io", "wildcard.io", NULL },
        { "very.specific.com", "*.specific.com", "very.specific.com" },
        { "specific.com", "*.specific.com", NULL },
        { "*.anotherwildcard.io", "*.anotherwildcard.io", "*.anotherwildcard.io" },
        { "*.io", "*.anotherwildcard.io", "*.anotherwildcard.io" },
        { "*.anotherwildcard.io", "*.io", "*.anotherwildcard.io" },
        { "*.a.io", "*.b.io", NULL },
        { "Foo.COM", "foo.com", "foo.com" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *got = k8s_host_intersect(t[i].l, t[i].h);
        ok(t[i].want ? got && strcmp(got, t[i].want) == 0 : got == NULL,
           "intersect(%s, %s) = %s (want %s)", t[i].l ? t[i].l : "any", t[i].h,
           got ? got : "none", t[i].want ? t[i].want : "none");
    }
    ok(k8s_host_wider(NULL, "a.com") && k8s_host_wider("*.example.com", "foo.example.com") &&
       k8s_host_wider("*.example.com", "*.foo.example.com") && !k8s_host_wider("*.example.com", "*.example.com") &&
       !k8s_host_wider("*.example.com", "example.com") && !k8s_host_wider("a.com", "a.com") &&
       !k8s_host_wider(NULL, NULL) && !k8s_host_wider("*.foo.example.com", "*.example.com"),
       "wider listener hostnames");
    ok(k8s_host_valid("foo.example.com") && k8s_host_valid("*.example.com") && k8s_host_valid("localhost"),
       "valid hostnames");
    ok(!k8s_host_valid("Foo.com") && !k8s_host_valid("a..b") && !k8s_host_valid("10.0.0.1") &&
       !k8s_host_valid("a.com:80") && !k8s_host_valid("*") && !k8s_host_valid("-a.com") &&
       !k8s_host_valid("foo.*.com") && !k8s_host_valid(""),
       "invalid hostnames (upper case, empty label, IP, port, bare *, leading -, inner *)");
}

/* ---- YAML reader */

static void test_yaml(void)
{
    struct k8s_read_err e;
    const char *y = "a: 8080\nb: \"8080\"\nc: true\nd: ~\ne: on\nf: 1.5\ng: -3\nh: 'x'\n"
                    "i: [1, two]\nj: !!str 12\n---\n---\nk: 2\n...\n";
    cJSON *d = k8s_yaml_parse(y, strlen(y), &e);
    ok(d && cJSON_GetArraySize(d) == 2, "two non-empty documents (the empty one is skipped)");
    const cJSON *o = cJSON_GetArrayItem(d, 0);
    ok(cJSON_IsNumber(cJSON_GetObjectItem(o, "a")) && cJSON_GetObjectItem(o, "a")->valueint == 8080,
       "plain 8080 is a number");
    ok(cJSON_IsString(cJSON_GetObjectItem(o, "b")), "quoted \"8080\" stays a string");
    ok(cJSON_IsTrue(cJSON_GetObjectItem(o, "c")) && cJSON_IsNull(cJSON_GetObjectItem(o, "d")),
       "true and ~ (the YAML 1.2 core schema)");
    ok(cJSON_IsString(cJSON_GetObjectItem(o, "e")), "'on' is a string, not a YAML 1.1 boolean");
    ok(cJSON_GetObjectItem(o, "f")->valuedouble == 1.5 && cJSON_GetObjectItem(o, "g")->valueint == -3,
       "floats and negative integers");
    ok(cJSON_IsString(cJSON_GetObjectItem(o, "j")), "!!str 12 is a string");
    ok(cJSON_GetArraySize(cJSON_GetObjectItem(o, "i")) == 2, "flow sequence");
    cJSON_Delete(d);

    y = "a: &x {b: 1, c: [1, 2]}\nd: *x\n";
    d = k8s_yaml_parse(y, strlen(y), &e);
    ok(d && cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "d"), "b"),
       "an alias is a copy of its anchor");
    cJSON_Delete(d);

    static const struct { const char *text, *want; } bad[] = {
        { "a: 1\na: 2\n", "duplicate key" },
        { "a: [1, 2\n", "" },
        { "a: *nope\n", "unknown alias" },
        { "key: value\n  bad indent: x\n", "" },
        { "? [1, 2]\n: x\n", "mapping key" },
        { "\t- tab\n", "" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = k8s_yaml_parse(bad[i].text, strlen(bad[i].text), &e);
        ok(d == NULL && e.msg[0] && strstr(e.msg, bad[i].want) && e.line >= 1,
           "bad YAML %zu gives an error with a line: %lu:%lu %s", i, e.line, e.column, e.msg);
        cJSON_Delete(d);
    }

    /* nesting and alias blow-up are bounded */
    char deep[400];
    memset(deep, '[', 300);
    deep[300] = '\0';
    d = k8s_yaml_parse(deep, strlen(deep), &e);
    ok(d == NULL && strstr(e.msg, "deeper"), "300 nested sequences: %s", e.msg);
    const char *laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                         "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                         "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    d = k8s_yaml_parse(laughs, strlen(laughs), &e);
    ok(d == NULL && strstr(e.msg, "too many nodes"), "alias expansion is bounded: %s", e.msg);

    d = k8s_text_parse("  {\"kind\": \"List\", \"items\": []}", 31, &e);
    ok(d && cJSON_GetArraySize(d) == 1, "JSON text is read as JSON");
    cJSON_Delete(d);
    d = k8s_text_parse("{\"a\": }", 7, &e);
    ok(d == NULL && strcmp(e.msg, "bad JSON") == 0 && e.column > 1, "bad JSON names where: %lu:%lu",
       e.line, e.column);
}

/* ---- translation */

static void test_basic_and_precedence(void)
{
    struct run r;
    run_yaml(&r, GW("  - {name: http, port: 8080, protocol: HTTP}\n")
                 SVC("infra", "a")
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\n"
                 "metadata: {name: zz-old, namespace: infra, creationTimestamp: '2020-01-01T00:00:00Z'}\n"
                 "spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: a, port: 8080}]}]}\n---\n"
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\n"
                 "metadata: {name: aa-new, namespace: infra, creationTimestamp: '2024-01-01T00:00:00Z'}\n"
                 "spec: {parentRefs: [{name: gw}], rules: [{matches: [{path: {type: Exact, value: /x}}, "
                 "{headers: [{name: X-A, value: '1'}, {name: x-a, value: '2'}], queryParams: [{name: 'a[]', value: v},"
                 " {name: 'A[]', value: w}], method: POST}], "
                 "backendRefs: [{name: a, port: 8080}]}]}\n");
    ok(r.rc == 0 && nroutes(&r) == 3, "three sluice routes (one match + two)");
    ok(jstr(route(&r, 0), "name") && strstr(jstr(route(&r, 0), "name"), "zz-old"),
       "the older route comes first whatever its name: %s", jstr(route(&r, 0), "name"));
    ok(jstr(route(&r, 1), "match.path.exact") && strcmp(jstr(route(&r, 1), "match.path.exact"), "/x") == 0,
       "Exact path");
    ok(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(route(&r, 2), "match"), "headers")) == 1 &&
       strcmp(jstr(route(&r, 2), "match.headers.0.value"), "1") == 0,
       "of two header matches with one name (any case), the first counts");
    ok(strcmp(jstr(route(&r, 2), "match.methods.0"), "POST") == 0, "method match");
    ok(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(route(&r, 2), "match"), "query")) == 2 &&
       strcmp(jstr(route(&r, 2), "match.query.0.name"), "a[]") == 0,
       "query names are case-sensitive and need not be tokens");
    ok(strcmp(jstr(route(&r, 0), "match.listeners.0"), "http-8080") == 0 &&
       strcmp(jstr(r.doc, "listeners.0.address"), "0.0.0.0:8080") == 0, "listener on the Gateway port");
    ok(strcmp(jstr(r.doc, "upstreams.0.targets.0.address"), "a.infra.svc.cluster.local:8080") == 0,
       "no EndpointSlice: the cluster DNS name");
    run_free(&r);
}

static void test_reference_grant(void)
{
    static const char *const grants[] = {
        "",
        "kind: ReferenceGrant\napiVersion: gateway.networking.k8s.io/v1beta1\nmetadata: {name: g, namespace: web}\n"
        "spec: {from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}], "
        "to: [{group: '', kind: Service}]}\n",
        "kind: ReferenceGrant\napiVersion: gateway.networking.k8s.io/v1beta1\nmetadata: {name: g, namespace: web}\n"
        "spec: {from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}], "
        "to: [{group: '', kind: Service, name: other}]}\n",
        "kind: ReferenceGrant\napiVersion: gateway.networking.k8s.io/v1beta1\nmetadata: {name: g, namespace: infra}\n"
        "spec: {from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}], "
        "to: [{group: '', kind: Service}]}\n",
    };
    static const bool granted[] = { false, true, false, false };
    for (int i = 0; i < 4; i++) {
        char y[4096];
        snprintf(y, sizeof y, "%s%s%s---\n%s", GW("  - {name: http, port: 80, protocol: HTTP}\n"),
                 SVC("web", "b"),
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r, namespace: infra}\n"
                 "spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: b, namespace: web, port: 8080}]}]}\n",
                 grants[i]);
        struct run r;
        run_yaml(&r, y);
        if (granted[i])
            ok(cJSON_GetObjectItem(route(&r, 0), "backends") && !has_cond(&r, "r", "RefNotPermitted"),
               "grant %d admits the cross-namespace Service", i);
        else
            ok(respond_status(route(&r, 0)) == 500 && has_cond(&r, "r", "RefNotPermitted"),
               "grant %d does not: the rule answers 500 with RefNotPermitted", i);
        run_free(&r);
    }
}

static void test_endpoints_and_weights(void)
{
    struct run r;
    run_yaml(&r, GW("  - {name: http, port: 80, protocol: HTTP}\n")
                 "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: infra}\n"
                 "spec: {ports: [{name: web, port: 8080}, {name: other, port: 9090},"
                 " {name: h2, port: 8081, appProtocol: kubernetes.io/h2c}]}\n---\n"
                 "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                 "metadata: {name: a-1, namespace: infra, labels: {kubernetes.io/service-name: a}}\n"
                 "addressType: IPv4\nports: [{name: other, port: 1}, {name: web, port: 3000}]\n"
                 "endpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2], conditions: {ready: false}},"
                 " {addresses: [10.0.0.3], conditions: {ready: true}}]\n---\n"
                 "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                 "metadata: {name: a-2, namespace: infra, labels: {kubernetes.io/service-name: a}}\n"
                 "addressType: IPv6\nports: [{name: web, port: 3000}]\nendpoints: [{addresses: ['fd00::1']}]\n---\n"
                 SVC("infra", "z")
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r, namespace: infra}\n"
                 "spec: {parentRefs: [{name: gw}], rules: ["
                 "{matches: [{path: {value: /w/}}], backendRefs: [{name: a, port: 8080, weight: 3}, {name: z, port: 8080, weight: 0},"
                 " {name: missing, port: 80}]},"
                 "{matches: [{path: {value: /zero}}], backendRefs: [{name: z, port: 8080, weight: 0}]},"
                 "{matches: [{path: {value: /none}}]},"
                 "{matches: [{path: {value: /h2c}}], backendRefs: [{name: a, port: 8081}]}]}\n---\n"
                 "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d, namespace: infra}\n");
    const cJSON *ups = cJSON_GetObjectItem(r.doc, "upstreams");
    const cJSON *t = cJSON_GetObjectItem(cJSON_GetArrayItem(ups, 0), "targets");
    ok(cJSON_GetArraySize(t) == 3 && strcmp(jstr(t, "0.address"), "10.0.0.1:3000") == 0 &&
       strcmp(jstr(t, "1.address"), "10.0.0.3:3000") == 0 && strcmp(jstr(t, "2.address"), "[fd00::1]:3000") == 0,
       "ready endpoints only, by port name, IPv6 in brackets");
    const cJSON *b = cJSON_GetObjectItem(route(&r, 0), "backends");
    ok(cJSON_GetArraySize(b) == 1 && cJSON_GetObjectItem(cJSON_GetArrayItem(b, 0), "weight")->valueint == 3,
       "weight 0 and the missing Service get nothing");
    ok(strcmp(jstr(route(&r, 0), "match.path.prefix"), "/w") == 0, "a prefix's trailing slash is dropped");
    ok(has_cond(&r, "r", "BackendNotFound"), "the missing Service is a BackendNotFound condition");
    ok(respond_status(route(&r, 1)) == 500, "only weight 0: 500");
    ok(respond_status(route(&r, 2)) == 500, "no backendRefs: 500");
    ok(has_cond(&r, "d", "UnknownKind"), "a Deployment is an UnknownKind condition");
    ok(respond_status(route(&r, 3)) == 500 && has_cond(&r, "r", "UnsupportedProtocol"),
       "an h2c Service port: 500 with UnsupportedProtocol");
    run_free(&r);
}

static void test_listeners_and_filters(void)
{
    struct run r;
    run_yaml(&r, GW("  - {name: a, port: 80, protocol: HTTP, hostname: a.example.com}\n"
                    "  - {name: b, port: 80, protocol: HTTP, hostname: '*.example.com'}\n"
                    "  - {name: c, port: 80, protocol: HTTPS, tls: {certificateRefs: [{name: s}]}}\n"
                    "  - {name: d, port: 81, protocol: TCP}\n")
                 SVC("infra", "a")
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r, namespace: infra}\n"
                 "spec:\n  parentRefs: [{name: gw}]\n  hostnames: [x.example.com, other.org]\n  rules:\n"
                 "  - filters:\n"
                 "    - {type: RequestRedirect, requestRedirect: {scheme: https}}\n"
                 "  - matches: [{path: {type: RegularExpression, value: '/a.*'}}]\n"
                 "    backendRefs: [{name: a, port: 8080}]\n"
                 "  - matches: [{path: {type: Exact, value: /e}}]\n"
                 "    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /p}}}]\n"
                 "    backendRefs: [{name: a, port: 8080}]\n"
                 "  - matches: [{path: {value: /m}}]\n"
                 "    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: a, port: 8080}}}]\n"
                 "    backendRefs: [{name: a, port: 8080}]\n"
                 "  - matches: [{path: {value: /h}}]\n"
                 "    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: '1'}, {name: x-a, value: '2'}], remove: [X-B]}},\n"
                 "              {type: URLRewrite, urlRewrite: {hostname: new.example.com}}]\n"
                 "    backendRefs: [{name: a, port: 8080}]\n");
    ok(cJSON_GetArraySize(cJSON_GetObjectItem(r.doc, "listeners")) == 1, "listeners on one port share one sluice listener");
    ok(has_cond(&r, "gw", "ProtocolConflict") && has_cond(&r, "gw", "UnsupportedProtocol"),
       "HTTPS beside HTTP on one port, and TCP, are conditions");
    ok(nroutes(&r) == 5, "the RegularExpression match gives no route (%d routes: 4 and a guard)", nroutes(&r));
    ok(respond_status(route(&r, 4)) == 404 && strcmp(jstr(route(&r, 4), "match.hosts.0"), "a.example.com") == 0 &&
       strcmp(jstr(route(&r, 4), "match.path.prefix"), "/") == 0,
       "a.example.com, inside *.example.com's listener, gets a last 404 route (listener isolation)");
    const cJSON *hosts = cJSON_GetObjectItem(cJSON_GetObjectItem(route(&r, 0), "match"), "hosts");
    ok(cJSON_GetArraySize(hosts) == 1 && strcmp(jstr(hosts, "0"), "x.example.com") == 0,
       "route hostnames intersected with the listeners': only x.example.com");
    ok(cJSON_GetObjectItem(cJSON_GetObjectItem(route(&r, 0), "redirect"), "port")->valueint == 443,
       "redirect to https without a port: 443");
    ok(respond_status(route(&r, 1)) == 500, "ReplacePrefixMatch on an Exact match: 500");
    ok(respond_status(route(&r, 2)) == 500 && has_cond(&r, "r", "UnsupportedValue"), "RequestMirror: 500 with a condition");
    const cJSON *rh = cJSON_GetObjectItem(route(&r, 3), "request_headers");
    ok(cJSON_GetArraySize(cJSON_GetObjectItem(rh, "set")) == 1 && strcmp(jstr(rh, "remove.0"), "X-B") == 0 &&
       strcmp(jstr(route(&r, 3), "rewrite.host"), "new.example.com") == 0,
       "header modifier (a name twice counts once) and host rewrite");
    run_free(&r);
}

static void test_tls_and_attachment(void)
{
    struct run r;
    /* "-----BEGIN X-----\n" in base64 */
    run_yaml(&r, GW("  - {name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]},"
                    " allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}}\n"
                    "  - {name: t, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: cert, namespace: other}]}}\n")
                 "apiVersion: v1\nkind: Secret\nmetadata: {name: cert, namespace: infra}\ntype: kubernetes.io/tls\n"
                 "data: {tls.crt: LS0tLS1CRUdJTiBYLS0tLS0K, tls.key: LS0tLS1CRUdJTiBYLS0tLS0K}\n---\n"
                 "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {team: a}}\n---\n"
                 SVC("team-a", "a") SVC("team-b", "a")
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r, namespace: team-a}\n"
                 "spec: {parentRefs: [{name: gw, namespace: infra}], rules: [{backendRefs: [{name: a, port: 8080}]}]}\n---\n"
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r, namespace: team-b}\n"
                 "spec: {parentRefs: [{name: gw, namespace: infra}], rules: [{backendRefs: [{name: a, port: 8080}]}]}\n---\n"
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: s, namespace: team-a}\n"
                 "spec: {parentRefs: [{name: gw, namespace: infra, sectionName: nope}, {name: absent}], rules: [{}]}\n");
    ok(cJSON_GetArraySize(cJSON_GetObjectItem(r.doc, "listeners")) == 1 &&
       strcmp(jstr(r.doc, "listeners.0.tls.certificates.0.cert_pem"), "-----BEGIN X-----\n") == 0,
       "the Secret's PEM is inlined");
    ok(has_cond(&r, "gw", "RefNotPermitted"), "a Secret in another namespace without a grant");
    ok(nroutes(&r) == 1 && strstr(jstr(route(&r, 0), "name"), "team-a/r"),
       "the Selector admits team-a, not team-b");
    ok(has_cond(&r, "r", "NotAllowedByListeners"), "team-b's route: NotAllowedByListeners");
    ok(has_cond(&r, "s", "NoMatchingParent"), "a wrong sectionName and an absent Gateway: NoMatchingParent");
    run_free(&r);
}

static void test_other_class_and_unsupported(void)
{
    struct run r;
    run_yaml(&r, GW("  - {name: http, port: 80, protocol: HTTP}\n")
                 "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: theirs, namespace: infra}\n"
                 "spec: {gatewayClassName: istio, listeners: [{name: http, port: 81, protocol: HTTP}]}\n---\n"
                 SVC("infra", "a")
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: theirs, namespace: infra}\n"
                 "spec: {parentRefs: [{name: theirs}], rules: [{backendRefs: [{name: a, port: 8080}]}]}\n---\n"
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: ours, namespace: infra}\n"
                 "spec: {parentRefs: [{name: gw}], rules: [{retry: {attempts: 2}, backendRefs: [{name: a, port: 8080}]}]}\n");
    bool about_theirs = false;
    for (size_t i = 0; i < r.conds.n; i++)
        about_theirs |= strcmp(r.conds.v[i].name, "theirs") == 0;
    ok(!about_theirs && nroutes(&r) == 1 && cJSON_GetArraySize(cJSON_GetObjectItem(r.doc, "listeners")) == 1,
       "another class's Gateway and its routes are left alone, without conditions");
    ok(has_cond(&r, "ours", "UnsupportedValue") && cJSON_GetObjectItem(route(&r, 0), "backends"),
       "rule retry: a condition, the route still served");
    run_free(&r);
}

static double total_ms(const cJSON *rt)
{
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(rt, "timeouts"), "total_ms");
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_rule_timeouts(void)
{
    struct run r;
    uint64_t ms;
    ok(duration_ms("1h30m", &ms) && ms == 5400000, "duration 1h30m");
    ok(duration_ms("500ms", &ms) && ms == 500 && duration_ms("0s", &ms) && ms == 0, "durations 500ms, 0s");
    ok(duration_ms("1h1m1s1ms", &ms) && ms == 3661001, "four parts");
    ok(!duration_ms("", &ms) && !duration_ms("10", &ms) && !duration_ms("1.5s", &ms) &&
       !duration_ms("123456s", &ms) && !duration_ms("1h1m1s1ms1ms", &ms) && !duration_ms("-1s", &ms) &&
       !duration_ms("1d", &ms) && !duration_ms("s", &ms),
       "malformed durations refused (no unit, fraction, 6 digits, 5 parts, sign, day, no digits)");
    run_yaml(&r, GW("  - {name: http, port: 80, protocol: HTTP}\n") SVC("infra", "a")
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: t, namespace: infra}\n"
                 "spec: {parentRefs: [{name: gw}], rules: [\n"
                 "  {matches: [{path: {type: Exact, value: /a}}], timeouts: {request: 10s}, backendRefs: [{name: a, port: 8080}]},\n"
                 "  {matches: [{path: {type: Exact, value: /b}}], timeouts: {request: 2s, backendRequest: 500ms}, backendRefs: [{name: a, port: 8080}]},\n"
                 "  {matches: [{path: {type: Exact, value: /c}}], timeouts: {request: 0s}, backendRefs: [{name: a, port: 8080}]},\n"
                 "  {matches: [{path: {type: Exact, value: /d}}], timeouts: {request: soon}, backendRefs: [{name: a, port: 8080}]},\n"
                 "  {matches: [{path: {type: Exact, value: /e}}], timeouts: {request: 1s}, filters: [{type: RequestRedirect, requestRedirect: {hostname: x.example}}]}]}\n");
    ok(nroutes(&r) == 5, "five rules, five routes");
    ok(total_ms(route(&r, 0)) == 10000, "request 10s -> timeouts.total_ms 10000");
    ok(total_ms(route(&r, 1)) == 500, "the stricter of request and backendRequest");
    ok(total_ms(route(&r, 2)) == -1 && total_ms(route(&r, 3)) == -1, "0s and a malformed duration: no timeout");
    ok(has_cond(&r, "t", "UnsupportedValue"), "a malformed duration gives a condition");
    ok(total_ms(route(&r, 4)) == -1 && cJSON_GetObjectItem(route(&r, 4), "redirect"),
       "a redirect rule carries no timeout (sluice allows them on proxied routes only)");
    run_free(&r);
}

static void test_listener_isolation(void)
{
    struct run r;
    /* the shape of GatewayHTTPListenerIsolation: four listeners on one port */
    run_yaml(&r, GW("  - {name: empty, port: 80, protocol: HTTP}\n"
                    "  - {name: wild, port: 80, protocol: HTTP, hostname: '*.example.com'}\n"
                    "  - {name: foo, port: 80, protocol: HTTP, hostname: '*.foo.example.com'}\n"
                    "  - {name: abc, port: 80, protocol: HTTP, hostname: abc.foo.example.com}\n")
                 SVC("infra", "a")
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: e, namespace: infra}\n"
                 "spec: {parentRefs: [{name: gw, sectionName: empty}], hostnames: [abc.foo.example.com, x.org],"
                 " rules: [{backendRefs: [{name: a, port: 8080}]}]}\n---\n"
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: w, namespace: infra}\n"
                 "spec: {parentRefs: [{name: gw, sectionName: wild}], rules: [{backendRefs: [{name: a, port: 8080}]}]}\n");
    const cJSON *h0 = cJSON_GetObjectItem(cJSON_GetObjectItem(route(&r, 0), "match"), "hosts");
    ok(cJSON_GetArraySize(h0) == 1 && strcmp(jstr(h0, "0"), "x.org") == 0,
       "a route on the empty-hostname listener does not get abc.foo.example.com (its own listener's)");
    int guards = 0;
    for (int i = 0; i < nroutes(&r); i++)
        guards += respond_status(route(&r, i)) == 404;
    ok(guards == 3 && respond_status(route(&r, nroutes(&r) - 1)) == 404,
       "three listeners inside wider ones: three 404 guards, last (%d)", guards);
    run_free(&r);
}

static void test_default_namespace(void)
{
    struct run r;
    run_yaml(&r, "kind: Service\napiVersion: v1\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n---\n"
                 "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r}\n"
                 "spec: {parentRefs: [{name: g}], rules: [{backendRefs: [{name: a, port: 80}]}]}\n---\n"
                 "kind: Gateway\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: g, namespace: default}\n"
                 "spec: {gatewayClassName: sluice, listeners: [{name: h, port: 8080, protocol: HTTP}]}\n");
    ok(nroutes(&r) == 1 && strcmp(jstr(r.doc, "upstreams.0.name"), "default/a:80") == 0,
       "objects without a namespace are in \"default\", like kubectl apply puts them");
    run_free(&r);
}

static void test_bad_input(void)
{
    static const char *const inputs[] = {
        "kind: [\n",
        "just a string\n",
        "- 1\n- 2\n",
        "kind: Gateway\nmetadata: {}\n",
        "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r}\n"
        "spec: {parentRefs: 5, hostnames: [7], rules: {a: 1}}\n",
        "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r}\nspec: 3\n",
        GW("  - {name: x, port: 99999, protocol: HTTP}\n  - 7\n  - {port: 80, protocol: HTTP, hostname: 'A B'}\n"),
        GW("  - {name: h, port: 80, protocol: HTTP}\n")
        "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r, namespace: infra}\n"
        "spec: {parentRefs: [{name: gw, port: x}, {name: gw}], rules: [{matches: [{path: {value: 'no-slash'}},"
        " {headers: [{name: 'bad name', value: v}]}, {method: 'G E T'}], backendRefs: [{name: a}, {kind: Pod, name: p},"
        " {name: a, port: 8080, weight: -1}], filters: [{type: RequestRedirect, requestRedirect: {statusCode: 200,"
        " scheme: ftp, hostname: '*.x'}}, {type: 9}]}]}\n",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        struct run r;
        run_yaml(&r, inputs[i]);
        bool any_false = false;
        for (size_t k = 0; k < r.conds.n; k++)
            any_false |= strcmp(r.conds.v[k].status, "False") == 0;
        ok(r.doc && any_false, "bad input %zu gives a document and a condition (%s)", i,
           r.conds.n ? r.conds.v[0].reason : "none");
        run_free(&r);
    }
    struct run r;
    run_yaml(&r, "a: [\n");
    ok(r.rc == -1 && has_cond(&r, "test.yaml", "ParseError"), "malformed YAML: a ParseError condition naming the file");
    run_free(&r);
}

int main(void)
{
    test_hostnames();
    test_yaml();
    test_basic_and_precedence();
    test_reference_grant();
    test_endpoints_and_weights();
    test_listeners_and_filters();
    test_tls_and_attachment();
    test_other_class_and_unsupported();
    test_rule_timeouts();
    test_listener_isolation();
    test_default_namespace();
    test_bad_input();
    return tap_done();
}
