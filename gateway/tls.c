/*
 * tls.c - OpenSSL contexts for listeners and upstreams, ticket keys, the
 * kernel TLS probe (see tls.h).  One connection's TLS (handshake steps, the
 * transports) is core/tls_io.c.
 */
#include "tls.h"
#include "../core/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are
 * OpenSSL's defaults, all of them modern). */
#define GW_TLS12_CIPHERS \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* ---- session ticket keys: process-wide, rotated ---- */

struct tkey {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

/* Three slots: the current key encrypts, the previous one still decrypts
 * (and asks for a fresh ticket), the third is the one being rewritten by a
 * rotation, which no reader uses. */
static struct tkey g_tkeys[3];
static _Atomic unsigned g_tkey_gen;
static EVP_CIPHER *g_ticket_cipher;
static int g_srv_idx = -1;              /* SSL_CTX ex_data: struct tls_srv * */
static int g_ktls_state;                /* 0 unknown, 1 available, -1 not */
static bool g_ktls_logged;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void tkey_fill(struct tkey *k)
{
    if (RAND_bytes((unsigned char *)k, sizeof(*k)) != 1)
        abort();    /* no randomness: nothing secure can be done */
}

void gw_tls_rotate_tickets(void)
{
    unsigned gen = atomic_load(&g_tkey_gen) + 1;
    tkey_fill(&g_tkeys[gen % 3]);
    atomic_store(&g_tkey_gen, gen);
}

static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
    unsigned gen = atomic_load_explicit(&g_tkey_gen, memory_order_acquire);
    const struct tkey *k = NULL;
    int rc = 1;
    OSSL_PARAM params[3];

    if (enc) {
        k = &g_tkeys[gen % 3];
        if (RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(name, k->name, 16);
        if (EVP_EncryptInit_ex(ectx, g_ticket_cipher, NULL, k->aes, iv) != 1)
            return -1;
    } else {
        if (memcmp(name, g_tkeys[gen % 3].name, 16) == 0) {
            k = &g_tkeys[gen % 3];
        } else if (gen > 0 && memcmp(name, g_tkeys[(gen - 1) % 3].name, 16) == 0) {
            k = &g_tkeys[(gen - 1) % 3];
            rc = 2;         /* valid, but issue a ticket under the current key */
        } else {
            return 0;       /* unknown or expired: full handshake */
        }
        if (EVP_DecryptInit_ex(ectx, g_ticket_cipher, NULL, k->aes, iv) != 1)
            return -1;
        /* TLS 1.3 clients should not use a ticket twice, and OpenSSL sends
         * no new ticket after a resumption unless asked to renew */
        if (SSL_version(ssl) == TLS1_3_VERSION)
            rc = 2;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    return rc;
}

/* ---- kernel TLS probe ---- */

/* The "tls" ULP can only be attached to an established TCP socket, and
 * asking for it loads the module when the kernel has one; so: connect a
 * loopback pair and try. */
static bool ktls_probe(void)
{
    int l = -1, c = -1, a = -1;
    bool ok = false;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);

    l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&sa, &sl) != 0 ||
        connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    a = accept(l, NULL, NULL);
    if (a >= 0 && setsockopt(a, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0)
        ok = true;
out:
    if (a >= 0)
        close(a);
    if (c >= 0)
        close(c);
    if (l >= 0)
        close(l);
    return ok;
}

bool gw_tls_ktls_available(void)
{
    return g_ktls_state > 0;
}

static void once_init(void)
{
    tkey_fill(&g_tkeys[0]);
    g_ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (g_ticket_cipher == NULL)
        abort();
    gw_tls_io_init();
    g_ktls_state = ktls_probe() ? 1 : -1;
}

void gw_tls_global_init(void)
{
    pthread_once(&g_once, once_init);
}

void gw_tls_global_free(void)
{
    EVP_CIPHER_free(g_ticket_cipher);
    g_ticket_cipher = NULL;
}

/* ---- server contexts ---- */

struct tls_name {
    char *name;             /* lower-case; "*.example.com" for wildcards */
    size_t ctx;             /* index into tls_srv.ctx */
};

/* Everything one TLS listener needs.  Owned by ctx[0] (ex_data), so it lives
 * as long as any connection made from it. */
struct tls_srv {
    SSL_CTX **ctx;          /* one per certificate; [0] is the default */
    size_t nctx;
    struct tls_name *names;
    size_t nnames;
};

static void srv_free(struct tls_srv *srv)
{
    if (srv == NULL)
        return;
    for (size_t i = 1; i < srv->nctx; i++)
        SSL_CTX_free(srv->ctx[i]);
    for (size_t i = 0; i < srv->nnames; i++)
        free(srv->names[i].name);
    free(srv->names);
    free(srv->ctx);
    free(srv);
}

static void srv_exfree(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    srv_free(ptr);
}

static void srv_idx_init(void)
{
    g_srv_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, srv_exfree);
}

