/*
 * jwt_test.c - auth.jwt (policy/jwt.c, jwt_conf.c, jwks.c, b64url.c)
 * against tokens and key sets made by another implementation: PyJWT and
 * python3-cryptography, run by tests/jwt_vectors.py into a temporary
 * directory (fresh keys each run).  Every token of tokens.tsv must give
 * the result the script expects; every JWKS of jwks_cases.tsv must load
 * or fail with the error it names.  Then the config parser's errors, the
 * verified-token cache, and single-character changes to a good token.
 */
#include "tap.h"
#include "../../policy/b64url.c"
#include "../../policy/jwks.c"
#include "../../policy/jwt.c"
#include "../../policy/jwt_conf.c"
#include "../../core/arena.c"
#include "../../core/cfgerr.c"
#include "../../core/cfgparse.c"
#include "../../core/hdr.c"
#include "../../policy/pfile.c"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW 1700000000

static char dir[256];

/* /routes/0/auth/jwt */
#define ROUTE_JP JP_K(JP_K(JP_I(JP_K(NULL, "routes"), 0), "auth"), "jwt")

/* ---- base64url */

static void test_b64url(void)
{
    unsigned char out[16];
    size_t n = 99;

    ok(b64url_decode("", 0, out, sizeof(out), &n) && n == 0, "b64url: empty is empty");
    ok(b64url_decode("Zm9v", 4, out, sizeof(out), &n) && n == 3 && memcmp(out, "foo", 3) == 0,
       "b64url: Zm9v is foo");
    ok(b64url_decode("Zg", 2, out, sizeof(out), &n) && n == 1 && out[0] == 'f', "b64url: Zg is f");
    ok(b64url_decode("Zm8", 3, out, sizeof(out), &n) && n == 2 && memcmp(out, "fo", 2) == 0,
       "b64url: Zm8 is fo");
    ok(b64url_decode("-_8", 3, out, sizeof(out), &n) && n == 2 && out[0] == 0xfb && out[1] == 0xff,
       "b64url: - and _ are 62 and 63");
    ok(!b64url_decode("Zh", 2, out, sizeof(out), &n), "b64url: unused bits set (Zh) refused");
    ok(!b64url_decode("Zm9", 3, out, sizeof(out), &n), "b64url: unused bits set (Zm9) refused");
    ok(!b64url_decode("Zg==", 4, out, sizeof(out), &n), "b64url: padding refused");
    ok(!b64url_decode("Z", 1, out, sizeof(out), &n), "b64url: length 1 mod 4 refused");
    ok(!b64url_decode("+/8", 3, out, sizeof(out), &n), "b64url: the standard alphabet refused");
    ok(!b64url_decode("Zm 9", 4, out, sizeof(out), &n), "b64url: white space refused");
    ok(!b64url_decode("Zm9vZm9v", 8, out, 5, &n), "b64url: output larger than cap refused");
    ok(b64url_decode("Zm9vZm9v", 8, out, 6, &n) && n == 6, "b64url: output exactly cap fits");
}

/* ---- the vectors */

static char *slurp_line(FILE *f)
{
    static char line[20000];
    if (fgets(line, sizeof(line), f) == NULL)
        return NULL;
    line[strcspn(line, "\n")] = '\0';
    return line;
}

/* Splits s at tabs into at most n fields; returns how many. */
static int fields(char *s, char **out, int n)
{
    int k = 0;
    while (k < n) {
        out[k++] = s;
        s = strchr(s, '\t');
        if (s == NULL)
            break;
        *s++ = '\0';
    }
    return k;
}

static enum jwt_err err_named(const char *s)
{
    static const char *const names[] = { "OK", "TOO_LONG", "FORMAT", "ALG", "KID", "SIGNATURE",
                                         "EXPIRED", "NOT_YET", "ISSUER", "AUDIENCE", "SUBJECT" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i]) == 0)
            return (enum jwt_err)i;
    return (enum jwt_err)-1;
}

/* A conf from JSON text; NULL with its errors in errs. */
static struct jwt_conf *conf_of(const char *json, struct cfg_errors *errs)
{
    struct cfg_mem *mem = NULL;
    struct cfg_ctx cx = { errs, &mem };
    cJSON *v = cJSON_Parse(json);
    struct jwt_conf *jc;

    if (v == NULL) {
        printf("# bad test JSON: %s\n", json);
        return NULL;
    }
    jc = jwt_conf_parse(&cx, v, ROUTE_JP);
    cJSON_Delete(v);
    cm_free_all(mem);
    return jc;
}

