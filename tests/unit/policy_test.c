/* policy_test.c - policy/: access lists (CIDR edge cases, IPv4-mapped
 * IPv6, overlaps, bad strings with their JSON paths), the api_key table,
 * basic auth's file checks and base64, the order of the checks. */
#include "tap.h"
#include "../policy_src.h"
#include "../../core/arena.c"
#include "../../core/cfgerr.c"
#include "../../core/cfgparse.c"
#include "../../core/nidx.c"
#include "../../core/hdr.c"

#include <arpa/inet.h>
#include <crypt.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

/* A temporary file's mkstemp template under $TMPDIR (default /tmp). */
static void tmp_template(char *buf, size_t n, const char *stem)
{
    const char *d = getenv("TMPDIR");
    snprintf(buf, n, "%s/%s-XXXXXX", d && *d ? d : "/tmp", stem);
}

static struct cfg_mem *g_mem;
static struct pol_worker *g_pw;     /* what a check borrows of its worker */
static struct cfg_errors g_errs;

static struct cfg_ctx ctx(void)
{
    cfg_errors_clear(&g_errs);
    return (struct cfg_ctx){ &g_errs, &g_mem };
}

static bool has_error(const char *path, const char *part)
{
    for (size_t i = 0; i < g_errs.n; i++)
        if (strcmp(g_errs.v[i].path, path) == 0 && (part == NULL || strstr(g_errs.v[i].message, part)))
            return true;
    return false;
}

static struct pol_access *acc(const char *json)
{
    struct cfg_ctx cx = ctx();
    cJSON *v = cJSON_Parse(json);
    struct pol_access *a = pol_access_parse(&cx, v, JP_K(NULL, "access"));
    cJSON_Delete(v);
    return g_errs.n ? NULL : a;
}

static bool allows(const struct pol_access *a, const char *ip)
{
    struct sockaddr_in6 s6;
    struct sockaddr_in s4;

    memset(&s6, 0, sizeof(s6));
    memset(&s4, 0, sizeof(s4));
    if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        return pol_access_allows(a, (struct sockaddr *)&s4);
    }
    if (inet_pton(AF_INET6, ip, &s6.sin6_addr) != 1)
        abort();
    s6.sin6_family = AF_INET6;
    return pol_access_allows(a, (struct sockaddr *)&s6);
}

