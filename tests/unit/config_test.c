/* config_test.c - unit tests for gateway/config.c (the configuration parser). */
#include "tap.h"
#include "../../gateway/config.c"
#include "../../core/arena.c"
#include "../../core/cfgerr.c"
#include "../../core/cfgparse.c"
#include "../../core/nidx.c"
#include "../../core/addr.c"
#include "../../core/jscan.c"
#include "../../router/route_config.c"
#include "../../upstream/upstream_config.c"
#include "../policy_src.h"
#include "../../core/hdr.c"
#include "../cfg_equal.h"

#include <string.h>

/* ---- helpers */

static struct sl_config *parse(const char *json, struct cfg_errors *errs)
{
    return cfg_parse(json, strlen(json), errs);
}

static bool has_error(const struct cfg_errors *e, const char *path, const char *msg)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->v[i].path, path) == 0 && (msg == NULL || strstr(e->v[i].message, msg)))
            return true;
    return false;
}

static void dump_errors(const struct cfg_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        printf("#   error: \"%s\": %s\n", e->v[i].path, e->v[i].message);
}

static bool sa_is(const struct cfg_addr *a, int family, const char *ip, uint16_t port)
{
    char buf[INET6_ADDRSTRLEN];

    if (a->sa.ss_family != family)
        return false;
    if (family == AF_INET) {
        const struct sockaddr_in *s = (const void *)&a->sa;
        inet_ntop(AF_INET, &s->sin_addr, buf, sizeof(buf));
        return a->salen == sizeof(*s) && ntohs(s->sin_port) == port && strcmp(buf, ip) == 0;
    }
    const struct sockaddr_in6 *s6 = (const void *)&a->sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
    return a->salen == sizeof(*s6) && ntohs(s6->sin6_port) == port && strcmp(buf, ip) == 0;
}

/* Pieces of valid documents the invalid ones below are built from. */
#define LSN "\"listeners\":[{\"name\":\"http\",\"address\":\"127.0.0.1:8080\"}]"
#define UPS "\"upstreams\":[{\"name\":\"api\",\"targets\":[{\"address\":\"127.0.0.1:9001\"}]}]"
#define ROUTE_OK "{\"upstream\":\"api\"}"
#define DOC(...) "{" LSN "," UPS "," __VA_ARGS__ "}"
#define ROUTES(...) DOC("\"routes\":[" __VA_ARGS__ "]")

/* ---- the SPEC example, minus what is not built yet */

static const char spec_example[] =
    "{\n"
    "  \"workers\": 3,\n"
    "  \"listeners\": [\n"
    "    { \"name\": \"http\", \"address\": \"127.0.0.1:8080\" },\n"
    "    { \"name\": \"https\", \"address\": \"[::1]:8443\" }\n"
    "  ],\n"
    "  \"limits\": { \"max_header_bytes\": 8192, \"max_body_bytes\": 10000000000, \"max_connections\": 5000 },\n"
    "  \"timeouts\": { \"client_header_ms\": 5000, \"client_idle_ms\": 30000, \"drain_ms\": 7000 },\n"
    "  \"access_log\": \"/var/log/sluice.log\",\n"
    "  \"upstreams\": [\n"
    "    { \"name\": \"api\",\n"
    "      \"targets\": [ { \"address\": \"127.0.0.1:8001\", \"weight\": 5 },\n"
    "                   { \"address\": \"api.internal:8002\" } ],\n"
    "      \"balance\": \"round_robin\",\n"
    "      \"pool\": { \"max_idle_per_target\": 32, \"idle_timeout_ms\": 45000, \"max_connections\": 10,\n"
    "                \"max_queue\": 20, \"queue_timeout_ms\": 700 },\n"
    "      \"timeouts\": { \"connect_ms\": 250, \"response_header_ms\": 20000, \"idle_ms\": 100000 },\n"
    "      \"retries\": 2 },\n"
    "    { \"name\": \"api-canary\", \"targets\": [ { \"address\": \"[::1]:8003\" } ] }\n"
    "  ],\n"
    "  \"routes\": [\n"
    "    { \"name\": \"api\",\n"
    "      \"match\": { \"listeners\": [\"http\", \"https\"],\n"
    "                 \"hosts\": [\"API.example.com\", \"*.example.com\"],\n"
    "                 \"path\": { \"prefix\": \"/api/\" },\n"
    "                 \"methods\": [\"GET\", \"POST\"],\n"
    "                 \"headers\": [ { \"name\": \"X-Env\", \"value\": \"Canary\" } ],\n"
    "                 \"query\": [ { \"name\": \"V\", \"value\": \"2\" } ] },\n"
    "      \"rewrite\": { \"strip_prefix\": true, \"host\": \"Backend.internal\" },\n"
    "      \"request_headers\":  { \"set\": { \"X-A\": \"1\" }, \"add\": { \"x-b\": \"2\" }, \"remove\": [\"X-C\"] },\n"
    "      \"response_headers\": { \"set\": {}, \"add\": {}, \"remove\": [] },\n"
    "      \"backends\": [ { \"upstream\": \"api\", \"weight\": 90 }, { \"upstream\": \"api-canary\", \"weight\": 10 } ] },\n"
    "    { \"name\": \"legacy\", \"match\": { \"path\": { \"exact\": \"/old/\" } },\n"
    "      \"redirect\": { \"scheme\": \"https\", \"host\": \"new.example.com\", \"port\": 8443,\n"
    "                    \"path\": \"/new\", \"status\": 301 } },\n"
    "    { \"name\": \"ping\", \"match\": { \"path\": { \"exact\": \"/ping\" } },\n"
    "      \"respond\": { \"status\": 200, \"body\": \"pong\\n\", \"content_type\": \"text/plain\" } },\n"
    "    { \"match\": { \"path\": { \"prefix\": \"/v1\" } }, \"upstream\": \"api-canary\",\n"
    "      \"rewrite\": { \"replace_prefix\": \"/v2\" } },\n"
    "    { \"match\": { \"path\": { \"prefix\": \"/\" } },\n"
    "      \"redirect\": { \"path\": { \"replace_prefix\": \"/moved\" } } }\n"
    "  ]\n"
    "}\n";

static void test_spec_example(void)
{
    struct cfg_errors e = {0};
    struct sl_config *c = parse(spec_example, &e);

    ok(c != NULL && e.n == 0, "SPEC example parses");
    if (c == NULL) {
        dump_errors(&e);
        cfg_errors_clear(&e);
        return;
    }
    ok(c->workers == 3, "workers");
    ok(c->nlisteners == 2, "two listeners");
    ok(strcmp(c->listeners[0].name, "http") == 0 && c->listeners[0].addr.is_ip &&
       sa_is(&c->listeners[0].addr, AF_INET, "127.0.0.1", 8080), "listener 0 address");
    ok(strcmp(c->listeners[1].name, "https") == 0 &&
       strcmp(c->listeners[1].addr.host, "::1") == 0 &&
       strcmp(c->listeners[1].addr.text, "[::1]:8443") == 0 &&
       sa_is(&c->listeners[1].addr, AF_INET6, "::1", 8443), "listener 1 v6 address");
    ok(c->max_header_bytes == 8192 && c->max_body_bytes == 10000000000ULL &&
       c->max_connections == 5000, "limits");
    ok(c->client_header_ms == 5000 && c->client_idle_ms == 30000 && c->drain_ms == 7000,
       "timeouts");
    ok(c->access_log && strcmp(c->access_log, "/var/log/sluice.log") == 0, "access_log");
    ok(c->source && strcmp(c->source, spec_example) == 0, "source is a copy of the text");

    ok(c->nupstreams == 2, "two upstreams");
    struct cfg_upstream *u = &c->upstreams[0];
    ok(strcmp(u->name, "api") == 0 && u->ntargets == 2, "upstream api, 2 targets");
    ok(u->targets[0].weight == 5 && u->targets[0].addr.is_ip &&
       sa_is(&u->targets[0].addr, AF_INET, "127.0.0.1", 8001), "target 0");
    ok(u->targets[1].weight == 1 && !u->targets[1].addr.is_ip &&
       strcmp(u->targets[1].addr.host, "api.internal") == 0 && u->targets[1].addr.port == 8002,
       "target 1 is a DNS name, weight defaults to 1");
    ok(u->balance == CFG_BAL_ROUND_ROBIN, "balance");
    ok(u->max_idle_per_target == 32 && u->pool_idle_timeout_ms == 45000, "pool");
    ok(u->max_connections == 10 && u->max_queue == 20 && u->queue_timeout_ms == 700,
       "pool: max_connections, max_queue, queue_timeout_ms");
    ok(u->connect_ms == 250 && u->response_header_ms == 20000 && u->idle_ms == 100000,
       "upstream timeouts");
    ok(u->retries == 2, "retries");
    u = &c->upstreams[1];
    ok(u->max_idle_per_target == POOL_FOLLOW_DEMAND && u->pool_idle_timeout_ms == 60000 &&
       u->connect_ms == 1000 && u->response_header_ms == 30000 && u->idle_ms == 300000 &&
       u->retries == 1 && u->targets[0].weight == 1 && u->max_connections == 0 &&
       u->max_queue == 1024 && u->queue_timeout_ms == 5000, "upstream defaults");

    ok(c->nroutes == 5, "five routes");
    struct cfg_route *r = c->routes[0];
    ok(strcmp(r->name, "api") == 0 && r->index == 0, "route 0 name/index");
    ok(r->nlisteners == 2 && r->listener_idx[0] == 0 && r->listener_idx[1] == 1 &&
       strcmp(r->listeners[1], "https") == 0, "listeners resolved");
    ok(r->nhosts == 2 && strcmp(r->hosts[0], "api.example.com") == 0 &&
       strcmp(r->hosts[1], "*.example.com") == 0, "hosts lower-cased");
    ok(r->path_kind == CFG_PATH_PREFIX && strcmp(r->path, "/api") == 0 && r->path_len == 4,
       "prefix stored without trailing slash");
    ok(r->nmethods == 2 && strcmp(r->methods[0], "GET") == 0 && strcmp(r->methods[1], "POST") == 0,
       "methods");
    ok(r->nmatch_headers == 1 && strcmp(r->match_headers[0].name, "x-env") == 0 &&
       strcmp(r->match_headers[0].value, "Canary") == 0 && r->match_headers[0].name_len == 5 &&
       r->match_headers[0].value_len == 6, "match headers: name lower-cased, value exact");
    ok(r->nmatch_query == 1 && strcmp(r->match_query[0].name, "V") == 0 &&
       strcmp(r->match_query[0].value, "2") == 0, "match query is case-sensitive");
    ok(r->rewrite == CFG_RW_STRIP_PREFIX && r->rewrite_path == NULL &&
       strcmp(r->rewrite_host, "backend.internal") == 0, "rewrite strip_prefix + host");
    ok(r->req_headers.nset == 1 && strcmp(r->req_headers.set[0].name, "x-a") == 0 &&
       strcmp(r->req_headers.set[0].value, "1") == 0 &&
       r->req_headers.nadd == 1 && strcmp(r->req_headers.add[0].name, "x-b") == 0 &&
       r->req_headers.nremove == 1 && strcmp(r->req_headers.remove[0].name, "x-c") == 0,
       "request header edits");
    ok(r->resp_headers.nset == 0 && r->resp_headers.nadd == 0 && r->resp_headers.nremove == 0,
       "empty response header edits");
    ok(r->action == CFG_ACT_BACKENDS && r->nbackends == 2 &&
       strcmp(r->backends[0].upstream, "api") == 0 && r->backends[0].upstream_idx == 0 &&
       r->backends[0].weight == 90 && r->backends[1].upstream_idx == 1 &&
       r->backends[1].weight == 10, "weighted backends resolved");

    r = c->routes[1];
    ok(r->action == CFG_ACT_REDIRECT && r->path_kind == CFG_PATH_EXACT &&
       strcmp(r->path, "/old/") == 0, "exact path kept as written");
    ok(strcmp(r->redirect.scheme, "https") == 0 && strcmp(r->redirect.host, "new.example.com") == 0 &&
       r->redirect.port == 8443 && strcmp(r->redirect.path, "/new") == 0 &&
       r->redirect.replace_prefix == NULL && r->redirect.status == 301, "redirect");
    ok(r->nlisteners == 0 && r->listeners == NULL && r->nhosts == 0 && r->nmethods == 0,
       "unset match parts are empty");

    r = c->routes[2];
    ok(r->action == CFG_ACT_RESPOND && r->respond.status == 200 &&
       r->respond.body_len == 5 && memcmp(r->respond.body, "pong\n", 5) == 0 &&
       strcmp(r->respond.content_type, "text/plain") == 0, "respond");

    r = c->routes[3];
    ok(r->name == NULL && r->index == 3 && r->action == CFG_ACT_BACKENDS && r->nbackends == 1 &&
       r->backends[0].upstream_idx == 1 && r->backends[0].weight == 1,
       "upstream shorthand = one backend of weight 1");
    ok(r->rewrite == CFG_RW_REPLACE_PREFIX && strcmp(r->rewrite_path, "/v2") == 0 &&
       r->rewrite_path_len == 3 && r->rewrite_host == NULL, "rewrite replace_prefix");

    r = c->routes[4];
    ok(strcmp(r->path, "/") == 0 && r->path_len == 1, "prefix \"/\" stays \"/\"");
    ok(r->redirect.scheme == NULL && r->redirect.host == NULL && r->redirect.port == 0 &&
       r->redirect.path == NULL && strcmp(r->redirect.replace_prefix, "/moved") == 0 &&
       r->redirect.status == 302, "redirect defaults and replace_prefix");

    cfg_free(c);
    cfg_errors_clear(&e);
}