static void print_errs(const struct cfg_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        printf("#   %s: %s\n", e->v[i].path, e->v[i].message);
}

static struct jwt_conf *main_conf(void)
{
    char json[1024];
    struct cfg_errors errs = { 0 };
    struct jwt_conf *jc;

    snprintf(json, sizeof(json),
             "{\"jwks_file\": \"%s/jwks.json\", \"issuer\": \"https://issuer.test\","
             " \"audiences\": [\"api\", \"other\"],"
             " \"algorithms\": [\"RS256\", \"ES256\", \"EdDSA\", \"HS256\"],"
             " \"clock_skew_s\": 60,"
             " \"claims_to_headers\": {\"sub\": \"X-User\", \"email\": \"x-email\", \"tier\": \"x-tier\"}}",
             dir);
    jc = conf_of(json, &errs);
    if (!ok(jc != NULL && errs.n == 0, "conf: the vectors' config parses (JWKS with 4 keys)"))
        print_errs(&errs);
    else
        ok(jc->keys->nkeys == 4 && jc->algs == 15 && jc->nclaims == 3 &&
           strcmp(jc->claims[0].header, "x-user") == 0 && jc->clock_skew_s == 60,
           "conf: 4 keys, 4 algorithms, 3 claim headers (names lower-cased)");
    cfg_errors_clear(&errs);
    return jc;
}

/* "a: b|c: d" -> "a: b\r\nc: d\r\n" */
static size_t expand_hdrs(const char *s, char *out)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s == '|') {
            out[n++] = '\r';
            out[n++] = '\n';
        } else {
            out[n++] = *s;
        }
    }
    if (n) {
        out[n++] = '\r';
        out[n++] = '\n';
    }
    out[n] = '\0';
    return n;
}

/* Token table: kept for the cache and mutation tests. */
struct tok { char name[40]; char *tok; enum jwt_err want; };
static struct tok toks[128];
static size_t ntoks;

static const char *tok_named(const char *name)
{
    for (size_t i = 0; i < ntoks; i++)
        if (strcmp(toks[i].name, name) == 0)
            return toks[i].tok;
    return "";
}

static void test_vectors(const struct jwt_conf *jc)
{
    char path[512], *f[5], *line, want_h[JWT_HDRS_MAX + 8];
    FILE *fp;
    struct jwt_id id;

    snprintf(path, sizeof(path), "%s/tokens.tsv", dir);
    fp = fopen(path, "r");
    if (!ok(fp != NULL, "vectors: tokens.tsv was written"))
        return;
    while ((line = slurp_line(fp)) != NULL && ntoks < sizeof(toks) / sizeof(toks[0])) {
        if (fields(line, f, 5) != 5) {
            ok(0, "vectors: a line of 5 fields");
            continue;
        }
        enum jwt_err want = err_named(f[1]), got;
        struct tok *t = &toks[ntoks++];
        snprintf(t->name, sizeof(t->name), "%s", f[0]);
        t->tok = strdup(f[4]);
        t->want = want;
        memset(&id, 0, sizeof(id));
        got = jwt_verify(jc, f[4], strlen(f[4]), NOW, &id);
        if (!ok(got == want, "token %s: %s", f[0], jwt_err_str(want)))
            printf("#   got %s\n", jwt_err_str(got));
        if (want != JWT_OK || got != JWT_OK)
            continue;
        ok(id.auth_id_len == strlen(f[2]) && memcmp(id.auth_id, f[2], id.auth_id_len) == 0,
           "token %s: auth id is sub (%.20s)", f[0], f[2]);
        if (strcmp(f[3], "*") != 0) {
            size_t n = expand_hdrs(f[3], want_h);
            if (!ok(id.hdrs_len == n && memcmp(id.hdrs, want_h, n) == 0,
                    "token %s: claim headers", f[0]))
                printf("#   got [%.*s]\n", (int)id.hdrs_len, id.hdrs);
        }
    }
    fclose(fp);
    ok(ntoks >= 50, "vectors: %zu tokens checked", ntoks);

    /* the exp bound the cache uses: exp + skew for a token with exp */
    const char *g = tok_named("good_ES256");
    ok(jwt_verify(jc, g, strlen(g), NOW, &id) == JWT_OK && id.until == NOW + 3600 + 60,
       "until: exp + clock_skew_s");
    g = tok_named("no_exp");
    ok(jwt_verify(jc, g, strlen(g), NOW, &id) == JWT_OK && id.until == INT64_MAX,
       "until: no exp, no bound of its own");
    g = tok_named("float_times");
    ok(jwt_verify(jc, g, strlen(g), NOW, &id) == JWT_OK && id.until == NOW + 61,
       "until: a fractional exp rounds up (now < until iff now < exp + skew)");
    ok(jwt_verify(jc, g, strlen(g), NOW + 60, &id) == JWT_OK &&
       jwt_verify(jc, g, strlen(g), NOW + 61, &id) == JWT_E_EXPIRED,
       "float exp: valid at exp + skew - 0.5, expired at exp + skew + 0.5");
}