static void test_cidr_edges(void)
{
    struct pol_access *a = acc("{\"allow\": [\"0.0.0.0/0\"]}");
    ok(a && allows(a, "1.2.3.4") && allows(a, "255.255.255.255") && allows(a, "0.0.0.0"), "/0 allows every IPv4");
    ok(a && !allows(a, "2001:db8::1"), "IPv4 /0 does not cover native IPv6");
    ok(a && allows(a, "::ffff:8.8.8.8"), "IPv4 /0 covers IPv4-mapped IPv6");

    a = acc("{\"allow\": [\"10.1.2.3/32\"]}");
    ok(a && allows(a, "10.1.2.3") && !allows(a, "10.1.2.4") && !allows(a, "10.1.2.2"), "/32 is one address");
    a = acc("{\"allow\": [\"10.1.2.3\"]}");
    ok(a && allows(a, "10.1.2.3") && !allows(a, "10.1.2.4"), "a bare IPv4 address is /32");

    a = acc("{\"allow\": [\"2001:db8::7/128\"]}");
    ok(a && allows(a, "2001:db8::7") && !allows(a, "2001:db8::6") && !allows(a, "2001:db8::8"), "/128 is one address");
    a = acc("{\"allow\": [\"::/0\"]}");
    ok(a && allows(a, "::") && allows(a, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") && allows(a, "9.9.9.9"),
       "::/0 allows everything, IPv4 too");

    a = acc("{\"allow\": [\"::ffff:192.168.0.0/112\"]}");
    ok(a && allows(a, "192.168.7.7") && !allows(a, "192.169.0.1"), "a mapped-IPv6 rule meets IPv4 peers");
    a = acc("{\"allow\": [\"192.168.0.0/16\"]}");
    ok(a && allows(a, "::ffff:192.168.1.1") && !allows(a, "::ffff:192.169.1.1"), "a mapped-IPv6 peer meets IPv4 rules");
    ok(a && !allows(a, "::192.168.1.1"), "an IPv4-compatible (not mapped) address is IPv6");

    a = acc("{\"allow\": [\"2001:db8::/33\"]}");
    ok(a && allows(a, "2001:db8:7fff::1") && !allows(a, "2001:db8:8000::1"), "a prefix that ends mid-word");
    a = acc("{\"allow\": [\"::/64\"], \"deny\": [\"::1/128\"]}");
    ok(a && allows(a, "::2") && !allows(a, "::1") && !allows(a, "0:0:0:1::"), "/64 boundary, deny inside it");
}

static void test_overlaps(void)
{
    struct pol_access *a = acc("{\"allow\": [\"10.0.0.0/8\", \"10.1.0.0/16\", \"10.0.0.0/24\", \"11.0.0.0/8\","
                               " \"12.0.0.0/8\", \"9.255.255.255/32\"],"
                               " \"deny\": [\"10.1.2.0/24\", \"10.1.0.0/16\", \"10.1.2.3/32\"]}");
    ok(a != NULL, "overlapping lists parse");
    ok(a && a->allow.n == 1, "touching and nested allow ranges merge into one (%zu)", a ? a->allow.n : 0);
    ok(a && a->deny.n == 1, "nested deny ranges merge into one");
    ok(a && allows(a, "9.255.255.255") && allows(a, "12.255.255.255") && allows(a, "10.2.0.1"), "merged range ends");
    ok(a && !allows(a, "13.0.0.0") && !allows(a, "9.255.255.254"), "outside the merged range");
    ok(a && !allows(a, "10.1.0.0") && !allows(a, "10.1.255.255") && !allows(a, "10.1.2.3"), "deny wins");
    a = acc("{\"deny\": [\"10.0.0.0/8\"]}");
    ok(a && allows(a, "11.0.0.1") && !allows(a, "10.9.9.9"), "a deny list alone lets others in");
    a = acc("{\"allow\": []}");
    ok(a && !allows(a, "127.0.0.1"), "an empty allow list lets nobody in");
    a = acc("{\"allow\": [\"255.255.255.255/32\", \"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128\", \"::/128\"]}");
    ok(a && allows(a, "255.255.255.255") && allows(a, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") && allows(a, "::") &&
       !allows(a, "::1"), "the first and last addresses of the space");
    /* many rules: lookups stay binary searches over merged ranges */
    char big[200000];
    size_t n = (size_t)snprintf(big, sizeof(big), "{\"allow\": [");
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"10.%d.%d.0/24\"", i ? "," : "", i / 256 * 2 % 256, i % 256);
    snprintf(big + n, sizeof(big) - n, "]}");
    a = acc(big);
    ok(a && allows(a, "10.0.5.1") && allows(a, "10.2.1.9") && !allows(a, "10.1.0.1"), "5000 rules");
}

static void test_bad_cidrs(void)
{
    struct cfg_ctx cx = ctx();
    cJSON *v = cJSON_Parse("{\"allow\": [\"10.0.0.0/8\", \"10.0.0.1/8\", \"x\", \"1.2.3.4/33\", \"::/129\","
                           " \"1.2.3.4/\", \"1.2.3.4/08\", 7, \"1.2.3.4/-1\", \"1.2.3.4 /8\", \"\"],"
                           " \"deny\": [\"fe80::1%eth0/128\"], \"other\": 1}");
    pol_access_parse(&cx, v, JP_K(JP_I(JP_K(NULL, "routes"), 3), "access"));
    cJSON_Delete(v);
    ok(has_error("/routes/3/access/allow/1", "bits set"), "host bits set: named by its path");
    ok(has_error("/routes/3/access/allow/2", "not an address"), "not an address");
    ok(has_error("/routes/3/access/allow/3", "0 to 32"), "IPv4 prefix over 32");
    ok(has_error("/routes/3/access/allow/4", "0 to 128"), "IPv6 prefix over 128");
    ok(has_error("/routes/3/access/allow/5", "prefix length"), "empty prefix length");
    ok(has_error("/routes/3/access/allow/6", "prefix length"), "leading zero in a prefix length");
    ok(has_error("/routes/3/access/allow/7", "must be a string"), "a number");
    ok(has_error("/routes/3/access/allow/8", "prefix length"), "negative prefix");
    ok(has_error("/routes/3/access/allow/9", "not an address"), "space inside");
    ok(has_error("/routes/3/access/allow/10", "not an address"), "empty string");
    ok(has_error("/routes/3/access/deny/0", "not an address"), "zone ids are not addresses");
    ok(has_error("/routes/3/access/other", "unknown"), "unknown field");
    ok(!has_error("/routes/3/access/allow/0", NULL), "the good entry has no error");
}

static void test_apikey(void)
{
    char path[200];
    tmp_template(path, sizeof path, "sluice-policy-test-keys");
    int fd = mkstemp(path);
    unsigned char d1[32], d2[32];
    SHA256((const unsigned char *)"k1", 2, d1);
    SHA256((const unsigned char *)"k2", 2, d2);
    char h1[65], h2[65], text[512];
    for (int i = 0; i < 32; i++) {
        sprintf(h1 + 2 * i, "%02x", d1[i]);
        sprintf(h2 + 2 * i, "%02X", d2[i]);
    }
    int n = snprintf(text, sizeof(text), "[{\"id\": \"team-a\", \"sha256\": \"%s\"}, {\"id\": \"team-b\", \"sha256\": \"%s\"}]", h1, h2);
    if (write(fd, text, (size_t)n) != n)
        abort();
    close(fd);
    char conf[256];
    snprintf(conf, sizeof(conf), "{\"keys_file\": \"%s\"}", path);
    struct cfg_ctx cx = ctx();
    struct pol_auth au = { 0 };
    cJSON *v = cJSON_Parse(conf);
    au.api_key = pol_apikey_parse(&cx, v, JP_K(NULL, "api_key"), &au);
    au.kind = POL_AUTH_API_KEY;
    cJSON_Delete(v);
    ok(g_errs.n == 0, "keys file parses (upper- and lower-case hex)");
    ok(au.cred_header && strcmp(au.cred_header, "authorization") == 0, "default header");
    ok(au.api_key && strcmp(au.api_key->prefix, "Bearer ") == 0, "default prefix for authorization");

    struct pol_txn t = { .pw = g_pw };
    struct h1_header h = { "Authorization", "Bearer k2", 13, 9 };
    struct pol_req r = { .headers = &h, .nheaders = 1 };
    ok(pol_apikey_check(&au, &t, &r) == POL_ALLOW && t.has_auth_id && t.auth_id_len == 6 &&
       memcmp(t.auth_id, "team-b", 6) == 0, "a known key: its id");
    memset(&t, 0, sizeof(t));
    t.pw = g_pw;
    h.value = "bEARER   k2";
    h.value_len = 11;
    ok(pol_apikey_check(&au, &t, &r) == POL_ALLOW, "the scheme in any case, more than one space after it");
    memset(&t, 0, sizeof(t));
    t.pw = g_pw;
    struct h1_header two[2] = { { "Authorization", "Bearer k2", 13, 9 }, { "authorization", "Bearer x", 13, 8 } };
    struct pol_req rtwo = { .headers = two, .nheaders = 2 };
    ok(pol_apikey_check(&au, &t, &rtwo) == POL_DENY && t.status == 401, "a credential header sent twice: 401");
    memset(&t, 0, sizeof(t));
    t.pw = g_pw;
    h.value = "Bearer k3";
    h.value_len = 9;
    ok(pol_apikey_check(&au, &t, &r) == POL_DENY && t.status == 401 && strstr(t.challenge, "Bearer"),
       "an unknown key: 401 with a Bearer challenge");
    memset(&t, 0, sizeof(t));
    t.pw = g_pw;
    h.value = "k1";
    h.value_len = 2;
    ok(pol_apikey_check(&au, &t, &r) == POL_DENY, "no prefix");
    memset(&t, 0, sizeof(t));
    t.pw = g_pw;
    r.nheaders = 0;
    ok(pol_apikey_check(&au, &t, &r) == POL_DENY && t.status == 401, "no header");

    /* the header option: no default prefix, stored lower-case */
    snprintf(conf, sizeof(conf), "{\"keys_file\": \"%s\", \"header\": \"X-Api-Key\"}", path);
    cx = ctx();
    v = cJSON_Parse(conf);
    struct pol_auth au2 = { 0 };
    au2.api_key = pol_apikey_parse(&cx, v, JP_K(NULL, "api_key"), &au2);
    cJSON_Delete(v);
    ok(g_errs.n == 0 && strcmp(au2.cred_header, "x-api-key") == 0 && au2.api_key->prefix_len == 0,
       "another header: lower-cased, no prefix");
    struct h1_header h2h = { "x-API-key", "k1", 9, 2 };
    struct pol_req r2 = { .headers = &h2h, .nheaders = 1 };
    memset(&t, 0, sizeof(t));
    t.pw = g_pw;
    ok(pol_apikey_check(&au2, &t, &r2) == POL_ALLOW && memcmp(t.auth_id, "team-a", 6) == 0,
       "header names match in any case");
    unlink(path);

    /* many keys spread over buckets: every one is found */
    char big[200];
    tmp_template(big, sizeof big, "sluice-policy-test-keys");
    fd = mkstemp(big);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "[");
    for (int i = 0; i < 3000; i++) {
        char k[32];
        unsigned char d[32];
        snprintf(k, sizeof(k), "key-%d", i);
        SHA256((const unsigned char *)k, strlen(k), d);
        fprintf(f, "%s{\"id\": \"id-%d\", \"sha256\": \"", i ? "," : "", i);
        for (int j = 0; j < 32; j++)
            fprintf(f, "%02x", d[j]);
        fprintf(f, "\"}");
    }
    fprintf(f, "]");
    fclose(f);
    snprintf(conf, sizeof(conf), "{\"keys_file\": \"%s\"}", big);
    cx = ctx();
    v = cJSON_Parse(conf);
    struct pol_auth au3 = { 0 };
    au3.api_key = pol_apikey_parse(&cx, v, JP_K(NULL, "api_key"), &au3);
    cJSON_Delete(v);
    int found = 0;
    for (int i = 0; i < 3000; i += 7) {
        char val[48], id[16];
        snprintf(val, sizeof(val), "Bearer key-%d", i);
        snprintf(id, sizeof(id), "id-%d", i);
        struct h1_header hh = { "authorization", val, 13, (uint32_t)strlen(val) };
        struct pol_req rr = { .headers = &hh, .nheaders = 1 };
        memset(&t, 0, sizeof(t));
    t.pw = g_pw;
        found += pol_apikey_check(&au3, &t, &rr) == POL_ALLOW && t.auth_id_len == strlen(id) &&
                 memcmp(t.auth_id, id, strlen(id)) == 0;
    }
    ok(g_errs.n == 0 && found == 429, "3000 keys: each found with its own id (%d)", found);
    uint32_t longest = 0;
    for (uint32_t b = 0; au3.api_key && b <= au3.api_key->mask; b++) {
        uint32_t len = 0;
        for (uint32_t j = au3.api_key->bucket[b]; j; j = au3.api_key->ents[j - 1].next)
            len++;
        if (len > longest)
            longest = len;
    }
    ok(longest <= 8, "buckets stay short (longest chain %u)", longest);
    unlink(big);
}

