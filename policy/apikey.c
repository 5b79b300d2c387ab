/* apikey.c - auth.api_key (not built yet: refused). */
#include "pol_int.h"

struct pol_apikey *pol_apikey_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                    struct pol_auth *au)
{
    (void)v;
    (void)au;
    cfg_unsupported(cx, path);
    return NULL;
}

enum pol_verdict pol_apikey_check(const struct pol_auth *au, struct pol_txn *t,
                                  const struct pol_req *r)
{
    (void)au;
    (void)r;
    return pol_txn_deny(t, 401, "WWW-Authenticate: Bearer\r\n");
}