/* algorithms not listed: a conf with ES256 and EdDSA only */
static void test_not_listed(void)
{
    char json[512];
    struct cfg_errors errs = { 0 };
    struct jwt_conf *jc;
    struct jwt_id id;

    snprintf(json, sizeof(json),
             "{\"jwks_file\": \"%s/jwks_ec.json\", \"issuer\": \"https://issuer.test\","
             " \"audiences\": [\"api\"], \"algorithms\": [\"ES256\", \"EdDSA\"]}", dir);
    jc = conf_of(json, &errs);
    if (!ok(jc != NULL, "not listed: an ES256+EdDSA conf parses")) {
        print_errs(&errs);
        cfg_errors_clear(&errs);
        return;
    }
    const char *rs = tok_named("good_RS256"), *hs = tok_named("good_HS256");
    const char *es = tok_named("good_ES256"), *ed = tok_named("good_EdDSA");
    ok(jwt_verify(jc, rs, strlen(rs), NOW, &id) == JWT_E_ALG, "not listed: RS256 token refused (alg)");
    ok(jwt_verify(jc, hs, strlen(hs), NOW, &id) == JWT_E_ALG, "not listed: HS256 token refused (alg)");
    ok(jwt_verify(jc, es, strlen(es), NOW, &id) == JWT_OK, "not listed: ES256 token still good");
    ok(jwt_verify(jc, ed, strlen(ed), NOW, &id) == JWT_OK && id.hdrs_len == 0,
       "not listed: EdDSA token good, no claim headers configured");
    jwt_conf_free(jc);
    cfg_errors_clear(&errs);
}

/* ---- config errors */

static bool has_err(const struct cfg_errors *e, const char *path, const char *part)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->v[i].path, path) == 0 && strstr(e->v[i].message, part) != NULL)
            return true;
    return false;
}

static void conf_err(const char *body, const char *path, const char *part)
{
    char json[2048];
    struct cfg_errors errs = { 0 };
    struct jwt_conf *jc;

    snprintf(json, sizeof(json), "{\"jwks_file\": \"%s/jwks.json\", %s}", dir, body);
    jc = conf_of(json, &errs);
    if (!ok(jc == NULL && has_err(&errs, path, part), "conf error: %s -> %s: %s", body, path, part))
        print_errs(&errs);
    jwt_conf_free(jc);
    cfg_errors_clear(&errs);
}

#define ALL "\"algorithms\": [\"RS256\", \"ES256\", \"EdDSA\", \"HS256\"]"
#define P "/routes/0/auth/jwt"