/* ---- defaults */

static void test_defaults(void)
{
    struct cfg_errors e = {0};
    const char *doc = "{\"listeners\":[{\"address\":\"*:80\"}],\"routes\":[]}";
    struct sl_config *c = parse(doc, &e);

    ok(c != NULL, "minimal document parses");
    if (c == NULL) {
        dump_errors(&e);
        cfg_errors_clear(&e);
        return;
    }
    ok(c->workers == 0 && c->max_header_bytes == 16384 && c->max_body_bytes == 0 &&
       c->max_connections == 0, "default workers and limits");
    ok(c->client_header_ms == 10000 && c->client_idle_ms == 60000 && c->drain_ms == 10000,
       "default timeouts");
    ok(c->access_log && strcmp(c->access_log, "stdout") == 0, "default access_log");
    ok(c->nupstreams == 0 && c->nroutes == 0, "no upstreams, no routes");
    ok(c->listeners[0].name == NULL && sa_is(&c->listeners[0].addr, AF_INET, "0.0.0.0", 80) &&
       strcmp(c->listeners[0].addr.text, "*:80") == 0, "\"*\" listens on any address");
    cfg_free(c);

    c = parse("{\"listeners\":[{\"address\":\"localhost:81\"},{\"address\":\"0.0.0.0:82\"}],"
              "\"routes\":[{\"respond\":{\"status\":503}}],\"access_log\":null}", &e);
    ok(c != NULL, "localhost listener, null access_log");
    if (c) {
        ok(c->access_log == NULL, "access_log null -> NULL");
        ok(sa_is(&c->listeners[0].addr, AF_INET, "127.0.0.1", 81) && c->listeners[0].addr.is_ip,
           "localhost -> 127.0.0.1");
        ok(sa_is(&c->listeners[1].addr, AF_INET, "0.0.0.0", 82), "0.0.0.0 listener");
        ok(c->routes[0]->respond.status == 503 && c->routes[0]->respond.body == NULL &&
           c->routes[0]->respond.content_type == NULL, "respond with only a status");
        ok(c->routes[0]->path_kind == CFG_PATH_ANY && c->routes[0]->path == NULL,
           "no match = any path");
    }
    cfg_free(c);

    c = parse("{\"listeners\":[{\"address\":\"127.0.0.1:80\"}],\"access_log\":\"stderr\","
              "\"limits\":{\"max_header_bytes\":1024},\"routes\":[]}", &e);
    ok(c && strcmp(c->access_log, "stderr") == 0 && c->max_header_bytes == 1024,
       "access_log stderr, max_header_bytes lower bound");
    cfg_free(c);
    c = parse("{\"listeners\":[{\"address\":\"127.0.0.1:80\"}],"
              "\"limits\":{\"max_header_bytes\":65536},\"routes\":[]}", &e);
    ok(c && c->max_header_bytes == 65536, "max_header_bytes upper bound");
    cfg_free(c);
    c = parse(ROUTES("{\"upstream\":\"api\",\"rewrite\":{\"host\":\"x.example\"}}"), &e);
    ok(c && c->routes[0]->rewrite == CFG_RW_NONE &&
       strcmp(c->routes[0]->rewrite_host, "x.example") == 0, "rewrite of the host only");
    cfg_free(c);
    c = parse(ROUTES("{\"match\":{\"path\":{\"exact\":\"/x\"}},\"upstream\":\"api\","
                     "\"rewrite\":{\"replace_path\":\"/y\"}}"), &e);
    ok(c && c->routes[0]->rewrite == CFG_RW_REPLACE_PATH &&
       strcmp(c->routes[0]->rewrite_path, "/y") == 0, "replace_path needs no prefix match");
    cfg_free(c);
    c = parse(ROUTES("{\"backends\":[{\"upstream\":\"api\",\"weight\":0},{\"upstream\":\"api\"}]}"), &e);
    ok(c && c->routes[0]->backends[0].weight == 0 && c->routes[0]->backends[1].weight == 1,
       "backend weight 0 allowed, default 1");
    cfg_free(c);
    c = parse(" \n" ROUTES() "\n\t ", &e);
    ok(c != NULL, "whitespace around the document is fine");
    cfg_free(c);
    ok(e.n == 0, "no errors from the valid documents");
    dump_errors(&e);
    cfg_errors_clear(&e);
}

/* ---- TLS and splice sections: shapes (files are loaded by tls.c) */