static void test_basic_parts(void)
{
    char out[64];
    ok(b64_decode("YWxpY2U6cHc=", 12, out, sizeof(out)) == 8 && memcmp(out, "alice:pw", 8) == 0, "base64");
    ok(b64_decode("YWxpY2U6cHc", 11, out, sizeof(out)) == -1, "base64 without padding is refused");
    ok(b64_decode("YW=pY2U6", 8, out, sizeof(out)) == -1, "padding in the middle");
    ok(b64_decode("YWxp!2U6", 8, out, sizeof(out)) == -1, "a byte outside the alphabet");
    ok(b64_decode("YWxpY2U6cHc=", 12, out, 4) == -1, "longer than the room");
    ok(hash_problem("$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234") == NULL, "bcrypt $2y$");
    ok(hash_problem("$2b$03$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234") != NULL, "bcrypt cost 3");
    ok(hash_problem("$2b$17$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234") != NULL, "bcrypt cost 17");
    ok(hash_problem("$2y$10$short") != NULL, "bcrypt too short");
    ok(hash_problem("$apr1$x$y") != NULL && hash_problem("{SHA}x") != NULL && hash_problem("plain") != NULL,
       "other schemes refused");
    char h6[200];
    snprintf(h6, sizeof(h6), "$6$saltsalt$%086d", 0);
    ok(hash_problem(h6) == NULL, "SHA-512-crypt");
    snprintf(h6, sizeof(h6), "$6$rounds=5000$saltsalt$%086d", 0);
    ok(hash_problem(h6) == NULL, "SHA-512-crypt with rounds");
    snprintf(h6, sizeof(h6), "$6$rounds=99999999$saltsalt$%086d", 0);
    ok(hash_problem(h6) != NULL, "SHA-512-crypt with too many rounds");
}