static void test_conf_errors(void)
{
    conf_err("\"algorithms\": [\"RS256\", \"none\"]", P "/algorithms/1", "never allowed");
    conf_err("\"algorithms\": [\"RS512\"]", P "/algorithms/0", "unknown algorithm \"RS512\"");
    conf_err("\"algorithms\": [\"ES256\", \"ES256\"]", P "/algorithms/1", "listed twice");
    conf_err("\"algorithms\": [7]", P "/algorithms/0", "must be a string");
    conf_err("\"algorithms\": []", P "/algorithms", "at least one");
    conf_err("\"algorithms\": \"RS256\"", P "/algorithms", "must be an array");
    conf_err("\"issuer\": \"x\"", P "/algorithms", "is required");
    conf_err(ALL ", \"issuer\": \"\"", P "/issuer", "must not be empty");
    conf_err(ALL ", \"issuer\": 5", P "/issuer", "must be a string");
    conf_err(ALL ", \"audiences\": []", P "/audiences", "must not be empty");
    conf_err(ALL ", \"audiences\": [\"a\", \"\"]", P "/audiences/1", "non-empty string");
    conf_err(ALL ", \"clock_skew_s\": 3601", P "/clock_skew_s", "must be an integer from 0 to 3600");
    conf_err(ALL ", \"clock_skew_s\": -1", P "/clock_skew_s", "must be an integer");
    conf_err(ALL ", \"claims_to_headers\": {\"sub\": \"Content-Length\"}",
             P "/claims_to_headers/sub", "writes itself");
    conf_err(ALL ", \"claims_to_headers\": {\"sub\": \"X-Auth-Id\"}",
             P "/claims_to_headers/sub", "auth id");
    conf_err(ALL ", \"claims_to_headers\": {\"sub\": \"authorization\"}",
             P "/claims_to_headers/sub", "credential");
    conf_err(ALL ", \"claims_to_headers\": {\"sub\": \"x user\"}",
             P "/claims_to_headers/sub", "HTTP token");
    conf_err(ALL ", \"claims_to_headers\": {\"sub\": 1}", P "/claims_to_headers/sub", "HTTP token");
    conf_err(ALL ", \"claims_to_headers\": {\"sub\": \"x-a\", \"email\": \"X-A\"}",
             P "/claims_to_headers/email", "two claims");
    conf_err(ALL ", \"claims_to_headers\": {\"\": \"x-a\"}", P "/claims_to_headers/", "claim name");
    conf_err(ALL ", \"claims_to_headers\": {\"a\": \"x-a\", \"b\": \"x-b\", \"c\": \"x-c\","
                 " \"d\": \"x-d\", \"e\": \"x-e\", \"f\": \"x-f\", \"g\": \"x-g\", \"h\": \"x-h\"}",
             P "/claims_to_headers", "too many headers");
    conf_err(ALL ", \"claims_to_headers\": []", P "/claims_to_headers", "must be an object");
    conf_err(ALL ", \"forward\": 1", P "/forward", "unknown field");
    conf_err(ALL ", \"jwks_file\": \"x\"", P "/jwks_file", "duplicate key");

    struct cfg_errors errs = { 0 };
    ok(conf_of("{" ALL "}", &errs) == NULL && has_err(&errs, P "/jwks_file", "is required"),
       "conf error: jwks_file is required");
    cfg_errors_clear(&errs);
    ok(conf_of("[]", &errs) == NULL && has_err(&errs, P, "must be an object"),
       "conf error: jwt must be an object");
    cfg_errors_clear(&errs);
    /* a bad algorithm list does not also blame every key of the file */
    ok(conf_of("{\"jwks_file\": \"/nonexistent\", \"algorithms\": [\"none\"]}", &errs) == NULL &&
       errs.n == 1, "conf error: bad algorithms, the JWKS is not read (one error)");
    cfg_errors_clear(&errs);
    /* defaults */
    char json[512];
    snprintf(json, sizeof(json), "{\"jwks_file\": \"%s/jwks_ec.json\", \"algorithms\": [\"EdDSA\", \"ES256\"]}", dir);
    struct jwt_conf *jc = conf_of(json, &errs);
    ok(jc != NULL && jc->clock_skew_s == 60 && jc->issuer == NULL && jc->naudiences == 0 &&
       jc->nclaims == 0, "conf: defaults (skew 60, no issuer, no audiences, no claims)");
    /* with no audiences configured, a token carrying aud is refused (RFC 7519 4.1.3) */
    const char *es = tok_named("good_ES256");
    struct jwt_id id;
    ok(jc && jwt_verify(jc, es, strlen(es), NOW, &id) == JWT_E_AUDIENCE,
       "no audiences configured: a token with aud is refused");
    const char *noaud = tok_named("no_aud");   /* RS256: not listed here */
    ok(jc && jwt_verify(jc, noaud, strlen(noaud), NOW, &id) == JWT_E_ALG,
       "no audiences configured: (an RS256 token still needs its alg listed)");
    jwt_conf_free(jc);
    cfg_errors_clear(&errs);
}