static void test_tls_fields(void)
{
    struct cfg_errors e = {0};
    struct sl_config *c = parse("{\"listeners\":[{\"address\":\"127.0.0.1:1\"},{\"address\":\"127.0.0.1:2\","
        "\"tls\":{\"certificates\":[{\"cert_file\":\"a.pem\",\"key_file\":\"a.key\"},"
        "{\"cert_pem\":\"C\",\"key_pem\":\"K\"}],\"ktls\":true,\"min_version\":\"1.3\","
        "\"handshake_timeout_ms\":500,\"session_tickets\":false}}],\"routes\":[],"
        "\"splice\":{\"enabled\":false,\"min_bytes\":1024},"
        "\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"127.0.0.1:1\"}],"
        "\"tls\":{\"sni\":\"api.internal\",\"ca_file\":\"ca.pem\"}},"
        "{\"name\":\"b\",\"targets\":[{\"address\":\"127.0.0.1:1\"}]}]}", &e);
    ok(c != NULL, "tls sections parse");
    if (c == NULL) {
        dump_errors(&e);
        cfg_errors_clear(&e);
        return;
    }
    ok(c->listeners[0].tls == NULL, "plain listener has no tls");
    const struct cfg_listener_tls *t = c->listeners[1].tls;
    ok(t && t->ncerts == 2 && strcmp(t->certs[0].cert_file, "a.pem") == 0 &&
       strcmp(t->certs[1].key_pem, "K") == 0 && t->ktls && t->min_version == CFG_TLS_1_3 &&
       t->handshake_timeout_ms == 500 && !t->session_tickets, "listener tls fields");
    ok(c->upstreams[0].tls && c->upstreams[0].tls->verify &&
       strcmp(c->upstreams[0].tls->sni, "api.internal") == 0 &&
       strcmp(c->upstreams[0].tls->ca_file, "ca.pem") == 0, "upstream tls fields, verify defaults to true");
    ok(c->upstreams[1].tls == NULL, "plain upstream has no tls");
    ok(!c->splice && c->splice_min_bytes == 1024, "splice section");
    cfg_free(c);

    c = parse("{" LSN ",\"routes\":[]}", &e);
    ok(c && c->splice && c->splice_min_bytes == 65536, "splice on by default");
    cfg_free(c);

    static const struct { const char *doc, *path, *msg; } bad[] = {
        { "{\"listeners\":[{\"address\":\"127.0.0.1:2\",\"tls\":{}}],\"routes\":[]}",
          "/listeners/0/tls/certificates", "is required" },
        { "{\"listeners\":[{\"address\":\"127.0.0.1:2\",\"tls\":{\"certificates\":[]}}],\"routes\":[]}",
          "/listeners/0/tls/certificates", "must contain at least one certificate" },
        { "{\"listeners\":[{\"address\":\"127.0.0.1:2\",\"tls\":{\"certificates\":[{\"cert_file\":\"a\"}]}}],\"routes\":[]}",
          "/listeners/0/tls/certificates/0/key_file", "is required" },
        { "{\"listeners\":[{\"address\":\"127.0.0.1:2\",\"tls\":{\"certificates\":[{\"cert_file\":\"a\",\"key_file\":\"b\",\"key_pem\":\"c\"}]}}],\"routes\":[]}",
          "/listeners/0/tls/certificates/0", "give cert_file and key_file, or cert_pem and key_pem, not both" },
        { "{\"listeners\":[{\"address\":\"127.0.0.1:2\",\"tls\":{\"certificates\":[{\"cert_file\":\"a\",\"key_file\":\"b\"}],\"ktls\":1}}],\"routes\":[]}",
          "/listeners/0/tls/ktls", "must be true or false" },
        { "{\"listeners\":[{\"address\":\"127.0.0.1:2\",\"tls\":{\"certificates\":[{\"cert_file\":\"a\",\"key_file\":\"b\"}],\"min_version\":\"1.1\"}}],\"routes\":[]}",
          "/listeners/0/tls/min_version", "must be \"1.2\" or \"1.3\"" },
        { "{\"listeners\":[{\"address\":\"127.0.0.1:2\",\"tls\":{\"certificates\":[{\"cert_file\":\"a\",\"key_file\":\"b\"}],\"ciphers\":\"x\"}}],\"routes\":[]}",
          "/listeners/0/tls/ciphers", "unknown field" },
        { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"127.0.0.1:1\"}],"
          "\"tls\":{\"verify\":\"yes\"}}]}", "/upstreams/0/tls/verify", "must be true or false" },
        { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"127.0.0.1:1\"}],"
          "\"tls\":{\"sni\":\"\"}}]}", "/upstreams/0/tls/sni", "must not be empty" },
        { "{" LSN ",\"routes\":[],\"splice\":{\"enabled\":true,\"threshold\":1}}",
          "/splice/threshold", "unknown field" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg_errors_clear(&e);
        c = parse(bad[i].doc, &e);
        ok(c == NULL && has_error(&e, bad[i].path, bad[i].msg), "%s: %s", bad[i].path, bad[i].msg);
        if (c != NULL || !has_error(&e, bad[i].path, bad[i].msg))
            dump_errors(&e);
        cfg_free(c);
    }
    cfg_errors_clear(&e);
}

/* ---- balance and hash_on */

#define UPS1 "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"127.0.0.1:1\"}]"

static void test_balance(void)
{
    static const struct { const char *doc; int bal, on; const char *name; } good[] = {
        { UPS1 "}]}", CFG_BAL_ROUND_ROBIN, CFG_HASH_NONE, NULL },
        { UPS1 ",\"balance\":\"round_robin\"}]}", CFG_BAL_ROUND_ROBIN, CFG_HASH_NONE, NULL },
        { UPS1 ",\"balance\":\"least_request\"}]}", CFG_BAL_LEAST_REQUEST, CFG_HASH_NONE, NULL },
        { UPS1 ",\"balance\":\"random_two\"}]}", CFG_BAL_RANDOM_TWO, CFG_HASH_NONE, NULL },
        { UPS1 ",\"balance\":\"hash\",\"hash_on\":\"client_ip\"}]}", CFG_BAL_HASH, CFG_HASH_CLIENT_IP, NULL },
        { UPS1 ",\"balance\":\"hash\",\"hash_on\":\"header:X-User\"}]}", CFG_BAL_HASH, CFG_HASH_HEADER, "X-User" },
        { UPS1 ",\"hash_on\":\"cookie:sid\",\"balance\":\"hash\"}]}", CFG_BAL_HASH, CFG_HASH_COOKIE, "sid" },
    };
    static const struct { const char *doc, *path, *msg; } bad[] = {
        { UPS1 ",\"balance\":\"hash\"}]}", "/upstreams/0/hash_on", "is required with balance \"hash\"" },
        { UPS1 ",\"hash_on\":\"client_ip\"}]}", "/upstreams/0/hash_on", "only goes with balance \"hash\"" },
        { UPS1 ",\"balance\":\"least_request\",\"hash_on\":\"client_ip\"}]}", "/upstreams/0/hash_on",
          "only goes with balance \"hash\"" },
        { UPS1 ",\"balance\":\"hash\",\"hash_on\":\"uri\"}]}", "/upstreams/0/hash_on",
          "must be client_ip, header:NAME or cookie:NAME" },
        { UPS1 ",\"balance\":\"hash\",\"hash_on\":\"header:\"}]}", "/upstreams/0/hash_on", "NAME must be" },
        { UPS1 ",\"balance\":\"hash\",\"hash_on\":\"cookie:a b\"}]}", "/upstreams/0/hash_on", "NAME must be" },
        { UPS1 ",\"balance\":\"hash\",\"hash_on\":\"header:x:y\"}]}", "/upstreams/0/hash_on", "NAME must be" },
        { UPS1 ",\"balance\":\"hash\",\"hash_on\":7}]}", "/upstreams/0/hash_on", "must be a string" },
        { UPS1 ",\"balance\":3}]}", "/upstreams/0/balance", "must be a string" },
        { UPS1 ",\"pool\":{\"max_connections\":-1}}]}", "/upstreams/0/pool/max_connections", "" },
        { UPS1 ",\"pool\":{\"queue_timeout_ms\":0}}]}", "/upstreams/0/pool/queue_timeout_ms", "" },
        { UPS1 ",\"pool\":{\"max_queue\":\"9\"}}]}", "/upstreams/0/pool/max_queue", "must be an integer" },
        { UPS1 ",\"balance\":\"least_conn\"}]}", "/upstreams/0/balance", "must be one of" },
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct cfg_errors e = {0};
        struct sl_config *c = parse(good[i].doc, &e);
        const struct cfg_upstream *u = c ? &c->upstreams[0] : NULL;
        ok(u && (int)u->balance == good[i].bal && (int)u->hash_on == good[i].on &&
           (good[i].name ? u->hash_name && strcmp(u->hash_name, good[i].name) == 0 &&
                           u->hash_name_len == strlen(good[i].name)
                         : u->hash_name == NULL),
           "balance %d hash_on %d parsed: %s", good[i].bal, good[i].on, good[i].doc + strlen(UPS1));
        if (c == NULL)
            dump_errors(&e);
        cfg_free(c);
        cfg_errors_clear(&e);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cfg_errors e = {0};
        struct sl_config *c = parse(bad[i].doc, &e);
        ok(c == NULL && e.n == 1 && has_error(&e, bad[i].path, bad[i].msg), "%s: %s", bad[i].path, bad[i].msg);
        if (c != NULL || e.n != 1)
            dump_errors(&e);
        cfg_free(c);
        cfg_errors_clear(&e);
    }
}

/* ---- upstreams[].health and upstreams[].outlier */

#define UP1(extra) "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\"," \
                   "\"targets\":[{\"address\":\"127.0.0.1:1\"}]" extra "}]}"

static void test_health_fields(void)
{
    struct cfg_errors e = {0};
    struct sl_config *c = parse(UP1(""), &e);

    ok(c && !c->upstreams[0].health.check.on, "no health: no active checks");
    ok(c && memcmp(&c->upstreams[0].health, &hc_policy_default, sizeof(hc_policy_default)) == 0,
       "no health, no outlier: the defaults");
    cfg_free(c);
    c = parse(UP1(",\"health\":{}"), &e);
    const struct hc_check *k = c ? &c->upstreams[0].health.check : NULL;
    ok(k && k->on && strcmp(k->path, "/") == 0 && k->interval_ms == 5000 && k->timeout_ms == 1000 &&
       k->rise == 2 && k->fall == 2 && k->status_lo == 200 && k->status_hi == 399,
       "health {}: checks on, GET / every 5 s, timeout 1 s, rise 2, fall 2, 200-399");
    cfg_free(c);
    c = parse(UP1(",\"health\":{\"path\":\"/hz?x=1\",\"interval_ms\":200,\"timeout_ms\":150,"
                  "\"rise\":3,\"fall\":4,\"expect_status\":[204,204]},"
                  "\"outlier\":{\"consecutive_failures\":3,\"consecutive_5xx\":5,"
                  "\"base_ejection_ms\":500,\"max_ejection_ms\":4000,\"max_ejection_percent\":100}"), &e);
    k = c ? &c->upstreams[0].health.check : NULL;
    const struct hc_outlier *o = c ? &c->upstreams[0].health.outlier : NULL;
    ok(k && strcmp(k->path, "/hz?x=1") == 0 && k->interval_ms == 200 && k->timeout_ms == 150 &&
       k->rise == 3 && k->fall == 4 && k->status_lo == 204 && k->status_hi == 204, "every health field");
    ok(o && o->failures == 3 && o->consecutive_5xx == 5 && o->base_ms == 500 && o->max_ms == 4000 &&
       o->max_percent == 100, "every outlier field");
    if (c == NULL)
        dump_errors(&e);
    cfg_free(c);
    cfg_errors_clear(&e);

    static const struct { const char *doc, *path, *msg; } bad[] = {
        { UP1(",\"health\":{\"path\":\"hz\"}"), "/upstreams/0/health/path", "must start with /" },
        { UP1(",\"health\":{\"path\":\"\"}"), "/upstreams/0/health/path", "must not be empty" },
        { UP1(",\"health\":{\"path\":\"/a b\"}"), "/upstreams/0/health/path", "spaces" },
        { UP1(",\"health\":{\"interval_ms\":0}"), "/upstreams/0/health/interval_ms", "from 10" },
        { UP1(",\"health\":{\"timeout_ms\":\"1\"}"), "/upstreams/0/health/timeout_ms", "integer" },
        { UP1(",\"health\":{\"interval_ms\":100,\"timeout_ms\":200}"), "/upstreams/0/health/timeout_ms",
          "must not be longer than interval_ms" },
        { UP1(",\"health\":{\"fall\":0}"), "/upstreams/0/health/fall", "from 1 to 1000" },
        { UP1(",\"health\":{\"expect_status\":200}"), "/upstreams/0/health/expect_status", "two statuses" },
        { UP1(",\"health\":{\"expect_status\":[200]}"), "/upstreams/0/health/expect_status", "two statuses" },
        { UP1(",\"health\":{\"expect_status\":[200,700]}"), "/upstreams/0/health/expect_status/1", "100 to 599" },
        { UP1(",\"health\":{\"expect_status\":[\"2xx\",299]}"), "/upstreams/0/health/expect_status/0", "100 to 599" },
        { UP1(",\"health\":{\"expect_status\":[300,200]}"), "/upstreams/0/health/expect_status", "above" },
        { UP1(",\"health\":{\"port\":80}"), "/upstreams/0/health/port", "unknown field" },
        { UP1(",\"health\":true"), "/upstreams/0/health", "must be an object" },
        { UP1(",\"outlier\":{\"max_ejection_percent\":101}"), "/upstreams/0/outlier/max_ejection_percent", "0 to 100" },
        { UP1(",\"outlier\":{\"base_ejection_ms\":0}"), "/upstreams/0/outlier/base_ejection_ms", NULL },
        { UP1(",\"outlier\":{\"base_ejection_ms\":5000,\"max_ejection_ms\":1000}"),
          "/upstreams/0/outlier/max_ejection_ms", "below base_ejection_ms" },
        { UP1(",\"outlier\":{\"consecutive_failures\":-1}"), "/upstreams/0/outlier/consecutive_failures", NULL },
        { UP1(",\"outlier\":{\"interval_ms\":1}"), "/upstreams/0/outlier/interval_ms", "unknown field" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = parse(bad[i].doc, &e);
        bool hit = has_error(&e, bad[i].path, bad[i].msg);
        ok(c == NULL && hit, "%s refused%s%s", bad[i].path, bad[i].msg ? ": " : "",
           bad[i].msg ? bad[i].msg : "");
        if (!hit)
            dump_errors(&e);
        cfg_free(c);
        cfg_errors_clear(&e);
    }
}

/* ---- the admin section and the access log format */

static void test_admin(void)
{
    struct cfg_errors e = {0};
    struct sl_config *c;

    c = parse("{" LSN ",\"routes\":[],\"admin\":{\"address\":\"127.0.0.1:9901\"}}", &e);
    ok(c && c->has_admin && c->admin_addr.port == 9901 && c->admin_token == NULL,
       "admin on loopback without a token is accepted");
    cfg_free(c);
    cfg_errors_clear(&e);

    c = parse("{" LSN ",\"routes\":[],\"admin\":{\"address\":\"[::1]:9901\"}}", &e);
    ok(c && c->has_admin, "admin on IPv6 loopback without a token is accepted");
    cfg_free(c);
    cfg_errors_clear(&e);

    c = parse("{" LSN ",\"routes\":[],\"admin\":{\"address\":\"0.0.0.0:9901\"}}", &e);
    ok(c == NULL && has_error(&e, "/admin/address", "needs admin.token"),
       "admin on a non-loopback address without a token is refused");
    cfg_errors_clear(&e);

    c = parse("{" LSN ",\"routes\":[],\"admin\":{\"address\":\"*:9901\",\"token\":\"s3cret\"}}", &e);
    ok(c && c->admin_token && strcmp(c->admin_token, "s3cret") == 0,
       "admin on any address with a token is accepted");
    cfg_free(c);
    cfg_errors_clear(&e);

    c = parse("{" LSN ",\"routes\":[],\"admin\":{\"address\":\"127.0.0.1:9901\",\"token\":\"\"}}", &e);
    ok(c == NULL && has_error(&e, "/admin/token", "empty"), "an empty admin token is refused");
    cfg_errors_clear(&e);

    c = parse("{" LSN ",\"routes\":[],\"admin\":{\"token\":\"x\"}}", &e);
    ok(c == NULL && has_error(&e, "/admin/address", "required"), "admin without an address is refused");
    cfg_errors_clear(&e);

    c = parse("{" LSN ",\"routes\":[],\"admin\":{\"address\":\"127.0.0.1:9901\",\"port\":1}}", &e);
    ok(c == NULL && has_error(&e, "/admin/port", "unknown field"), "unknown admin field is refused");
    cfg_errors_clear(&e);

    c = parse("{" LSN ",\"routes\":[],\"access_log_format\":\"json\"}", &e);
    ok(c && c->access_log_json, "access_log_format json");
    cfg_free(c);
    cfg_errors_clear(&e);

    c = parse("{" LSN ",\"routes\":[]}", &e);
    ok(c && !c->access_log_json && !c->has_admin, "text access log and no admin by default");
    cfg_free(c);
    cfg_errors_clear(&e);

    c = parse("{" LSN ",\"routes\":[],\"access_log_format\":\"xml\"}", &e);
    ok(c == NULL && has_error(&e, "/access_log_format", "json"), "a bad access_log_format is refused");
    cfg_errors_clear(&e);

    const char *be[] = { "127.0.0.1:9000" };
    c = cfg_quick("127.0.0.1:8080", be, 1, 1, "127.0.0.1:9901", NULL, NULL, &e);
    ok(c && c->has_admin && c->admin_addr.port == 9901, "quick mode with --admin");
    cfg_free(c);
    cfg_errors_clear(&e);
    c = cfg_quick("127.0.0.1:8080", be, 1, 1, "10.1.2.3:9901", NULL, NULL, &e);
    ok(c == NULL && e.n >= 1, "quick mode --admin on a non-loopback address is refused (no token)");
    cfg_errors_clear(&e);
}

/* ---- invalid documents: each must be refused with an error at this path */

struct bad_case {
    const char *doc;
    const char *path;
    const char *msg;        /* substring of the message, or NULL */
};

static const struct bad_case bad[] = {
    /* syntax and the root */
    { "{\"listeners\": [", "", "invalid JSON" },
    { "{\n  \"routes\": [],\n  \"listeners\": [ } ]\n}", "", "line 3" },
    { "", "", "invalid JSON" },
    { DOC("\"routes\":[]") " {}", "", "after the document" },
    { "[1,2]", "", "must be an object" },
    { "{\"routes\":[]}", "/listeners", "is required" },
    { "{" LSN "}", "/routes", "is required" },
    { DOC("\"routes\":[],\"rotues\":[]"), "/rotues", "unknown field" },
    { DOC("\"routes\":[],\"workers\":1,\"workers\":2"), "/workers", "duplicate key" },
    { DOC("\"routes\":{}"), "/routes", "must be an array" },
    { DOC("\"routes\":[],\"workers\":\"4\""), "/workers", "must be an integer" },
    { DOC("\"routes\":[],\"workers\":1.5"), "/workers", "must be an integer" },
    { DOC("\"routes\":[],\"workers\":2000"), "/workers", "from 0 to 1024" },
    { DOC("\"routes\":[],\"workers\":-1"), "/workers", NULL },
    /* limits and timeouts */
    { DOC("\"routes\":[],\"limits\":{\"max_header_bytes\":512}"), "/limits/max_header_bytes", "1024" },
    { DOC("\"routes\":[],\"limits\":{\"max_header_bytes\":65537}"), "/limits/max_header_bytes", NULL },
    { DOC("\"routes\":[],\"limits\":{\"max_body_bytes\":-5}"), "/limits/max_body_bytes", NULL },
    { DOC("\"routes\":[],\"limits\":{\"max_connections\":4294967296}"), "/limits/max_connections", NULL },
    { DOC("\"routes\":[],\"limits\":{\"max_conections\":1}"), "/limits/max_conections", "unknown field" },
    { DOC("\"routes\":[],\"limits\":[]"), "/limits", "must be an object" },
    { DOC("\"routes\":[],\"timeouts\":{\"client_header_ms\":0}"), "/timeouts/client_header_ms", NULL },
    { DOC("\"routes\":[],\"timeouts\":{\"drain_ms\":true}"), "/timeouts/drain_ms", "must be an integer" },
    { DOC("\"routes\":[],\"access_log\":\"\""), "/access_log", NULL },
    { DOC("\"routes\":[],\"access_log\":5"), "/access_log", "must be a string or null" },
    /* listeners */
    { "{\"listeners\":[],\"routes\":[]}", "/listeners", "at least one" },
    { "{\"listeners\":[{\"name\":\"a\"}],\"routes\":[]}", "/listeners/0/address", "is required" },
    { "{\"listeners\":[{\"address\":\"example.com:80\"}],\"routes\":[]}", "/listeners/0/address", "IP address, localhost or *" },
    { "{\"listeners\":[{\"address\":\"127.0.0.1\"}],\"routes\":[]}", "/listeners/0/address", "missing port" },
    { "{\"listeners\":[{\"address\":\"127.0.0.1:0\"}],\"routes\":[]}", "/listeners/0/address", "1 to 65535" },
    { "{\"listeners\":[{\"address\":\"127.0.0.1:65536\"}],\"routes\":[]}", "/listeners/0/address", NULL },
    { "{\"listeners\":[{\"address\":8080}],\"routes\":[]}", "/listeners/0/address", "must be a string" },
    { "{\"listeners\":[{\"name\":\"a\",\"address\":\"127.0.0.1:1\"},{\"name\":\"a\",\"address\":\"127.0.0.1:2\"}],\"routes\":[]}",
      "/listeners/1/name", "duplicate" },
    { "{\"listeners\":[{\"address\":\"127.0.0.1:1\"},{\"address\":\"127.0.0.1:1\"}],\"routes\":[]}",
      "/listeners/1/address", "same address" },
    { "{\"listeners\":[{\"address\":\"[::1]:1\"},{\"address\":\"[0:0::1]:1\"}],\"routes\":[]}",
      "/listeners/1/address", "same address" },
    { "{\"listeners\":[{\"address\":\"127.0.0.1:1\",\"port\":2}],\"routes\":[]}", "/listeners/0/port", "unknown field" },
    { "{\"listeners\":[\"127.0.0.1:1\"],\"routes\":[]}", "/listeners/0", "must be an object" },
    /* upstreams */
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"targets\":[{\"address\":\"127.0.0.1:1\"}]}]}", "/upstreams/0/name", "is required" },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[]}]}", "/upstreams/0/targets", "at least one" },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\"}]}", "/upstreams/0/targets", "is required" },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"127.0.0.1:1\"},"
      "{\"address\":\"bad_host:1\"}]}]}", "/upstreams/0/targets/1/address", "DNS name" },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"10.0.0.300:1\"}]}]}",
      "/upstreams/0/targets/0/address", NULL },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"h:1\",\"weight\":0}]}]}",
      "/upstreams/0/targets/0/weight", NULL },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"h:1\",\"weight\":1000001}]}]}",
      "/upstreams/0/targets/0/weight", NULL },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"h:1\"}],\"balance\":\"rr\"}]}",
      "/upstreams/0/balance", "must be one of round_robin, least_request, random_two, hash" },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"h:1\"}],\"retries\":11}]}",
      "/upstreams/0/retries", NULL },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"h:1\"}],"
      "\"timeouts\":{\"connect_ms\":0}}]}", "/upstreams/0/timeouts/connect_ms", NULL },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"h:1\"}],"
      "\"pool\":{\"idle_timeout_ms\":2.5}}]}", "/upstreams/0/pool/idle_timeout_ms", "must be an integer" },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"h:1\"}],"
      "\"pool\":{\"max_idle\":1}}]}", "/upstreams/0/pool/max_idle", "unknown field" },
    { "{" LSN ",\"routes\":[],\"upstreams\":[{\"name\":\"a\",\"targets\":[{\"address\":\"h:1\"}]},"
      "{\"name\":\"a\",\"targets\":[{\"address\":\"h:2\"}]}]}", "/upstreams/1/name", "duplicate" },
    /* routes: match */
    { ROUTES("{\"match\":{\"listeners\":[\"nope\"]},\"upstream\":\"api\"}"), "/routes/0/match/listeners/0", "unknown listener" },
    { ROUTES("{\"match\":{\"listeners\":[]},\"upstream\":\"api\"}"), "/routes/0/match/listeners", NULL },
    { ROUTES(ROUTE_OK ",{\"match\":{\"hosts\":[\"*\"]},\"upstream\":\"api\"}"), "/routes/1/match/hosts/0", NULL },
    { ROUTES("{\"match\":{\"hosts\":[\"a.*.b\"]},\"upstream\":\"api\"}"), "/routes/0/match/hosts/0", NULL },
    { ROUTES("{\"match\":{\"hosts\":[\"ok.example\",\"a.example:8080\"]},\"upstream\":\"api\"}"), "/routes/0/match/hosts/1", "port" },
    { ROUTES("{\"match\":{\"hosts\":[\"bad host\"]},\"upstream\":\"api\"}"), "/routes/0/match/hosts/0", NULL },
    { ROUTES("{\"match\":{\"hosts\":[\"*example.com\"]},\"upstream\":\"api\"}"), "/routes/0/match/hosts/0", NULL },
    { ROUTES(ROUTE_OK "," ROUTE_OK ",{\"match\":{\"path\":{\"prefix\":\"api\"}},\"upstream\":\"api\"}"),
      "/routes/2/match/path/prefix", "must start with '/'" },
    { ROUTES("{\"match\":{\"path\":{\"prefix\":\"/a\",\"exact\":\"/a\"}},\"upstream\":\"api\"}"), "/routes/0/match/path", "exactly one" },
    { ROUTES("{\"match\":{\"path\":{}},\"upstream\":\"api\"}"), "/routes/0/match/path", "exactly one" },
    { ROUTES("{\"match\":{\"path\":{\"regex\":\"/a\"}},\"upstream\":\"api\"}"), "/routes/0/match/path/regex", "unknown field" },
    { ROUTES("{\"match\":{\"path\":\"/a\"},\"upstream\":\"api\"}"), "/routes/0/match/path", "must be an object" },
    { ROUTES("{\"match\":{\"path\":{\"exact\":\"/a?b=1\"}},\"upstream\":\"api\"}"), "/routes/0/match/path/exact", NULL },
    { ROUTES("{\"match\":{\"methods\":[\"GET\",\"BAD METHOD\"]},\"upstream\":\"api\"}"), "/routes/0/match/methods/1", NULL },
    { ROUTES("{\"match\":{\"methods\":[\"GET\",7]},\"upstream\":\"api\"}"), "/routes/0/match/methods/1", "must be a string" },
    { ROUTES("{\"match\":{\"headers\":[{\"name\":\"x y\",\"value\":\"1\"}]},\"upstream\":\"api\"}"), "/routes/0/match/headers/0/name", NULL },
    { ROUTES("{\"match\":{\"headers\":[{\"name\":\"x\"}]},\"upstream\":\"api\"}"), "/routes/0/match/headers/0/value", "is required" },
    { ROUTES("{\"match\":{\"query\":[{\"name\":\"v\",\"value\":2}]},\"upstream\":\"api\"}"), "/routes/0/match/query/0/value", "must be a string" },
    { ROUTES("{\"match\":{\"host\":[\"a\"]},\"upstream\":\"api\"}"), "/routes/0/match/host", "unknown field" },
    /* routes: actions */
    { ROUTES("{\"name\":\"x\"}"), "/routes/0", "needs an action" },
    { ROUTES(ROUTE_OK ",{\"upstream\":\"api\",\"respond\":{\"status\":200}}"), "/routes/1", "more than one action" },
    { ROUTES("{\"upstream\":\"nope\"}"), "/routes/0/upstream", "unknown upstream" },
    { ROUTES("{\"backends\":[]}"), "/routes/0/backends", "at least one" },
    { ROUTES("{\"backends\":[{\"upstream\":\"api\"},{\"upstream\":\"nope\"}]}"), "/routes/0/backends/1/upstream", "unknown upstream" },
    { ROUTES("{\"backends\":[{\"upstream\":\"api\",\"weight\":0}]}"), "/routes/0/backends", "weight above 0" },
    { ROUTES("{\"backends\":[{\"upstream\":\"api\",\"weight\":1000001}]}"), "/routes/0/backends/0/weight", NULL },
    { ROUTES("{\"backends\":[{\"weight\":1}]}"), "/routes/0/backends/0/upstream", "is required" },
    { ROUTES("{\"name\":\"a\",\"upstream\":\"api\"},{\"name\":\"a\",\"upstream\":\"api\"}"), "/routes/1/name", "duplicate" },
    /* routes: rewrite */
    { ROUTES("{\"upstream\":\"api\",\"rewrite\":{\"strip_prefix\":true}}"), "/routes/0/rewrite/strip_prefix", "match.path.prefix" },
    { ROUTES("{\"match\":{\"path\":{\"exact\":\"/a\"}},\"upstream\":\"api\",\"rewrite\":{\"replace_prefix\":\"/b\"}}"),
      "/routes/0/rewrite/replace_prefix", "match.path.prefix" },
    { ROUTES("{\"match\":{\"path\":{\"prefix\":\"/a\"}},\"upstream\":\"api\",\"rewrite\":{\"strip_prefix\":true,\"replace_path\":\"/b\"}}"),
      "/routes/0/rewrite", "only one" },
    { ROUTES("{\"upstream\":\"api\",\"rewrite\":{}}"), "/routes/0/rewrite", NULL },
    { ROUTES("{\"upstream\":\"api\",\"rewrite\":{\"replace_path\":\"b\"}}"), "/routes/0/rewrite/replace_path", "'/'" },
    { ROUTES("{\"respond\":{\"status\":200},\"rewrite\":{\"replace_path\":\"/b\"}}"), "/routes/0/rewrite", "only allowed" },
    { ROUTES("{\"match\":{\"path\":{\"prefix\":\"/a\"}},\"upstream\":\"api\",\"rewrite\":{\"strip_prefix\":false}}"),
      "/routes/0/rewrite/strip_prefix", NULL },
    /* routes: redirect and respond */
    { ROUTES("{\"redirect\":{\"scheme\":\"ftp\"}}"), "/routes/0/redirect/scheme", "http or https" },
    { ROUTES("{\"redirect\":{\"status\":304}}"), "/routes/0/redirect/status", "301, 302, 303, 307, 308" },
    { ROUTES("{\"redirect\":{\"port\":0}}"), "/routes/0/redirect/port", NULL },
    { ROUTES("{\"redirect\":{\"host\":\"a.example:80\"}}"), "/routes/0/redirect/host", NULL },
    { ROUTES("{\"redirect\":{\"path\":\"new\"}}"), "/routes/0/redirect/path", "'/'" },
    { ROUTES("{\"redirect\":{\"path\":{\"replace_prefix\":\"/x\"}}}"), "/routes/0/redirect/path/replace_prefix", "match.path.prefix" },
    { ROUTES("{\"redirect\":{\"path\":5}}"), "/routes/0/redirect/path", NULL },
    { ROUTES("{\"respond\":{}}"), "/routes/0/respond/status", "is required" },
    { ROUTES("{\"respond\":{\"status\":199}}"), "/routes/0/respond/status", "200 to 599" },
    { ROUTES("{\"respond\":{\"status\":200,\"body\":5}}"), "/routes/0/respond/body", "must be a string" },
    { ROUTES("{\"respond\":{\"status\":200,\"content_type\":\"a\\r\\nb: c\"}}"), "/routes/0/respond/content_type", NULL },
    /* routes: header edits */
    { ROUTES("{\"upstream\":\"api\",\"request_headers\":{\"set\":{\"x-a\":\"1\\r\\nx-b: 2\"}}}"),
      "/routes/0/request_headers/set/x-a", "CR or LF" },
    { ROUTES("{\"upstream\":\"api\",\"request_headers\":{\"add\":{\"bad name\":\"1\"}}}"),
      "/routes/0/request_headers/add/bad name", NULL },
    { ROUTES("{\"upstream\":\"api\",\"response_headers\":{\"set\":{\"X-A\":\"1\",\"x-a\":\"2\"}}}"),
      "/routes/0/response_headers/set/x-a", "duplicate" },
    { ROUTES("{\"upstream\":\"api\",\"response_headers\":{\"remove\":[\"ok\",\"no:\"]}}"),
      "/routes/0/response_headers/remove/1", NULL },
    { ROUTES("{\"upstream\":\"api\",\"response_headers\":{\"delete\":[]}}"),
      "/routes/0/response_headers/delete", "unknown field" },
    { ROUTES("{\"upstream\":\"api\",\"request_headers\":{\"set\":{\"x\":1}}}"),
      "/routes/0/request_headers/set/x", "must be a string" },
    { ROUTES("{\"upstream\":\"api\",\"request_headers\":{\"set\":{\"a/b~\":\"1\"}}}"),
      "/routes/0/request_headers/set/a~1b~0", NULL },
};

