/*
 * kconf.c - (k8s) kubeconfig and in-cluster configuration (see kconf.h).
 */
#include "kconf.h"
#include "yaml_read.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define MAX_FILE (16u << 20)

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot be read", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
        if (cap - n - 1 == 0) {
            if (cap >= MAX_FILE) {
                free(b);
                b = NULL;
                break;
            }
            char *nb = realloc(b, cap * 2);
            if (nb == NULL) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (b == NULL || bad) {
        free(b);
        snprintf(err, errlen, "%s: cannot be read (or larger than 16 MiB)", path);
        return NULL;
    }
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

/* base64 (whitespace allowed) to a malloc'd, NUL-terminated buffer. */
static char *b64(const char *in, size_t *len)
{
    size_t n = strlen(in), m = 0;
    char *clean = malloc(n + 1);
    if (clean == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)in[i]))
            clean[m++] = in[i];
    clean[m] = '\0';
    if (m == 0 || m % 4 != 0) {
        free(clean);
        return NULL;
    }
    unsigned char *out = malloc(m / 4 * 3 + 1);
    int r = out ? EVP_DecodeBlock(out, (const unsigned char *)clean, (int)m) : -1;
    if (r < 0) {
        free(clean);
        free(out);
        return NULL;
    }
    size_t pad = (clean[m - 1] == '=') + (clean[m - 2] == '=');
    free(clean);
    *len = (size_t)r - pad;
    out[*len] = '\0';
    return (char *)out;
}

/* The element of list arr whose "name" is name, then its member key. */
static const cJSON *named(const cJSON *arr, const char *name, const char *key)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return cJSON_GetObjectItemCaseSensitive(e, key);
    }
    return NULL;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* PEM from KEY-data (base64) or KEY (a file name). 0, 1 absent, -1 error. */
static int pem_field(const cJSON *o, const char *key, char **out, size_t *len, char *err, size_t errlen)
{
    char dk[64];
    snprintf(dk, sizeof dk, "%s-data", key);
    const char *d = str(o, dk), *f = str(o, key);
    if (d) {
        *out = b64(d, len);
        if (*out == NULL) {
            snprintf(err, errlen, "kubeconfig: %s is not base64", dk);
            return -1;
        }
        return 0;
    }
    if (f) {
        *out = read_file(f, len, err, errlen);
        return *out ? 0 : -1;
    }
    return 1;
}

static int set_server(struct k8s_conf *c, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "server %s: only https:// API servers are supported", url);
        return -1;
    }
    const char *h = url + 8, *end = h + strcspn(h, "/");
    const char *colon;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (rb == NULL) {
            snprintf(err, errlen, "server %s: bad address", url);
            return -1;
        }
        c->host = strndup(h + 1, (size_t)(rb - h - 1));
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        c->host = strndup(h, (size_t)((colon ? colon : end) - h));
    }
    c->port = colon ? strndup(colon + 1, (size_t)(end - colon - 1)) : strdup("443");
    if (!c->host || !c->port || !*c->host || !*c->port || (*end && strcmp(end, "/") != 0)) {
        snprintf(err, errlen, "server %s: expected https://HOST[:PORT] (a path prefix is not supported)", url);
        return -1;
    }
    return 0;
}