static SSL_CTX *srv_lookup(const struct tls_srv *srv, const char *name)
{
    char lc[256];
    size_t n = strlen(name);

    if (n == 0 || n >= sizeof(lc))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lc[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    if (lc[n - 1] == '.')
        lc[--n] = '\0';     /* a fully qualified name's root dot */
    for (size_t i = 0; i < srv->nnames; i++)
        if (srv->names[i].name[0] != '*' && strcmp(srv->names[i].name, lc) == 0)
            return srv->ctx[srv->names[i].ctx];
    const char *dot = strchr(lc, '.');
    if (dot == NULL || dot == lc)
        return NULL;
    for (size_t i = 0; i < srv->nnames; i++)
        if (srv->names[i].name[0] == '*' && strcmp(srv->names[i].name + 1, dot) == 0)
            return srv->ctx[srv->names[i].ctx];
    return NULL;
}

/*
 * The certificate is chosen from the ClientHello's SNI before OpenSSL looks
 * at a session to resume (a servername callback runs after that): each
 * certificate's context has its own session id context, so a session made
 * for one certificate is never resumed under another name's (RFC 6066 3).
 */
static int hello_cb(SSL *ssl, int *al, void *arg)
{
    const struct tls_srv *srv = arg;
    const unsigned char *p;
    size_t len;
    char name[256];

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 5)
        return SSL_CLIENT_HELLO_SUCCESS;
    size_t list = ((size_t)p[0] << 8) | p[1];
    if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name)
        return SSL_CLIENT_HELLO_SUCCESS;    /* OpenSSL refuses a malformed one itself */
    size_t n = ((size_t)p[3] << 8) | p[4];
    if (n == 0 || n + 5 > len || n >= sizeof(name) || memchr(p + 5, 0, n))
        return SSL_CLIENT_HELLO_SUCCESS;
    memcpy(name, p + 5, n);
    name[n] = '\0';
    SSL_CTX *ctx = srv_lookup(srv, name);
    if (ctx != NULL && ctx != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, ctx);
    return SSL_CLIENT_HELLO_SUCCESS;    /* unknown names get the default certificate */
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;    /* no common protocol: go on without ALPN */
}

struct loaded_cert {
    X509 *x;
    EVP_PKEY *key;
    STACK_OF(X509) *chain;
};

static void loaded_free(struct loaded_cert *lc)
{
    X509_free(lc->x);
    EVP_PKEY_free(lc->key);
    sk_X509_pop_free(lc->chain, X509_free);
    memset(lc, 0, sizeof(*lc));
}

static BIO *open_bio(const char *file, const char *pem)
{
    return file ? BIO_new_file(file, "r") : BIO_new_mem_buf(pem, -1);
}

/* Load one certificate (leaf, chain, key), errors with JSON paths. */
static bool load_cert(const struct cfg_cert *ce, const char *path, struct loaded_cert *lc,
                      struct cfg_errors *errs)
{
    char p[512], why[256];
    const char *cf = ce->cert_file ? "cert_file" : "cert_pem";
    const char *kf = ce->key_file ? "key_file" : "key_pem";
    BIO *b;

    memset(lc, 0, sizeof(*lc));
    ERR_clear_error();
    snprintf(p, sizeof(p), "%.400s/%s", path, cf);
    b = open_bio(ce->cert_file, ce->cert_pem);
    if (b == NULL) {
        cfg_errors_add(errs, p, "cannot open %s: %s", ce->cert_file, strerror(errno));
        ERR_clear_error();
        return false;
    }
    lc->x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
    if (lc->x == NULL) {
        gw_tls_errors(why, sizeof(why));
        cfg_errors_add(errs, p, "no PEM certificate found (%s)", why);
        BIO_free(b);
        return false;
    }
    lc->chain = sk_X509_new_null();
    X509 *ca;
    while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        sk_X509_push(lc->chain, ca);
    ERR_clear_error();      /* the end of the file reads as an error */
    BIO_free(b);

    snprintf(p, sizeof(p), "%.400s/%s", path, kf);
    b = open_bio(ce->key_file, ce->key_pem);
    if (b == NULL) {
        cfg_errors_add(errs, p, "cannot open %s: %s", ce->key_file, strerror(errno));
        ERR_clear_error();
        loaded_free(lc);
        return false;
    }
    lc->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (lc->key == NULL) {
        gw_tls_errors(why, sizeof(why));
        cfg_errors_add(errs, p, "no usable PEM private key found (%s)", why);
        loaded_free(lc);
        return false;
    }
    if (X509_check_private_key(lc->x, lc->key) != 1) {
        ERR_clear_error();
        cfg_errors_add(errs, p, "the private key does not match the certificate (%s)", cf);
        loaded_free(lc);
        return false;
    }
    return true;
}