static void test_jwks_cases(void)
{
    char path[512], *f[4], *line;
    FILE *fp;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/jwks_cases.tsv", dir);
    fp = fopen(path, "r");
    if (!ok(fp != NULL, "jwks: jwks_cases.tsv was written"))
        return;
    while ((line = slurp_line(fp)) != NULL) {
        int nf = fields(line, f, 4);
        if (nf < 3)
            continue;
        const char *expect = nf == 4 ? f[3] : "";
        char json[1024], algs[128] = "", *a = algs;
        for (char *s = strtok(f[1], ","); s; s = strtok(NULL, ","))
            a += sprintf(a, "%s\"%s\"", a == algs ? "" : ", ", s);
        snprintf(json, sizeof(json), "{\"jwks_file\": \"%s\", \"algorithms\": [%s]}", f[2], algs);
        struct cfg_errors errs = { 0 };
        struct jwt_conf *jc = conf_of(json, &errs);
        if (expect[0] == '\0')
            ok(jc != NULL && errs.n == 0, "jwks %s: loads", f[0]);
        else if (!ok(jc == NULL && has_err(&errs, P "/jwks_file", expect), "jwks %s: %s", f[0], expect))
            print_errs(&errs);
        jwt_conf_free(jc);
        cfg_errors_clear(&errs);
        n++;
    }
    fclose(fp);
    ok(n >= 15, "jwks: %zu key sets checked", n);
}

/* ---- the cache */

/* jwt_check with the digest made here, as the caller makes it */
static enum jwt_err check(struct jwt_cache *c, const struct jwt_conf *jc, const char *tok,
                          size_t len, int64_t now, const struct jwt_id **id)
{
    unsigned char d[32];
    SHA256((const unsigned char *)tok, len, d);
    return jwt_check(c, jc, tok, len, d, now, id);
}

static void test_cache(const struct jwt_conf *jc)
{
    struct jwt_cache *c = jwt_cache_new(4);        /* one set of 4 */
    const struct jwt_id *id = NULL;
    uint64_t h, m;
    const char *g = tok_named("good_ES256"), *bad = tok_named("bad_sig_es256_other_key");

    ok(check(c, jc, g, strlen(g), NOW, &id) == JWT_OK && id != NULL &&
       id->auth_id_len == 5 && memcmp(id->auth_id, "alice", 5) == 0, "cache: first check verifies");
    jwt_cache_counts(c, &h, &m);
    ok(h == 0 && m == 1, "cache: a miss");
    id = NULL;
    ok(check(c, jc, g, strlen(g), NOW + 1, &id) == JWT_OK && id != NULL &&
       id->auth_id_len == 5 && id->hdrs_len > 0, "cache: second check of the same token is good");
    jwt_cache_counts(c, &h, &m);
    ok(h == 1 && m == 1, "cache: ... and a hit (no second verification)");

    ok(check(c, jc, bad, strlen(bad), NOW, &id) == JWT_E_SIGNATURE &&
       check(c, jc, bad, strlen(bad), NOW, &id) == JWT_E_SIGNATURE,
       "cache: a bad token fails twice");
    jwt_cache_counts(c, &h, &m);
    ok(h == 1 && m == 3, "cache: a failed token is never cached");

    /* expiry: exp + skew is the end, even for a cached token */
    ok(check(c, jc, g, strlen(g), NOW + 3600 + 59, &id) == JWT_OK,
       "cache: good until exp + skew");
    ok(check(c, jc, g, strlen(g), NOW + 3600 + 60, &id) == JWT_E_EXPIRED,
       "cache: expired at exp + skew, cached or not");

    /* a token with no exp is kept JWT_CACHE_TTL_MAX at most */
    const char *ne = tok_named("no_exp");
    check(c, jc, ne, strlen(ne), NOW, &id);
    jwt_cache_counts(c, &h, &m);
    uint64_t m0 = m;
    check(c, jc, ne, strlen(ne), NOW + JWT_CACHE_TTL_MAX - 1, &id);
    jwt_cache_counts(c, &h, &m);
    ok(m == m0, "cache: a token without exp is a hit within the cap");
    ok(check(c, jc, ne, strlen(ne), NOW + JWT_CACHE_TTL_MAX, &id) == JWT_OK,
       "cache: ... and verified again after the cap");
    jwt_cache_counts(c, &h, &m);
    ok(m == m0 + 1, "cache: (that was a miss)");

    /* scoped by conf: the same token for another conf is verified for it */
    char json[512];
    struct cfg_errors errs = { 0 };
    snprintf(json, sizeof(json),
             "{\"jwks_file\": \"%s/jwks.json\", \"issuer\": \"https://other.test\","
             " \"audiences\": [\"api\"], " ALL "}", dir);
    struct jwt_conf *other = conf_of(json, &errs);
    ok(other != NULL && check(c, other, g, strlen(g), NOW, &id) == JWT_E_ISSUER,
       "cache: a token cached for one conf is checked afresh for another (wrong issuer there)");
    jwt_conf_free(other);
    cfg_errors_clear(&errs);

    /* least recently used goes: fill the 4 ways, touch the first, add a 5th */
    struct jwt_cache *l = jwt_cache_new(4);
    const char *five[5] = { tok_named("good_RS256"), tok_named("good_ES256"),
                            tok_named("good_EdDSA"), tok_named("good_HS256"),
                            tok_named("aud_array") };
    for (int i = 0; i < 4; i++)
        check(l, jc, five[i], strlen(five[i]), NOW, &id);
    check(l, jc, five[0], strlen(five[0]), NOW, &id);           /* hit: now the newest */
    check(l, jc, five[4], strlen(five[4]), NOW, &id);           /* evicts five[1] */
    jwt_cache_counts(l, &h, &m);
    ok(h == 1 && m == 5, "lru: 4 misses, a hit, a miss");
    check(l, jc, five[0], strlen(five[0]), NOW, &id);
    jwt_cache_counts(l, &h, &m);
    ok(h == 2 && m == 5, "lru: the touched entry stayed");
    check(l, jc, five[1], strlen(five[1]), NOW, &id);
    jwt_cache_counts(l, &h, &m);
    ok(h == 2 && m == 6, "lru: the least recently used entry went");

    /* the pointer handed out holds what a fresh verification gives */
    struct jwt_id fresh;
    jwt_verify(jc, five[4], strlen(five[4]), NOW, &fresh);
    ok(check(l, jc, five[4], strlen(five[4]), NOW, &id) == JWT_OK &&
       id->hdrs_len == fresh.hdrs_len && memcmp(id->hdrs, fresh.hdrs, fresh.hdrs_len) == 0 &&
       id->until == fresh.until, "cache: a hit gives the verified claims");

    /* a token longer than the limit is refused before hashing */
    char *big = malloc(JWT_MAX_TOKEN + 2);
    memset(big, 'A', JWT_MAX_TOKEN + 1);
    big[JWT_MAX_TOKEN + 1] = '\0';
    ok(check(l, jc, big, JWT_MAX_TOKEN + 1, NOW, &id) == JWT_E_TOO_LONG,
       "cache: over JWT_MAX_TOKEN bytes refused");
    free(big);
    jwt_cache_free(l);
    jwt_cache_free(c);
}