/* An unknown user is hashed against an entry of the file's most common
 * setting (algorithm and cost), so its 401 costs what a known user's does. */
static void test_basic_dummy(void)
{
    char text[1024], h6[200];
    const char *tail = "abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";
    snprintf(h6, sizeof(h6), "$6$rounds=5000$saltsalt$%086d", 0);
    snprintf(text, sizeof(text), "a:$2y$10$%s\nb:$2y$12$%s\nc:%s\nd:$2b$12$%s\ne:$2b$12$%s\n",
             tail, tail, h6, tail, tail);
    struct cfg_ctx cx = ctx();
    struct pol_basic b = { 0 };
    ok(load_users(&cx, JP_K(NULL, "users_file"), "u", text, &b) && g_errs.n == 0 && b.n == 5, "five users");
    ok(b.dummy && strncmp(b.dummy, "$2b$12$", 7) == 0, "the stand-in has the most common setting (%s)",
       b.dummy ? b.dummy : "none");
    snprintf(text, sizeof(text), "a:%s\nb:$2y$10$%s\nc:%s\n", h6, tail, h6);
    struct pol_basic b2 = { 0 };
    cx = ctx();
    ok(load_users(&cx, JP_K(NULL, "users_file"), "u", text, &b2) && b2.dummy && strcmp(b2.dummy, h6) == 0,
       "SHA-512-crypt with its rounds");
    snprintf(text, sizeof(text), "# nobody\n");
    struct pol_basic b3 = { 0 };
    cx = ctx();
    ok(load_users(&cx, JP_K(NULL, "users_file"), "u", text, &b3) && b3.dummy == NULL, "no users: no stand-in");
}