/* The DNS names a certificate is for: its SAN DNS entries, else its CN. */
static size_t cert_names(X509 *x, char ***out)
{
    size_t n = 0, cap = 4;
    char **v = malloc(cap * sizeof(*v));
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

    if (v == NULL)
        abort();
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || len > 253 || memchr(d, 0, (size_t)len))
            continue;
        if (n == cap && (v = realloc(v, (cap *= 2) * sizeof(*v))) == NULL)
            abort();
        v[n] = strndup((const char *)d, (size_t)len);
        for (char *c = v[n]; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c += 32;
        n++;
    }
    GENERAL_NAMES_free(sans);
    if (n == 0) {
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0) {
            v[n] = strdup(cn);
            for (char *c = v[n]; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c += 32;
            n++;
        }
    }
    *out = v;
    return n;
}

static void common_ctx_setup(SSL_CTX *ctx, int min_version)
{
    SSL_CTX_set_min_proto_version(ctx, min_version == CFG_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, GW_TLS12_CIPHERS);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
}

static SSL_CTX *server_ctx(const struct cfg_listener_tls *lt)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        return NULL;
    common_ctx_setup(ctx, lt->min_version);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                        SSL_OP_NO_COMPRESSION | (lt->ktls ? SSL_OP_ENABLE_KTLS : 0));
    /* stateless resumption: tickets under the shared keys, no per-context
     * cache (which workers would share behind a lock) */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (lt->session_tickets) {
        SSL_CTX_set_num_tickets(ctx, 1);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);     /* TLS 1.2: no ticket */
        SSL_CTX_set_num_tickets(ctx, 0);                /* TLS 1.3: none issued */
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    return ctx;
}

static SSL_CTX *listener_build(const struct cfg_listener_tls *lt, const char *path,
                               struct cfg_errors *errs)
{
    static pthread_once_t idx_once = PTHREAD_ONCE_INIT;
    size_t n = lt->ncerts, nerr0 = errs->n;
    struct loaded_cert *lcs = calloc(n, sizeof(*lcs));
    int *ktype = calloc(n, sizeof(*ktype));
    struct tls_srv *srv = calloc(1, sizeof(*srv));
    char ***names = calloc(n, sizeof(*names));
    size_t *nnames = calloc(n, sizeof(*nnames));
    char p[512];

    pthread_once(&idx_once, srv_idx_init);
    if (lcs == NULL || ktype == NULL || srv == NULL || names == NULL || nnames == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s/certificates/%zu", path, i);
        if (load_cert(&lt->certs[i], p, &lcs[i], errs))
            ktype[i] = EVP_PKEY_get_base_id(lcs[i].key);
    }
    if (errs->n > nerr0)
        goto fail;
    srv->ctx = calloc(n, sizeof(*srv->ctx));
    if (srv->ctx == NULL)
        abort();
    srv->nctx = n;
    for (size_t i = 0; i < n; i++) {
        nnames[i] = cert_names(lcs[i].x, &names[i]);
        srv->nnames += nnames[i];
    }
    srv->names = calloc(srv->nnames ? srv->nnames : 1, sizeof(*srv->names));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < nnames[i]; j++) {
            srv->names[k].name = names[i][j];
            srv->names[k++].ctx = i;
        }
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s/certificates/%zu", path, i);
        SSL_CTX *ctx = srv->ctx[i] = server_ctx(lt);
        if (ctx == NULL || SSL_CTX_use_cert_and_key(ctx, lcs[i].x, lcs[i].key, lcs[i].chain, 1) != 1) {
            char why[256];
            gw_tls_errors(why, sizeof(why));
            cfg_errors_add(errs, p, "cannot use this certificate: %s", why);
            continue;
        }
        /* A certificate of another key type for one of the same names rides
         * along, so an RSA-only client and an ECDSA client each get theirs. */
        for (size_t j = 0; j < n; j++) {
            if (j == i || ktype[j] == ktype[i])
                continue;
            bool shared = false;
            for (size_t a = 0; a < nnames[i] && !shared; a++)
                for (size_t b = 0; b < nnames[j] && !shared; b++)
                    shared = strcmp(names[i][a], names[j][b]) == 0;
            if (shared && SSL_CTX_use_cert_and_key(ctx, lcs[j].x, lcs[j].key, lcs[j].chain, 0) != 1)
                ERR_clear_error();      /* a slot already taken: the first wins */
        }
        /* sessions belong to their certificate: the same one after a reload */
        unsigned char sid[32];
        unsigned int sidlen = sizeof(sid);
        X509_digest(lcs[i].x, EVP_sha256(), sid, &sidlen);
        SSL_CTX_set_session_id_context(ctx, sid, sidlen);
        SSL_CTX_set_client_hello_cb(ctx, hello_cb, srv);
    }
    if (errs->n > nerr0)
        goto fail;
    SSL_CTX_set_ex_data(srv->ctx[0], g_srv_idx, srv);
    SSL_CTX *def = srv->ctx[0];
    for (size_t i = 0; i < n; i++) {
        loaded_free(&lcs[i]);
        free(names[i]);     /* the strings went to srv->names */
    }
    free(names);
    free(nnames);
    free(lcs);
    free(ktype);
    return def;
