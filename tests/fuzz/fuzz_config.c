/* fuzz_config.c - libFuzzer target for cfg_parse, the one parser behind
 * --config, --check, SIGHUP and PUT /config (an admin client's bytes).
 * Checks invariants, not just the absence of crashes: a document is either
 * a config with no errors or errors and no config, every error has a JSON
 * pointer path ("" or starting with '/') and a message, and parsing the same
 * bytes twice gives the same errors (no state leaks between parses). */
#include "../../gateway/config.c"

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
        cfg_free(c1);
        cfg_free(c2);
    }
    cfg_errors_clear(&e1);
    cfg_errors_clear(&e2);
    return 0;
}