/* Files that are big or broken cost memory in proportion to what they
 * can hold, not to their bytes: a users file's room is bounded by the
 * shortest entry (which still loads, packed), a keys file of far more JSON
 * values than entries is refused before cJSON builds them. */
static void test_file_bounds(void)
{
    size_t nu = 2000, per = 63;     /* "x" + hex name + ':' + a 60-byte bcrypt hash + '\n' */
    char *text = malloc(nu * (per + 8) + 1), *p = text;
    for (size_t i = 0; i < nu; i++)
        p += sprintf(p, "%zx:$2y$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n", i);
    struct cfg_ctx cx = ctx();
    struct pol_basic b = { 0 };
    ok(load_users(&cx, JP_K(NULL, "users_file"), "u", text, &b) && b.n == nu,
       "packed short entries all load (%zu)", b.n);
    memset(text, '\n', nu * per);
    text[nu * per] = '\0';
    struct pol_basic b2 = { 0 };
    cx = ctx();
    ok(load_users(&cx, JP_K(NULL, "users_file"), "u", text, &b2) && b2.n == 0 && b2.mask < 4096,
       "a file of blank lines: no room for a user a line (%u buckets)", b2.mask + 1);
    free(text);

    size_t nv = 100000;
    char *zeros = malloc(2 * nv + 2);
    zeros[0] = '[';
    for (size_t i = 0; i < nv; i++) {
        zeros[1 + 2 * i] = '0';
        zeros[2 + 2 * i] = i + 1 < nv ? ',' : ']';
    }
    zeros[2 * nv + 1] = '\0';
    struct pol_apikey k = { 0 };
    cx = ctx();
    ok(!load_keys(&cx, JP_K(NULL, "keys_file"), "k", zeros, &k) && has_error("/keys_file", "not a keys file") &&
       k.ents == NULL, "a keys file of 100000 numbers is refused unparsed");
    free(zeros);
    ok(json_values_max("[{\"id\": \"a,b:{[\\\"\", \"sha256\": \"x\"}]") == 6,
       "values counted outside strings (escapes too)");
}