int k8s_conf_kubeconfig(struct k8s_conf *c, const char *path, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    size_t len;
    char *text = read_file(path, &len, err, errlen);
    if (text == NULL)
        return -1;
    struct k8s_read_err re;
    cJSON *docs = k8s_text_parse(text, len, &re);
    free(text);
    if (docs == NULL) {
        snprintf(err, errlen, "%s:%lu:%lu: %s", path, re.line, re.column, re.msg);
        return -1;
    }
    cJSON *kc = cJSON_IsArray(docs) ? cJSON_GetArrayItem(docs, 0) : docs;
    int rc = -1;
    const char *ctx_name = str(kc, "current-context");
    const cJSON *ctx = ctx_name ? named(cJSON_GetObjectItemCaseSensitive(kc, "contexts"), ctx_name, "context")
                                : NULL;
    const char *cl_name = str(ctx, "cluster"), *us_name = str(ctx, "user");
    const cJSON *cl = cl_name ? named(cJSON_GetObjectItemCaseSensitive(kc, "clusters"), cl_name, "cluster")
                              : NULL;
    const cJSON *us = us_name ? named(cJSON_GetObjectItemCaseSensitive(kc, "users"), us_name, "user") : NULL;
    if (ctx == NULL || cl == NULL) {
        snprintf(err, errlen, "%s: no current-context with a cluster", path);
        goto out;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cl, "insecure-skip-tls-verify"))) {
        snprintf(err, errlen, "%s: insecure-skip-tls-verify is refused: the API server's certificate is "
                 "always verified", path);
        goto out;
    }
    const char *server = str(cl, "server");
    if (server == NULL) {
        snprintf(err, errlen, "%s: the cluster has no server", path);
        goto out;
    }
    if (set_server(c, server, err, errlen) != 0)
        goto out;
    int r = pem_field(cl, "certificate-authority", &c->ca, &c->ca_len, err, errlen);
    if (r < 0)
        goto out;
    if (r > 0) {
        snprintf(err, errlen, "%s: the cluster has no certificate-authority(-data) (the system roots are "
                 "not used)", path);
        goto out;
    }
    if (us) {
        if (cJSON_GetObjectItemCaseSensitive(us, "exec") || cJSON_GetObjectItemCaseSensitive(us, "auth-provider")) {
            snprintf(err, errlen, "%s: user exec and auth-provider plugins are not supported; use a token "
                     "or a client certificate", path);
            goto out;
        }
        const char *tok = str(us, "token"), *tf = str(us, "tokenFile");
        if (tok)
            c->token = strdup(tok);
        else if (tf)
            c->token_file = strdup(tf);
        if ((r = pem_field(us, "client-certificate", &c->cert, &c->cert_len, err, errlen)) < 0)
            goto out;
        if ((r = pem_field(us, "client-key", &c->key, &c->key_len, err, errlen)) < 0)
            goto out;
        if ((c->cert == NULL) != (c->key == NULL)) {
            snprintf(err, errlen, "%s: a client certificate needs its key, and a key its certificate", path);
            goto out;
        }
    }
    rc = 0;
out:
    cJSON_Delete(docs);
    return rc;
}

int k8s_conf_in_cluster(struct k8s_conf *c, const char *dir, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
    if (!h || !p || !*h || !*p) {
        snprintf(err, errlen, "--in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set "
                 "(not running in a pod?)");
        return -1;
    }
    c->host = strdup(h);
    c->port = strdup(p);
    char path[4096];
    snprintf(path, sizeof path, "%s/ca.crt", dir);
    c->ca = read_file(path, &c->ca_len, err, errlen);
    if (c->ca == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/token", dir);
    c->token_file = strdup(path);
    char *t = k8s_conf_token(c);
    if (t == NULL) {
        snprintf(err, errlen, "%s: cannot be read", path);
        return -1;
    }
    free(t);
    return 0;
}

char *k8s_conf_token(const struct k8s_conf *c)
{
    if (c->token)
        return strdup(c->token);
    if (c->token_file == NULL)
        return NULL;
    char err[64];
    size_t n;
    char *t = read_file(c->token_file, &n, err, sizeof err);
    while (t && n > 0 && isspace((unsigned char)t[n - 1]))
        t[--n] = '\0';
    return t;
}

void k8s_conf_free(struct k8s_conf *c)
{
    free(c->host);
    free(c->port);
    free(c->ca);
    free(c->token);
    free(c->token_file);
    free(c->cert);
    free(c->key);
    memset(c, 0, sizeof(*c));
}