/* Every one-character change of a good token fails (the signature covers
 * header and claims; a changed signature character is either another
 * signature or a non-canonical spelling). */
static void test_mutations(const struct jwt_conf *jc)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    const char *names[] = { "good_EdDSA", "good_HS256", "good_ES256" };
    struct jwt_id id;

    for (size_t k = 0; k < 3; k++) {
        const char *g = tok_named(names[k]);
        size_t n = strlen(g), tried = 0, passed = 0;
        char *m = strdup(g);
        for (size_t i = 0; i < n; i++) {
            for (size_t a = 0; a < sizeof(alpha) - 1; a += 7) {
                if (alpha[a] == g[i])
                    continue;
                m[i] = alpha[a];
                tried++;
                passed += jwt_verify(jc, m, n, NOW, &id) == JWT_OK;
            }
            m[i] = g[i];
        }
        /* and every truncation */
        for (size_t i = 0; i < n; i++)
            passed += jwt_verify(jc, g, i, NOW, &id) == JWT_OK;
        ok(passed == 0 && tried > n, "mutations of %s: %zu changed tokens and %zu truncations, none good",
           names[k], tried, n);
        free(m);
    }
}

int main(void)
{
    char cmd[1024], src[512];
    struct jwt_conf *jc;

    test_b64url();

    /* the script sits next to this file's folder: tests/jwt_vectors.py */
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(dir, sizeof(dir), "%s/sluice-jwt-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!ok(mkdtemp(dir) != NULL, "a temporary directory"))
        return tap_done();
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/../jwt_vectors.py %s --now %d",
             dirname(src), dir, NOW);
    if (!ok(system(cmd) == 0, "tests/jwt_vectors.py wrote the vectors (needs python3-jwt, "
                              "python3-cryptography: make deps)"))
        return tap_done();

    jc = main_conf();
    if (jc != NULL) {
        test_vectors(jc);
        test_not_listed();
        test_conf_errors();
        test_jwks_cases();
        test_cache(jc);
        test_mutations(jc);
        jwt_conf_free(jc);
    }
    for (size_t i = 0; i < ntoks; i++)
        free(toks[i].tok);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return tap_done();
}