static int g_ndone;
static void on_done(void *owner)
{
    (void)owner;
    g_ndone++;
}

/* The verifiers' queue: FIFO behind two verifier threads; a job that
 * waited VQ_WAIT_MS is answered 503 unhashed, a cancelled one still queued
 * leaves the queue unhashed, an unknown user is hashed like a known one. */
static void test_basic_queue(void)
{
    struct event_base *base = event_base_new();
    struct pol_worker *pw = pol_worker_new(base, NULL, NULL);
    char setting[64], path[200], line[128];
    tmp_template(path, sizeof path, "sluice-policy-test-users");
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    crypt_gensalt_rn("$2b$", 12, NULL, 0, setting, sizeof(setting));
    int fd = mkstemp(path);
    int n = snprintf(line, sizeof(line), "alice:%s\n", crypt_rn("pw", setting, cd, sizeof(*cd)));
    free(cd);
    if (write(fd, line, (size_t)n) != n)
        abort();
    close(fd);
    char conf[256];
    snprintf(conf, sizeof(conf), "{\"users_file\": \"%s\"}", path);
    struct cfg_ctx cx = ctx();
    struct pol_auth au = { .kind = POL_AUTH_BASIC };
    cJSON *v = cJSON_Parse(conf);
    au.basic = pol_basic_parse(&cx, v, JP_K(NULL, "basic"), &au);
    cJSON_Delete(v);
    unlink(path);
    ok(g_errs.n == 0 && au.basic->n == 1, "users file with one cost-12 user");

    struct h1_header wrong = { "Authorization", "Basic YWxpY2U6d3Jvbmc=", 13, 22 };    /* alice:wrong */
    struct h1_header unknown = { "Authorization", "Basic Ym9iOnB3", 13, 14 };          /* bob:pw */
    struct pol_req r1 = { .headers = &wrong, .nheaders = 1 }, r2 = { .headers = &unknown, .nheaders = 1 };
    struct pol_txn t[4];
    uint64_t h0 = pol_hashes_total();
    bool pend = true;
    for (int i = 0; i < 4; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].pw = pw;
        t[i].owner = &t[i];
        t[i].done = on_done;
        pend &= pol_basic_check(&au, &t[i], i == 1 ? &r2 : &r1) == POL_PENDING;
        t[i].pending = true;
    }
    ok(pend && pw->vinflight == 4, "four jobs with the verifiers");
    /* jobs 0 and 1 are taken first (FIFO, two threads, each hash some
     * 100 ms): age job 2 where it waits, cancel job 3 */
    pthread_mutex_lock(&vq_lock);
    bool queued = false;
    for (struct vjob *q = vq_head; q; q = q->next)
        queued |= q == t[2].op;
    ((struct vjob *)t[2].op)->queued_ms -= VQ_WAIT_MS + 1000;
    pthread_mutex_unlock(&vq_lock);
    ok(queued, "the third job waits behind two hashes");
    pol_txn_end(&t[3]);
    ok(pw->vinflight == 3, "a cancelled job still queued leaves the queue");
    while (g_ndone < 3)
        event_base_loop(base, EVLOOP_ONCE);
    ok(t[0].verdict == POL_DENY && t[0].status == 401 && t[0].challenge, "known user, wrong password: 401");
    ok(t[1].verdict == POL_DENY && t[1].status == 401 && t[1].challenge, "unknown user: 401 too");
    ok(t[2].verdict == POL_DENY && t[2].status == 503 && t[2].result == POL_RES_ERROR,
       "a job that waited too long: 503 (an error)");
    ok(pol_hashes_total() - h0 == 2, "two hashes: the unknown user's counted, the late and the cancelled not (%llu)",
       (unsigned long long)(pol_hashes_total() - h0));
    ok(g_ndone == 3 && pw->vinflight == 0, "three answers, none for the cancelled job");
    pol_worker_free(pw);
    event_base_free(base);
}