static void test_bad_documents(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cfg_errors e = {0};
        struct sl_config *c = parse(bad[i].doc, &e);
        bool hit = has_error(&e, bad[i].path, bad[i].msg);

        ok(c == NULL && hit, "bad document %zu refused at \"%s\"%s%s", i, bad[i].path,
           bad[i].msg ? ": " : "", bad[i].msg ? bad[i].msg : "");
        if (!hit)
            dump_errors(&e);
        cfg_free(c);
        cfg_errors_clear(&e);
    }
}

/* One document with many mistakes: every one of them must be reported. */
static void test_all_errors_reported(void)
{
    static const char doc[] =
        "{ \"workers\": -2, \"bogus\": 1,"
        "  \"listeners\": [ { \"address\": \"127.0.0.1\" }, { \"name\": 5, \"address\": \"[::1]:80\" } ],"
        "  \"upstreams\": [ { \"name\": \"u\", \"targets\": [ { \"address\": \"h:1\", \"weight\": -1 } ],"
        "                     \"retries\": 99, \"health\": { \"rise\": 0 } } ],"
        "  \"routes\": [ { \"match\": { \"path\": { \"prefix\": \"x\" } }, \"upstream\": \"u\" },"
        "              { \"upstream\": \"missing\" },"
        "              { \"respond\": { \"status\": 200 }, \"redirect\": {} } ] }";
    static const char *const paths[] = {
        "/workers", "/bogus", "/listeners/0/address", "/listeners/1/name",
        "/upstreams/0/targets/0/weight", "/upstreams/0/retries", "/upstreams/0/health/rise",
        "/routes/0/match/path/prefix", "/routes/1/upstream", "/routes/2",
    };
    struct cfg_errors e = {0};
    struct sl_config *c = parse(doc, &e);
    size_t n = sizeof(paths) / sizeof(paths[0]);
    bool all = true;

    for (size_t i = 0; i < n; i++)
        if (!has_error(&e, paths[i], NULL)) {
            printf("# missing error at %s\n", paths[i]);
            all = false;
        }
    ok(c == NULL && all && e.n == n, "all %zu errors reported (got %zu)", n, e.n);
    if (e.n != n)
        dump_errors(&e);
    ok(has_error(&e, "/upstreams/0/health/rise", "must be an integer from 1 to 1000"),
       "a health field's error among the others");
    cfg_errors_clear(&e);

    /* errs that already holds entries: only new ones decide success. */
    cfg_errors_add(&e, "--x", "earlier problem %d", 1);
    c = parse(ROUTES(), &e);
    ok(c != NULL && e.n == 1 && strcmp(e.v[0].message, "earlier problem 1") == 0,
       "cfg_errors_add formats, and prior errors do not fail a good parse");
    cfg_free(c);
    cfg_errors_clear(&e);
    ok(e.n == 0 && e.v == NULL, "cfg_errors_clear empties the list");
}

