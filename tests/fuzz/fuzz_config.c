/* fuzz_config.c - libFuzzer target for cfg_parse, the one parser behind
 * --config, --check, SIGHUP and PUT /config (an admin client's bytes).
 * Checks invariants, not just the absence of crashes: a document is either
 * a config with no errors or errors and no config, every error has a JSON
 * pointer path ("" or starting with '/') and a message, and parsing the same
 * bytes twice gives the same errors (no state leaks between parses).
 * And cfg_parse_update (a reload that copies unchanged routes from the
 * running config) must give exactly what cfg_parse gives: the input is
 * parsed again with its own config as the base, and so is the input with
 * one byte changed (which mostly leaves the other routes as they were),
 * with one route deleted, with two neighbouring routes swapped, and with
 * one route written twice. */
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

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void run(const char *doc, size_t len, struct cfg_errors *errs, struct sl_config **cfg)
{
    memset(errs, 0, sizeof(*errs));
    *cfg = cfg_parse(doc, len, errs);
    CHECK((*cfg == NULL) == (errs->n > 0));
    for (size_t i = 0; i < errs->n; i++) {
        CHECK(errs->v[i].path[0] == '\0' || errs->v[i].path[0] == '/');
        CHECK(errs->v[i].message[0] != '\0');
    }
}

/* cfg_parse_update(doc, base) gives want_cfg / want errors, as cfg_parse did */
static void differential(const char *doc, size_t len, const struct sl_config *base,
                         const struct sl_config *want_cfg, const struct cfg_errors *want)
{
    struct cfg_errors e = { 0 };
    struct sl_config *u = cfg_parse_update(doc, len, &e, base);
    char why[64];

    CHECK((u == NULL) == (want_cfg == NULL));
    CHECK(e.n == want->n);
    for (size_t i = 0; i < e.n; i++)
        CHECK(strcmp(e.v[i].path, want->v[i].path) == 0 &&
              strcmp(e.v[i].message, want->v[i].message) == 0);
    if (u) {
        CHECK(cfg_routes_equal(u, want_cfg, why, sizeof(why)));
        /* and a reload based on u, which shares u's route structs (the
         * moved ones too, copies in u's own arena), outliving u */
        struct cfg_errors e2 = { 0 };
        struct sl_config *u2 = cfg_parse_update(doc, len, &e2, u);
        cfg_free(u);
        CHECK(u2 != NULL && e2.n == 0);
        CHECK(cfg_routes_equal(u2, want_cfg, why, sizeof(why)));
        cfg_free(u2);
        cfg_errors_clear(&e2);
    }
    cfg_errors_clear(&e);
}

static void check_update(const unsigned char *data, size_t size, const struct sl_config *base)
{
    struct cfg_errors e = { 0 };
    struct sl_config *full;
    unsigned char *m;
    size_t at;

    /* the same text: every route copied */
    differential((const char *)data, size, base, base, &e);
    /* one byte changed, where the input says (its last bytes pick it) */
    if (size < 4)
        return;
    at = ((size_t)data[size - 1] << 8 | data[size - 2]) % size;
    m = malloc(size);
    memcpy(m, data, size);
    m[at] ^= (unsigned char)(data[size - 3] | 1);
    full = cfg_parse((const char *)m, size, &e);
    differential((const char *)m, size, base, full, &e);
    cfg_free(full);
    cfg_errors_clear(&e);

    /* one route deleted, or two neighbours swapped: the routes after it
     * no longer sit where base had them */
    const struct cfg_shape *sh = base->shape;
    if (sh && sh->n >= 2) {
        size_t k = data[size - 4] % (sh->n - 1), n = 0;
        const struct shape_span *a = &sh->el[k], *b = &sh->el[k + 1];
        if (data[size - 4] & 0x80) {        /* swap k and k + 1 */
            memcpy(m, data, a->off);
            n = a->off;
            memcpy(m + n, data + b->off, b->len);
            n += b->len;
            memcpy(m + n, data + a->off + a->len, b->off - (a->off + a->len));
            n += b->off - (a->off + a->len);
            memcpy(m + n, data + a->off, a->len);
            n += a->len;
        } else {                            /* delete k (and the separator after it) */
            memcpy(m, data, a->off);
            n = a->off;
        }
        memcpy(m + n, data + b->off + ((data[size - 4] & 0x80) ? b->len : 0),
               size - b->off - ((data[size - 4] & 0x80) ? b->len : 0));
        n += size - b->off - ((data[size - 4] & 0x80) ? b->len : 0);
        full = cfg_parse((const char *)m, n, &e);
        differential((const char *)m, n, base, full, &e);
        cfg_free(full);
        cfg_errors_clear(&e);

        /* and route k + 1 written twice (an insertion before a copy) */
        unsigned char *m2 = malloc(size + b->len + 1);
        n = b->off;
        memcpy(m2, data, n);
        memcpy(m2 + n, data + b->off, b->len);
        n += b->len;
        m2[n++] = ',';
        memcpy(m2 + n, data + b->off, size - b->off);
        n += size - b->off;
        full = cfg_parse((const char *)m2, n, &e);
        differential((const char *)m2, n, base, full, &e);
        cfg_free(full);
        cfg_errors_clear(&e);
        free(m2);
    }
    free(m);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct cfg_errors e1, e2;
    struct sl_config *c1, *c2;

    run((const char *)data, size, &e1, &c1);
    run((const char *)data, size, &e2, &c2);
    CHECK(e1.n == e2.n);
    for (size_t i = 0; i < e1.n; i++)
        CHECK(strcmp(e1.v[i].path, e2.v[i].path) == 0 && strcmp(e1.v[i].message, e2.v[i].message) == 0);
    if (c1) {
        CHECK(c1->nroutes == c2->nroutes && c1->nupstreams == c2->nupstreams &&
              c1->nlisteners == c2->nlisteners);
        check_update(data, size, c1);
        cfg_free(c1);
        cfg_free(c2);
    }
    cfg_errors_clear(&e1);
    cfg_errors_clear(&e2);
    return 0;
}
