/* fuzz_jwt.c - libFuzzer target for auth.jwt's token check (policy/jwt.c),
 * whose input is a client's bytes.  Each input is used twice:
 *   - as a token, against a conf with an ES256, an EdDSA and an HS256 key
 *     (the HS256 secret is fixed here, so the corpus in
 *     tests/fuzz/corpus/jwt can hold good tokens whose mutations reach the
 *     signature check); a token found good must give a sane identity;
 *   - as the text of a claims object, through the same decoding and
 *     checks a verified token's claims get (behind the signature nothing
 *     else reaches them).
 * Invariants: a good result has a sub of 1 to JWT_AUTH_ID_MAX bytes with
 * no control byte, header lines each "name: value\r\n" with no other CR,
 * LF or NUL, and the same input gives the same answer twice. */
#include "../../policy/b64url.c"
#include "../../policy/jwks.c"
#include "../../policy/jwt.c"
#include "../../policy/jwt_conf.c"
#include "../../policy/pfile.c"
#include "../../core/arena.c"
#include "../../core/cfgerr.c"
#include "../../core/cfgparse.c"
#include "../../core/hdr.c"

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define NOW 1700000000

static const char jwks_text[] =
    "{\"keys\": ["
    "{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"4bkMkonW2CRaesoALxLmoTlNLg_1Moe9vjhd6TtGlT0\","
    " \"y\": \"tggs9Mj9BfEs-1rTimYHMZPfvJbWSab_67LU1joDlhM\", \"kid\": \"ec1\", \"alg\": \"ES256\"},"
    "{\"x\": \"B7eR9n11QHaZxgESVQWFZ-637-TP4PkMRtvdsYHvcZU\", \"kty\": \"OKP\", \"crv\": \"Ed25519\", \"kid\": \"ed1\"},"
    "{\"k\": \"ZnV6ei1zZWNyZXQtZnV6ei1zZWNyZXQtZnV6ei1zZWM\", \"kty\": \"oct\", \"kid\": \"hs1\"}]}";

static struct jwt_conf *conf;

static void setup(void)
{
    struct cfg_errors errs = { 0 };
    struct cfg_ctx cx = { &errs, NULL };
    static struct jwt_conf c;
    static struct jwt_claim_hdr claims[3] = {
        { "sub", 3, "x-user", 6 }, { "email", 5, "x-email", 7 }, { "tier", 4, "x-tier", 6 } };
    static char *auds[2] = { "api", "other" };

    c.algs = JWT_RS256 | JWT_ES256 | JWT_EDDSA | JWT_HS256;
    c.keys = jwks_parse(&cx, NULL, "fuzz", jwks_text, sizeof(jwks_text) - 1, c.algs);
    CHECK(c.keys != NULL && c.keys->nkeys == 3);
    c.id = 1;
    c.issuer = "https://issuer.test";
    c.audiences = auds;
    c.naudiences = 2;
    c.clock_skew_s = 60;
    c.claims = claims;
    c.nclaims = 3;
    conf = &c;
}

static void sane(const struct jwt_id *id)
{
    CHECK(id->auth_id_len >= 1 && id->auth_id_len <= JWT_AUTH_ID_MAX);
    for (uint32_t i = 0; i < id->auth_id_len; i++)
        CHECK((unsigned char)id->auth_id[i] >= 0x20 && id->auth_id[i] != 0x7f);
    CHECK(id->hdrs_len <= JWT_HDRS_MAX);
    for (uint32_t i = 0; i < id->hdrs_len; i++) {
        char ch = id->hdrs[i];
        CHECK(ch != '\0');
        if (ch == '\r')
            CHECK(i + 1 < id->hdrs_len && id->hdrs[i + 1] == '\n');
        if (ch == '\n')
            CHECK(i > 0 && id->hdrs[i - 1] == '\r');
    }
    CHECK(id->hdrs_len == 0 || (id->hdrs[id->hdrs_len - 2] == '\r' && id->hdrs[id->hdrs_len - 1] == '\n'));
}

/* the input as a claims object: base64url it, then what jwt_verify does
 * after a good signature */
static void claims_of(const uint8_t *data, size_t size)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char enc[JWT_MAX_TOKEN + 4], buf[JWT_MAX_TOKEN];
    size_t n = 0;
    struct jwt_id id;

    if (size > JWT_MAX_TOKEN / 4 * 3 - 3)
        return;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < size ? (uint32_t)data[i + 1] << 8 : 0) |
                     (i + 2 < size ? data[i + 2] : 0);
        enc[n++] = al[v >> 18 & 63];
        enc[n++] = al[v >> 12 & 63];
        if (i + 1 < size)
            enc[n++] = al[v >> 6 & 63];
        if (i + 2 < size)
            enc[n++] = al[v & 63];
    }
    size_t back;
    CHECK(b64url_decode(enc, n, (unsigned char *)buf, sizeof(buf), &back) && back == size &&
          memcmp(buf, data, size) == 0);
    cJSON *cl = json_part(enc, n, buf, sizeof(buf));
    if (cl == NULL)
        return;
    if (check_claims(conf, cl, NOW, &id) == JWT_OK)
        sane(&id);
    cJSON_Delete(cl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jwt_id id;

    if (conf == NULL)
        setup();
    enum jwt_err e = jwt_verify(conf, (const char *)data, size, NOW, &id);
    if (e == JWT_OK)
        sane(&id);
    CHECK(jwt_verify(conf, (const char *)data, size, NOW, &id) == e);
    claims_of(data, size);
    return 0;
}