static void test_syntax_position(void)
{
    struct cfg_errors e = {0};
    const char *doc = "{\n  \"listeners\": [],\n  \"routes\": [,]\n}";
    struct sl_config *c = parse(doc, &e);

    ok(c == NULL && e.n == 1 && strcmp(e.v[0].path, "") == 0 &&
       strstr(e.v[0].message, "line 3") && strstr(e.v[0].message, "byte offset"),
       "syntax error names line and byte offset");
    if (e.n)
        printf("# %s\n", e.v[0].message);
    cfg_errors_clear(&e);

    /* cfg_parse takes a length: text past it is not part of the document. */
    const char two[] = "{\"listeners\":[{\"address\":\"127.0.0.1:1\"}],\"routes\":[]}GARBAGE";
    c = cfg_parse(two, sizeof(two) - 1 - 7, &e);
    ok(c != NULL && e.n == 0 && strlen(c->source) == sizeof(two) - 1 - 7,
       "length bounds the document, source copies exactly that");
    cfg_free(c);
    cfg_errors_clear(&e);
}

/* Every truncation of a valid document is invalid JSON, and every one-byte
 * corruption either parses or is refused with errors: never both, never a
 * crash (this runs under ASan in CI). */
static void test_truncate_and_corrupt(void)
{
    size_t n = strlen(spec_example), bad_trunc = 0, inconsistent = 0;
    char *buf = malloc(n);
    static const char subst[] = "x\"{}[],:0-/ ";

    for (size_t len = 0; len + 2 <= n; len++) {
        struct cfg_errors e = {0};
        memcpy(buf, spec_example, len);
        struct sl_config *c = cfg_parse(buf, len, &e);
        if (c != NULL || e.n != 1 || e.v[0].path[0] != '\0')
            bad_trunc++;
        cfg_free(c);
        cfg_errors_clear(&e);
    }
    ok(bad_trunc == 0, "every truncation is one JSON error at the root (%zu wrong)", bad_trunc);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof(subst) - 1; k++) {
            struct cfg_errors e = {0};
            memcpy(buf, spec_example, n);
            buf[i] = subst[k];
            struct sl_config *c = cfg_parse(buf, n, &e);
            if ((c == NULL) != (e.n > 0))
                inconsistent++;
            cfg_free(c);
            cfg_errors_clear(&e);
        }
    ok(inconsistent == 0, "one-byte corruptions: config xor errors (%zu wrong)", inconsistent);
    free(buf);
}