/* The order: access before auth, a deny stops the sequence. */
static void test_order(void)
{
    struct pol_access *a = acc("{\"allow\": [\"10.0.0.0/8\"]}");
    struct pol_auth au = { .kind = POL_AUTH_BASIC };    /* never reached */
    struct pol_route p = { .access = a, .auth = &au };
    struct pol_txn t = { 0 };
    struct sockaddr_in s4 = { .sin_family = AF_INET };
    inet_pton(AF_INET, "127.0.0.1", &s4.sin_addr);
    struct pol_req r = { .peer = (struct sockaddr *)&s4 };
    ok(pol_run(&p, &t, &r) == POL_DENY && t.status == 403, "access denies first: 403");
    ok(t.res[POL_CHECK_ACCESS] == POL_RES_DENIED + 1 && t.res[POL_CHECK_AUTH] == 0, "auth never ran");
    struct pol_route p2 = { .access = a };
    memset(&t, 0, sizeof(t));
    t.pw = g_pw;
    inet_pton(AF_INET, "10.1.1.1", &s4.sin_addr);
    ok(pol_run(&p2, &t, &r) == POL_ALLOW && t.res[POL_CHECK_ACCESS] == POL_RES_ALLOWED + 1, "allowed: counted");
}

static void test_auth_id(void)
{
    struct pol_txn t = { 0 };
    char longid[300];
    memset(longid, 'x', sizeof(longid));
    pol_txn_set_auth_id(&t, "a b\r\n\"c\\", 9);
    ok(t.auth_id_len == 9 && memcmp(t.auth_id, "a_b___c_", 8) == 0, "unsafe bytes become _");
    pol_txn_set_auth_id(&t, longid, sizeof(longid));
    ok(t.auth_id_len == POL_AUTH_ID_MAX, "cut at %d bytes", POL_AUTH_ID_MAX);
}

int main(void)
{
    g_pw = pol_worker_new(NULL, NULL, NULL);
    test_cidr_edges();
    test_overlaps();
    test_bad_cidrs();
    test_apikey();
    test_basic_parts();
    test_basic_dummy();
    test_file_bounds();
    test_basic_queue();
    test_order();
    test_auth_id();
    pol_worker_free(g_pw);
    cm_free_all(g_mem);
    cfg_errors_clear(&g_errs);
    return tap_done();
}