fail:
    for (size_t i = 0; i < n; i++) {
        loaded_free(&lcs[i]);
        free(names[i]);
    }
    free(names);
    free(nnames);
    free(lcs);
    free(ktype);
    if (srv->ctx && srv->ctx[0])
        SSL_CTX_free(srv->ctx[0]);
    srv_free(srv);
    return NULL;
}

/* ---- client contexts ---- */

static SSL_CTX *upstream_build(const struct cfg_upstream_tls *ut, const char *path,
                               struct cfg_errors *errs)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[256], p[512];

    if (ctx == NULL)
        abort();
    common_ctx_setup(ctx, CFG_TLS_1_2);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, gw_tls_new_session);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    if (ut->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ut->ca_file ? SSL_CTX_load_verify_locations(ctx, ut->ca_file, NULL)
                             : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            gw_tls_errors(why, sizeof(why));
            snprintf(p, sizeof(p), "%s/ca_file", path);
            cfg_errors_add(errs, ut->ca_file ? p : path, "cannot load %s: %s",
                           ut->ca_file ? ut->ca_file : "the system CA store", why);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

/* ---- sets ---- */

struct gw_tls_set {
    SSL_CTX **lctx;     /* [cfg->nlisteners] */
    size_t nl;
    SSL_CTX **uctx;     /* [cfg->nupstreams] */
    size_t nu;
};

struct gw_tls_set *gw_tls_set_build(const struct sl_config *cfg, struct cfg_errors *errs)
{
    struct gw_tls_set *ts = calloc(1, sizeof(*ts));
    size_t nerr0 = errs->n;
    char p[128];
    bool want_ktls = false;

    gw_tls_global_init();
    if (ts == NULL)
        abort();
    ts->nl = cfg->nlisteners;
    ts->nu = cfg->nupstreams;
    ts->lctx = calloc(ts->nl ? ts->nl : 1, sizeof(*ts->lctx));
    ts->uctx = calloc(ts->nu ? ts->nu : 1, sizeof(*ts->uctx));
    if (ts->lctx == NULL || ts->uctx == NULL)
        abort();
    for (size_t i = 0; i < ts->nl; i++) {
        const struct cfg_listener_tls *lt = cfg->listeners[i].tls;
        if (lt == NULL)
            continue;
        want_ktls |= lt->ktls;
        snprintf(p, sizeof(p), "/listeners/%zu/tls", i);
        ts->lctx[i] = listener_build(lt, p, errs);
    }
    for (size_t i = 0; i < ts->nu; i++) {
        if (cfg->upstreams[i].tls == NULL)
            continue;
        snprintf(p, sizeof(p), "/upstreams/%zu/tls", i);
        ts->uctx[i] = upstream_build(cfg->upstreams[i].tls, p, errs);
    }
    if (errs->n > nerr0) {
        gw_tls_set_free(ts);
        return NULL;
    }
    if (want_ktls && g_ktls_state < 0 && !g_ktls_logged) {
        g_ktls_logged = true;
        gw_log(GW_LOG_WARN, "kernel TLS unavailable (the kernel has no tls ULP; see "
               "/proc/sys/net/ipv4/tcp_available_ulp): listeners with \"ktls\" use user-space TLS");
    }
    return ts;
}

void gw_tls_set_free(struct gw_tls_set *ts)
{
    if (ts == NULL)
        return;
    for (size_t i = 0; i < ts->nl; i++)
        SSL_CTX_free(ts->lctx[i]);
    for (size_t i = 0; i < ts->nu; i++)
        SSL_CTX_free(ts->uctx[i]);
    free(ts->lctx);
    free(ts->uctx);
    free(ts);
}

SSL_CTX *gw_tls_listener_ctx(const struct gw_tls_set *ts, size_t i)
{
    return ts && i < ts->nl ? ts->lctx[i] : NULL;
}

SSL_CTX *gw_tls_upstream_ctx(const struct gw_tls_set *ts, size_t i)
{
    return ts && i < ts->nu ? ts->uctx[i] : NULL;
}