/* ---- quick mode */

static void test_quick(void)
{
    struct cfg_errors e = {0};
    const char *const be[] = { "127.0.0.1:9001", "backend.internal:9002", "[::1]:9003" };
    struct sl_config *c = cfg_quick("*:8080", be, 3, 2, NULL, NULL, NULL, &e);

    ok(c != NULL && e.n == 0, "quick config builds");
    if (c) {
        ok(c->workers == 2 && c->nlisteners == 1 && strcmp(c->listeners[0].name, "quick") == 0 &&
           sa_is(&c->listeners[0].addr, AF_INET, "0.0.0.0", 8080), "quick listener");
        ok(c->nupstreams == 1 && strcmp(c->upstreams[0].name, "quick") == 0 &&
           c->upstreams[0].ntargets == 3 && c->upstreams[0].targets[1].addr.is_ip == false &&
           sa_is(&c->upstreams[0].targets[2].addr, AF_INET6, "::1", 9003) &&
           c->upstreams[0].targets[0].weight == 1 && c->upstreams[0].retries == 1 &&
           c->upstreams[0].connect_ms == 1000, "quick upstream with defaults");
        ok(c->nroutes == 1 && c->routes[0]->path_kind == CFG_PATH_ANY &&
           c->routes[0]->nhosts == 0 && c->routes[0]->nlisteners == 0 &&
           c->routes[0]->action == CFG_ACT_BACKENDS && c->routes[0]->nbackends == 1 &&
           c->routes[0]->backends[0].upstream_idx == 0, "quick catch-all route");
        ok(c->max_header_bytes == 16384 && c->client_idle_ms == 60000 &&
           strcmp(c->access_log, "stdout") == 0 && c->source != NULL, "quick defaults");
    }
    cfg_free(c);

    const char *const bad_be[] = { "127.0.0.1:9001", "nohost", "h:0" };
    c = cfg_quick("example.com:80", bad_be, 3, 0, NULL, NULL, NULL, &e);
    ok(c == NULL && e.n == 3 && strcmp(e.v[0].path, "--listen") == 0 &&
       strcmp(e.v[1].path, "--backend") == 0 && strcmp(e.v[2].path, "--backend") == 0 &&
       strstr(e.v[1].message, "nohost") != NULL, "quick mode reports every bad address");
    dump_errors(&e);
    cfg_errors_clear(&e);
    c = cfg_quick("127.0.0.1:80", NULL, 0, 0, NULL, NULL, NULL, &e);
    ok(c == NULL && e.n == 1 && strcmp(e.v[0].path, "--backend") == 0, "quick mode needs a backend");
    cfg_errors_clear(&e);
    c = cfg_quick("127.0.0.1:80", be, 1, 5000, NULL, NULL, NULL, &e);
    ok(c == NULL && e.n == 1 && strcmp(e.v[0].path, "--workers") == 0, "quick mode checks workers");
    cfg_errors_clear(&e);
}

/* ---- cfg_parse_addr */

static void test_parse_addr(void)
{
    static const struct {
        const char *text;
        bool good;
        const char *host;
        int port;
        bool is_ip;
        const char *err;    /* substring of the message when !good */
    } t[] = {
        { "127.0.0.1:80", true, "127.0.0.1", 80, true, NULL },
        { "[::1]:8080", true, "::1", 8080, true, NULL },
        { "[2001:db8::5]:65535", true, "2001:db8::5", 65535, true, NULL },
        { "api.internal:8002", true, "api.internal", 8002, false, NULL },
        { "localhost:1", true, "localhost", 1, false, NULL },
        { "a-b.c1:443", true, "a-b.c1", 443, false, NULL },
        { "127.0.0.1", false, NULL, 0, false, "missing port" },
        { "127.0.0.1:", false, NULL, 0, false, "missing port" },
        { "[::1]", false, NULL, 0, false, "missing port" },
        { "127.0.0.1:0", false, NULL, 0, false, "1 to 65535" },
        { "127.0.0.1:65536", false, NULL, 0, false, "1 to 65535" },
        { "127.0.0.1:123456", false, NULL, 0, false, "1 to 65535" },
        { "127.0.0.1:8x", false, NULL, 0, false, "1 to 65535" },
        { "127.0.0.1:-1", false, NULL, 0, false, "1 to 65535" },
        { ":80", false, NULL, 0, false, "empty host" },
        { "[]:80", false, NULL, 0, false, "empty host" },
        { "", false, NULL, 0, false, "empty address" },
        { "[::1:80", false, NULL, 0, false, "']'" },
        { "[::1]80", false, NULL, 0, false, "after ']'" },
        { "::1:80", false, NULL, 0, false, "brackets" },
        { "a]:80", false, NULL, 0, false, "'['" },
        { "[127.0.0.1]:80", false, NULL, 0, false, "IPv6" },
        { "[nothex]:80", false, NULL, 0, false, "IPv6" },
        { "-bad.example:80", false, NULL, 0, false, "DNS name" },
        { "bad..example:80", false, NULL, 0, false, "DNS name" },
        { "1.2.3.999:80", false, NULL, 0, false, "DNS name" },
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct cfg_addr a;
        char err[128] = "";
        bool r = cfg_parse_addr(t[i].text, &a, err, sizeof(err));

        if (t[i].good)
            ok(r && strcmp(a.host, t[i].host) == 0 && a.port == t[i].port &&
               a.is_ip == t[i].is_ip && strcmp(a.text, t[i].text) == 0 &&
               (!a.is_ip || sa_is(&a, strchr(t[i].host, ':') ? AF_INET6 : AF_INET,
                                  t[i].host, (uint16_t)t[i].port)),
               "addr \"%s\" parses", t[i].text);
        else
            ok(!r && strstr(err, t[i].err) != NULL && a.host == NULL && a.text == NULL,
               "addr \"%s\" refused: %s", t[i].text, err);
        if (r)
            cfg_addr_free(&a);
    }
}


