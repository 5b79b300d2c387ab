/*
 * apikey.c - auth.api_key: a key in a request header, known by its SHA-256.
 *
 * The keys file is a JSON array of { "id": "team-a", "sha256": "<hex>" }:
 * keys are never stored in clear.  It is read when the config is parsed,
 * so a reload (SIGHUP, PUT /config) swaps the whole set at once.  A
 * request's key is hashed once; the digest's first bytes pick a bucket
 * (a digest is uniform: no hash of our own to flood), and each entry
 * there is compared in constant time (CRYPTO_memcmp), the whole chain
 * walked, so neither a key's bytes nor its position leak through timing.
 */
#include "pol_int.h"
#include "../core/hdr.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#define KEYS_FILE_MAX (16u * 1024 * 1024)    /* some 180000 keys */
/* JSON values per byte a keys file may hold: an entry is three values in
 * some 90 bytes; a file of "[0,0,0,...]" would be one every 2 bytes, and
 * each costs cJSON 64 bytes while it is parsed. */
#define KEYS_BYTES_PER_VALUE 16
#define KEY_MAX 4096            /* a longer credential is not a key of ours */

struct key_ent {
    unsigned char digest[32];
    const char *id;
    uint32_t id_len;
    uint32_t next;              /* index + 1 of the next entry in its bucket; 0 = end */
};

struct pol_apikey {
    char *prefix;
    uint32_t prefix_len;
    struct key_ent *ents;
    size_t n;
    uint32_t *bucket;           /* index + 1 of a chain's first entry */
    uint32_t mask;
};

static uint32_t bucket_of(const unsigned char d[32], uint32_t mask)
{
    uint32_t b;

    memcpy(&b, d, sizeof(b));
    return b & mask;
}

/* An upper bound on the JSON values in text: every value but the first
 * follows a '[', '{', ',' or ':' outside a string. */
static size_t json_values_max(const char *text)
{
    size_t n = 1;
    bool in_str = false;

    for (const char *p = text; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = false;
        } else if (*p == '"') {
            in_str = true;
        } else {
            n += *p == '[' || *p == '{' || *p == ',' || *p == ':';
        }
    }
    return n;
}

/* The keys file's text into k; false after errors (at path). */
static bool load_keys(struct cfg_ctx *cx, const struct jp *path, const char *file,
                      const char *text, struct pol_apikey *k)
{
    size_t n, i = 0, bad = 0, len = strlen(text);
    const cJSON *it;

    if (json_values_max(text) > len / KEYS_BYTES_PER_VALUE + 16) {
        cfg_errp(cx, path, "%s: not a keys file (far more JSON values than {\"id\", \"sha256\"} entries hold)",
                 file);
        return false;
    }
    cJSON *doc = cJSON_Parse(text);
    if (!J_IS_ARRAY(doc)) {
        cfg_errp(cx, path, "%s: must be a JSON array of {\"id\", \"sha256\"}", file);
        cJSON_Delete(doc);
        return false;
    }
    n = cfg_nchildren(doc);
    k->ents = cfg_calloc(cx, n ? n : 1, sizeof(*k->ents));
    uint32_t cap = 16;
    while (cap < n * 2 && cap < (1u << 30))
        cap *= 2;
    k->bucket = cfg_calloc(cx, cap, sizeof(*k->bucket));
    k->mask = cap - 1;
    cJSON_ArrayForEach(it, doc) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(it, "sha256");
        struct key_ent *e = &k->ents[i];
        if (!J_IS_OBJECT(it) || cfg_nchildren(it) != 2 || !J_IS_STRING(id) || !id->valuestring[0] ||
            !J_IS_STRING(h)) {
            if (bad++ < 5)
                cfg_errp(cx, path, "%s: entry %zu must be {\"id\": \"...\", \"sha256\": \"<64 hex digits>\"}",
                         file, i);
            i++;
            continue;
        }
        if (strlen(h->valuestring) != 64 || pol_unhex(h->valuestring, 64, e->digest) != 0) {
            if (bad++ < 5)
                cfg_errp(cx, path, "%s: entry %zu (\"%s\"): sha256 must be 64 hex digits", file, i,
                         id->valuestring);
            i++;
            continue;
        }
        e->id_len = (uint32_t)strlen(id->valuestring);
        if (e->id_len > POL_AUTH_ID_MAX) {
            if (bad++ < 5)
                cfg_errp(cx, path, "%s: entry %zu: id longer than %d bytes", file, i, POL_AUTH_ID_MAX);
            i++;
            continue;
        }
        e->id = cfg_strdup(cx, id->valuestring);
        uint32_t b = bucket_of(e->digest, k->mask);
        for (uint32_t j = k->bucket[b]; j; j = k->ents[j - 1].next)
            if (memcmp(k->ents[j - 1].digest, e->digest, 32) == 0) {
                if (bad++ < 5)
                    cfg_errp(cx, path, "%s: entry %zu: the same key as \"%s\"", file, i,
                             k->ents[j - 1].id);
                break;
            }
        e->next = k->bucket[b];
        k->bucket[b] = (uint32_t)i + 1;
        i++;
    }
    k->n = n;
    cJSON_Delete(doc);
    return bad == 0;
}

