/* basic.c - auth.basic (not built yet: refused). */
#include "pol_int.h"

struct pol_basic *pol_basic_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                  struct pol_auth *au)
{
    (void)v;
    (void)au;
    cfg_unsupported(cx, path);
    return NULL;
}

enum pol_verdict pol_basic_check(const struct pol_auth *au, struct pol_txn *t,
                                 const struct pol_req *r)
{
    (void)au;
    (void)r;
    return pol_txn_deny(t, 401, "WWW-Authenticate: Basic realm=\"sluice\"\r\n");
}

void pol_bcache_free(struct pol_bcache *bc)
{
    (void)bc;
}