/* ---- cfg_parse_update: reusing unchanged routes across reloads */

struct tbuf {
    char *p;
    size_t n, cap;
};

__attribute__((format(printf, 2, 3)))
static void tb_printf(struct tbuf *b, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)k + 1 > b->cap) {
        b->cap = (b->n + (size_t)k + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* 30 routes using every route field.  Routes i % 3 == 0 carry variant v in
 * a header value; extra (if any) is appended as one more route; targets
 * sets the second upstream's target count (a change outside the routes). */
static char *upd_doc(int v, const char *extra, int targets, const char *sep)
{
    struct tbuf b = { 0 };

    tb_printf(&b, "{\"listeners\":[{\"name\":\"http\",\"address\":\"127.0.0.1:8080\"},"
                  "{\"name\":\"alt\",\"address\":\"127.0.0.1:8081\"}],"
                  "\"upstreams\":[{\"name\":\"api\",\"targets\":[{\"address\":\"127.0.0.1:9001\"}]},"
                  "{\"name\":\"web\",\"targets\":[");
    for (int t = 0; t < targets; t++)
        tb_printf(&b, "%s{\"address\":\"127.0.0.1:%d\",\"weight\":%d}", t ? "," : "", 9100 + t, t + 1);
    tb_printf(&b, "]}],\n\"routes\" : [");
    for (int i = 0; i < 30; i++) {
        const char *var = i % 3 == 0 ? (v ? "one" : "zero") : "same";
        tb_printf(&b, "%s", i ? sep : "");
        switch (i % 6) {
        case 0:
            tb_printf(&b, "{\"name\":\"r%d\",\"match\":{\"listeners\":[\"http\",\"alt\"],"
                          "\"hosts\":[\"a%d.example.com\",\"*.w%d.example.org\"],"
                          "\"path\":{\"prefix\":\"/api/%d/\"},\"methods\":[\"GET\",\"POST\"],"
                          "\"headers\":[{\"name\":\"X-Tenant\",\"value\":\"t-%s\"}],"
                          "\"query\":[{\"name\":\"q\",\"value\":\"1\"}]},"
                          "\"rewrite\":{\"strip_prefix\":true},"
                          "\"request_headers\":{\"set\":{\"X-A\":\"1\"},\"add\":{\"X-B\":\"2\"},"
                          "\"remove\":[\"X-C\"]},"
                          "\"backends\":[{\"upstream\":\"api\",\"weight\":3},{\"upstream\":\"web\",\"weight\":0}]}",
                      i, i, i, i, var);
            break;
        case 1:
            tb_printf(&b, "{\"name\":\"r%d\",\"match\":{\"path\":{\"prefix\":\"/old/%d\"}},"
                          "\"redirect\":{\"scheme\":\"https\",\"host\":\"new.example.com\",\"port\":8443,"
                          "\"path\":{\"replace_prefix\":\"/new\"},\"status\":301}}", i, i);
            break;
        case 2:
            tb_printf(&b, "{\"name\":\"r%d\",\"match\":{\"hosts\":[\"b%d.example.com\"]},"
                          "\"respond\":{\"status\":200,\"body\":\"a \\\"quoted\\\" ] } [ { \\\\\\\\ end %s\","
                          "\"content_type\":\"text/plain\"}}", i, i, var);
            break;
        case 3:
            tb_printf(&b, "{\"name\":\"r%d\",\"match\":{\"path\":{\"prefix\":\"/p%d\"}},"
                          "\"rewrite\":{\"replace_path\":\"/x/%d\",\"host\":\"Up.Example.com\"},"
                          "\"response_headers\":{\"set\":{\"X-Seen\":\"%s\"}},\"upstream\":\"web\"}",
                      i, i, i, var);
            break;
        case 4:
            tb_printf(&b, "{\"name\":\"r%d\",\"match\":{\"hosts\":[\"*.c%d.example.net\"],"
                          "\"path\":{\"exact\":\"/e/%d\"}},\"upstream\":\"api\"}", i, i, i);
            break;
        default:
            tb_printf(&b, "{\"match\":{\"path\":{\"prefix\":\"/u%d\"}},"
                          "\"rewrite\":{\"replace_prefix\":\"/v%d\"},\"upstream\":\"api\"}", i, i);
        }
    }
    if (extra)
        tb_printf(&b, "%s%s", sep, extra);
    tb_printf(&b, "]}\n");
    return b.p;
}

static bool same_errors(const struct cfg_errors *a, const struct cfg_errors *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].path, b->v[i].path) != 0 || strcmp(a->v[i].message, b->v[i].message) != 0)
            return false;
    return true;
}

/* How many of the last check_update()'s routes are base's very structs. */
static size_t last_shared;

/* cfg_parse_update(doc, base) against cfg_parse(doc): the same config (or
 * the same errors); returns the update's result (or NULL). */
static struct sl_config *check_update(const char *what, const char *doc,
                                      const struct sl_config *base, size_t want_reused)
{
    struct cfg_errors e1 = { 0 }, e2 = { 0 };
    struct sl_config *full = parse(doc, &e1);
    struct sl_config *upd = cfg_parse_update(doc, strlen(doc), &e2, base);
    char why[128] = "";

    if (full == NULL) {
        ok(upd == NULL && same_errors(&e1, &e2), "%s: the same %zu error(s) as a full parse",
           what, e1.n);
    } else {
        bool same = upd && cfg_routes_equal(full, upd, why, sizeof(why));
        ok(same, "%s: the same config as a full parse %s", what, why);
        ok(upd && upd->routes_reused == want_reused, "%s: %zu routes reused (want %zu)", what,
           upd ? upd->routes_reused : 0, want_reused);
        /* what cfg_route_copied() says of each route is true */
        size_t told = 0, wrong = 0;
        for (size_t i = 0; upd && i < upd->nroutes; i++)
            for (size_t j = 0; base && j < base->nroutes; j++)
                if (cfg_route_copied(upd, i, base, j)) {
                    struct cfg_route r = *base->routes[j];
                    r.index = i;
                    told++;
                    wrong += !ceq_route(&r, upd->routes[i]);
                }
        ok(upd && told == upd->routes_reused && wrong == 0 && !cfg_route_copied(upd, 0, upd, 0),
           "%s: cfg_route_copied() names %zu copies, %zu of them wrongly", what, told, wrong);
        /* routes[i]->index == i, so a struct is shared only where it stays */
        size_t at_index = 0, moved = 0;
        last_shared = 0;
        for (size_t i = 0; upd && i < upd->nroutes; i++) {
            at_index += upd->routes[i]->index == i;
            for (size_t j = 0; base && j < base->nroutes; j++)
                if (upd->routes[i] == base->routes[j]) {
                    last_shared++;
                    moved += i != j;
                }
        }
        ok(upd && at_index == upd->nroutes && moved == 0,
           "%s: every route at its index (%zu of %zu), %zu structs shared, %zu of them moved",
           what, at_index, upd ? upd->nroutes : 0, last_shared, moved);
    }
    if (!ok(e1.n == e2.n, "%s: errors %zu / %zu", what, e1.n, e2.n))
        dump_errors(&e2);
    cfg_free(full);
    cfg_errors_clear(&e1);
    cfg_errors_clear(&e2);
    return upd;
}

/* check_update() of the second document variant with extra appended to
 * its routes. */
static void upd_case(const char *what, const char *extra, const struct sl_config *base,
                     size_t want_reused)
{
    char *d = upd_doc(1, extra, 2, ",");

    cfg_free(check_update(what, d, base, want_reused));
    free(d);
}