struct pol_apikey *pol_apikey_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                    struct pol_auth *au)
{
    static const char *const keys[] = { "header", "prefix", "keys_file", NULL };
    const cJSON *f[3];
    const char *header = "authorization", *prefix = NULL, *file = NULL;
    struct pol_apikey *k;

    if (!cfg_check_object(cx, v, path, keys, NULL, f))
        return NULL;
    k = cfg_calloc(cx, 1, sizeof(*k));
    if (cfg_get_name(cx, f[0], path, "header", false, &header) == CFG_OK) {
        bool tok = true;
        for (const char *p = header; *p; p++)
            tok &= *p > 0x20 && *p < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", *p);
        if (!tok)
            cfg_errp(cx, JP_K(path, "header"), "must be a header name (an HTTP token)");
        else if (hdr_class(header, strlen(header)) != HDR_OTHER)
            cfg_errp(cx, JP_K(path, "header"), "\"%s\" is a header sluice manages itself", header);
    }
    char *h = cfg_strdup(cx, header);
    for (char *p = h; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p | 0x20);
    au->cred_header = h;
    au->cred_header_len = (uint32_t)strlen(h);
    if (cfg_get_str(cx, f[1], path, "prefix", false, &prefix) == CFG_OK && strpbrk(prefix, "\r\n"))
        cfg_errp(cx, JP_K(path, "prefix"), "must not contain CR or LF");
    if (prefix == NULL)
        prefix = strcmp(h, "authorization") == 0 ? "Bearer " : "";
    k->prefix = cfg_strdup(cx, prefix);
    k->prefix_len = (uint32_t)strlen(prefix);
    if (cfg_get_name(cx, f[2], path, "keys_file", true, &file) == CFG_OK) {
        const struct jp *fp = JP_K(path, "keys_file");
        size_t len;
        char *text = pol_read_file(cx, fp, file, KEYS_FILE_MAX, &len);
        if (text) {
            load_keys(cx, fp, file, text, k);
            free(text);
        }
    }
    return k;
}

enum pol_verdict pol_apikey_check(const struct pol_auth *au, struct pol_txn *t,
                                  const struct pol_req *r)
{
    static const char challenge[] = "WWW-Authenticate: Bearer\r\n";
    const struct pol_apikey *k = au->api_key;
    const struct h1_header *h = pol_header_sole(r, au->cred_header, au->cred_header_len);
    unsigned char d[32];
    const struct key_ent *found = NULL;

    if (h == NULL || !pol_prefix_ieq(h->value, h->value_len, k->prefix, k->prefix_len))
        return pol_txn_deny(t, 401, challenge);
    const char *key = h->value + k->prefix_len;
    size_t n = h->value_len - k->prefix_len;
    /* a scheme's separator is 1*SP (RFC 9110 11.4): "Bearer  k" is "k" */
    while (k->prefix_len && k->prefix[k->prefix_len - 1] == ' ' && n && *key == ' ') {
        key++;
        n--;
    }
    if (n == 0 || n > KEY_MAX)
        return pol_txn_deny(t, 401, challenge);
    pol_sha256(t->pw, key, n, d);
    for (uint32_t j = k->bucket[bucket_of(d, k->mask)]; j; j = k->ents[j - 1].next)
        if (CRYPTO_memcmp(k->ents[j - 1].digest, d, 32) == 0)
            found = &k->ents[j - 1];
    if (found == NULL)
        return pol_txn_deny(t, 401, challenge);
    pol_txn_set_auth_id(t, found->id, found->id_len);
    return POL_ALLOW;
}