static void test_parse_update(void)
{
    struct cfg_errors e = { 0 };
    char *d0 = upd_doc(0, NULL, 2, ","), *d1 = upd_doc(1, NULL, 2, ",");
    struct sl_config *base = parse(d0, &e), *u;

    if (!ok(base && base->shape && base->routes_reused == 0, "a full parse records where its routes are"))
        dump_errors(&e);

    /* 10 of 30 routes changed: the other 20 are copied */
    u = check_update("one route in three changed", d1, base, 20);
    /* the copies own their memory: the base may go first */
    struct sl_config *again = parse(d1, &e);
    cfg_free(base);
    char why[128] = "";
    ok(u && again && cfg_routes_equal(u, again, why, sizeof(why)), "a copy outlives its base %s", why);
    cfg_free(again);
    base = u;

    /* the same text again: everything is copied */
    cfg_free(check_update("the same document", d1, base, 30));

    /* a change outside the routes: nothing is copied */
    char *t3 = upd_doc(1, NULL, 3, ",");
    cfg_free(check_update("an upstream changed", t3, base, 0));
    free(t3);

    /* other blanks between the routes: the routes' own text is what counts */
    char *nl = upd_doc(1, NULL, 2, " ,\n\t ");
    cfg_free(check_update("routes laid out differently", nl, base, 30));
    free(nl);

    /* a new route with an error: the full parse's errors, paths and all */
    upd_case("a new route naming an unknown upstream", "{\"upstream\":\"nope\"}",
             base, 0);

    /* an unchanged route twice: its name is a duplicate */
    upd_case("an unchanged route repeated", "{\"name\":\"r4\",\"match\":{\"hosts\":[\"*.c4.example.net\"],"
              "\"path\":{\"exact\":\"/e/4\"}},\"upstream\":\"api\"}",
             base, 0);

    /* a new route taking the name of an unchanged one, after it and before */
    upd_case("a new route named like an unchanged one", "{\"name\":\"r4\",\"upstream\":\"web\"}",
             base, 0);
    struct tbuf pre = { 0 };
    char *tdoc = upd_doc(1, NULL, 2, ",");
    char *arr = strstr(tdoc, "\"routes\" : [") + strlen("\"routes\" : [");
    tb_printf(&pre, "%.*s{\"name\":\"r4\",\"upstream\":\"web\"},%s", (int)(arr - tdoc), tdoc, arr);
    cfg_free(check_update("a new route named like a later unchanged one", pre.p, base, 0));
    free(pre.p);
    free(tdoc);
    /* a new route with a new name among unchanged ones: no clash */
    upd_case("a new route with a name of its own", "{\"name\":\"brand-new\",\"upstream\":\"web\"}",
             base, 30);

    /* a new unnamed route that is also an unchanged one: fine */
    upd_case("an unnamed route repeated", "{\"match\":{\"path\":{\"prefix\":\"/u5\"}},"
              "\"rewrite\":{\"replace_prefix\":\"/v5\"},\"upstream\":\"api\"}",
             base, 31);

    /* broken JSON inside a route: the syntax error of a full parse */
    upd_case("invalid JSON in a new route", "{\"upstream\":\"api\",}",
             base, 0);
    upd_case("an unterminated string", "{\"upstream\":\"api\"}, {\"name\":\"x",
             base, 0);

    /* "routes" twice, or spelt with an escape: parsed whole, as ever */
    char *two = upd_doc(1, NULL, 2, ",");
    char *tail = strrchr(two, '}');
    size_t off = (size_t)(tail - two);
    struct tbuf sb = { 0 };
    tb_printf(&sb, "%.*s,\"routes\":[]}", (int)off, two);
    cfg_free(check_update("a second routes key", sb.p, base, 0));
    free(sb.p);
    free(two);
    char *esc = upd_doc(1, NULL, 2, ",");
    char *k = strstr(esc, "\"routes\"");
    memmove(k + 11, k + 7, strlen(k + 7) + 1);
    memcpy(k + 5, "\\u0065", 6);
    cfg_free(check_update("an escaped routes key", esc, base, 0));
    free(esc);

    /* no usable base: a plain parse */
    cfg_free(check_update("no base", d1, NULL, 0));
    struct sl_config hand = { 0 };
    cfg_free(check_update("a base without a recorded shape", d1, &hand, 0));

    /* an empty routes list either way */
    const char *empty = "{" LSN "," UPS ",\"routes\":[]}";
    struct sl_config *eb = check_update("routes emptied", empty, base, 0);
    cfg_free(check_update("routes from none", d1, eb, 0));
    cfg_free(eb);

    /* a chain of reloads, each based on the last */
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof(name), "reload %d of a chain", i);
        struct sl_config *n = check_update(name, i % 2 ? d1 : d0, base, 20);
        cfg_free(base);
        base = n;
    }

    /* while scanning, unchanged routes are recognised by position, past
     * two neighbours changed in place and a route inserted: only those
     * three are scanned */
    {
        struct tbuf nd = { 0 };
        const char *src = base->source, *r3 = strstr(src, "\"name\":\"r3\""),
                   *r4 = strstr(src, "\"name\":\"r4\""), *r10 = strstr(src, "{\"name\":\"r10\"");
        tb_printf(&nd, "%.*s\"name\":\"r3x\"%.*s\"name\":\"r4x\"%.*s{\"name\":\"new\",\"upstream\":\"api\"},%s",
                  (int)(r3 - src), src, (int)(r4 - (r3 + 11)), r3 + 11, (int)(r10 - (r4 + 11)), r4 + 11, r10);
        struct shape_scan sc;
        size_t scanned = 0;
        bool parsed = shape_scan(nd.p, strlen(nd.p), &sc, base->source, base->shape);
        for (size_t i = 0; parsed && i < sc.n; i++)
            scanned += sc.base_idx[i] == 0;
        ok(parsed && sc.n == base->nroutes + 1 && scanned == 3,
           "scanning by position: %zu of %zu routes scanned (want 3)", scanned, sc.n);
        free(sc.el);
        free(sc.base_idx);
        struct sl_config *m = check_update("two routes changed in place, one inserted", nd.p, base, 28);
        free(nd.p);
        ok(last_shared == 8, "the 8 unchanged routes before the insertion share their structs (%zu)",
           last_shared);
        /* the routes after it got structs of their own, with their new
         * index; the next reload shares those too, and outlives m */
        if (m != NULL) {
            struct tbuf nd2 = { 0 };
            const char *r3x = strstr(m->source, "\"name\":\"r3x\"");
            tb_printf(&nd2, "%.*s\"name\":\"r3y\"%s", (int)(r3x - m->source), m->source, r3x + 12);
            struct sl_config *m2 = check_update("one route renamed after an insertion", nd2.p, m, 30);
            free(nd2.p);
            ok(last_shared == m->nroutes - 1, "all but the renamed route share their structs (%zu of %zu)",
               last_shared, m->nroutes);
            cfg_free(m);
            struct cfg_errors e3 = { 0 };
            struct sl_config *full = m2 ? cfg_parse(m2->source, strlen(m2->source), &e3) : NULL;
            char why2[128] = "";
            ok(full && cfg_routes_equal(full, m2, why2, sizeof(why2)),
               "after the base is freed, the shared structs are intact %s", why2);
            cfg_free(full);
            cfg_errors_clear(&e3);
            cfg_free(m2);
        }
    }

    /* routes shared, not copied: a reload's unchanged routes point into the
     * arena they were parsed into; a chain of reloads each renaming another
     * of 12 routes spreads them over more arenas than a config may hold on
     * to, and every config of it is still what a full parse gives, each
     * freed as its successor arrives */
    size_t most = 0, shared_routes = 0;
    for (int t = 0; t < 30; t++) {
        char from[32], to[40], name[48];
        static const int named[12] = { 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13 };  /* not 5, 11 */
        int rk = named[t % 12];
        snprintf(from, sizeof(from), "\"name\":\"r%d", rk);
        snprintf(to, sizeof(to), "\"name\":\"r%d-t%d", rk, t);
        const char *at = strstr(base->source, from);
        struct tbuf nd = { 0 };
        tb_printf(&nd, "%.*s%s%s", (int)(at - base->source), base->source, to, at + strlen(from));
        snprintf(name, sizeof(name), "renaming route %d, reload %d", rk, t);
        struct sl_config *n = check_update(name, nd.p, base, 29);
        free(nd.p);
        if (n == NULL)
            break;
        for (size_t i = 0; i < n->nroutes; i++)
            shared_routes += n->routes[i]->name && n->routes[i]->name == base->routes[i]->name;
        if (n->share->nforeign > most)
            most = n->share->nforeign;
        cfg_free(base);
        base = n;
    }
    ok(shared_routes > 30 * 15 && most == CFG_MAX_FOREIGN,
       "reloads share unchanged routes (%zu shared) in at most %d other arenas (%zu)",
       shared_routes, CFG_MAX_FOREIGN, most);
    cfg_free(base);
    cfg_errors_clear(&e);
    free(d0);
    free(d1);
}

/* "dns": the resolver's servers as c-ares's CSV list, the build's bound;
 * bad values name their path. */
static void test_dns(void)
{
    struct cfg_errors e = {0};
    struct sl_config *c;

    c = parse("{" LSN ",\"routes\":[]}", &e);
    ok(c && c->dns_servers == NULL && c->dns_timeout_ms == 2000, "no dns: the system's servers, 2000 ms");
    cfg_free(c);
    cfg_errors_clear(&e);
    c = parse("{" LSN ",\"routes\":[],\"dns\":{\"servers\":[\"127.0.0.1:5353\",\"[::1]:53\","
              "\"10.0.0.2\",\"fe80::1\"],\"timeout_ms\":300}}", &e);
    ok(c && c->dns_servers && strcmp(c->dns_servers, "127.0.0.1:5353,[::1]:53,10.0.0.2,fe80::1") == 0 &&
       c->dns_timeout_ms == 300, "servers and timeout_ms (have %s)", c && c->dns_servers ? c->dns_servers : "NULL");
    cfg_free(c);
    cfg_errors_clear(&e);
    c = parse("{" LSN ",\"routes\":[],\"dns\":{\"timeout_ms\":100}}", &e);
    ok(c && c->dns_servers == NULL && c->dns_timeout_ms == 100, "timeout_ms alone");
    cfg_free(c);
    cfg_errors_clear(&e);

    static const struct { const char *dns, *path, *msg; } dbad[] = {
        { "{\"servers\":[\"ns.example:53\"]}", "/dns/servers/0", "not an IP address" },
        { "{\"servers\":[\"127.0.0.1:0\"]}", "/dns/servers/0", "1..65535" },
        { "{\"servers\":[\"127.0.0.1:x\"]}", "/dns/servers/0", "1..65535" },
        { "{\"servers\":[\"[::1\"]}", "/dns/servers/0", "[IP]:port" },
        { "{\"servers\":[\"127.0.0.1\",7]}", "/dns/servers/1", "string" },
        { "{\"servers\":[]}", "/dns/servers", "non-empty" },
        { "{\"servers\":\"127.0.0.1\"}", "/dns/servers", "array" },
        { "{\"timeout_ms\":0}", "/dns/timeout_ms", NULL },
        { "{\"timeout_ms\":60001}", "/dns/timeout_ms", NULL },
        { "{\"ttl\":1}", "/dns/ttl", "unknown field" },
        { "[]", "/dns", NULL },
    };
    for (size_t i = 0; i < sizeof(dbad) / sizeof(dbad[0]); i++) {
        char doc[256];
        snprintf(doc, sizeof(doc), "{" LSN ",\"routes\":[],\"dns\":%s}", dbad[i].dns);
        c = parse(doc, &e);
        ok(c == NULL && has_error(&e, dbad[i].path, dbad[i].msg), "dns %s: %s", dbad[i].dns, dbad[i].path);
        if (c != NULL || !has_error(&e, dbad[i].path, dbad[i].msg))
            dump_errors(&e);
        cfg_free(c);
        cfg_errors_clear(&e);
    }
}

int main(void)
{
    test_spec_example();
    test_dns();
    test_defaults();
    test_tls_fields();
    test_health_fields();
    test_balance();
    test_admin();
    test_bad_documents();
    test_all_errors_reported();
    test_syntax_position();
    test_truncate_and_corrupt();
    test_quick();
    test_parse_addr();
    test_parse_update();
    return tap_done();
}
