/* tls_test.c - the TLS layer: certificates and their errors, SNI choice,
 * ticket keys and their rotation, ALPN, and handshakes plus reads and
 * writes over a socketpair through the gw_io transport. */
#include "tap.h"
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
#include "../../gateway/tls.c"
#include "../../core/tls_io.c"

#include <fcntl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

/* mkdtemp(3) template: it replaces the trailing characters with a unique name */
static char g_dir[] = "/tmp/sluice-tls-test.XXXXXX";

/* A self-signed certificate for names (DNS SANs), in PEM files. */
static void make_cert(const char *base, int type, const char *const *names, size_t n,
                      char *certf, char *keyf)
{
    EVP_PKEY *key = type == EVP_PKEY_EC ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(type + n));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)names[0], -1, -1, 0);
    X509_set_issuer_name(x, nm);
    char san[512] = "";
    for (size_t i = 0; i < n; i++) {
        strcat(san, i ? ",DNS:" : "DNS:");
        strcat(san, names[i]);
    }
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, key, EVP_sha256());
    sprintf(certf, "%s/%s.pem", g_dir, base);
    sprintf(keyf, "%s/%s.key", g_dir, base);
    FILE *f = fopen(certf, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(keyf, "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static char ec_a[256], ec_a_key[256], rsa_a[256], rsa_a_key[256], ec_w[256], ec_w_key[256];

static struct sl_config *doc(const char *certs, struct cfg_errors *e)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "{\"listeners\":[{\"address\":\"127.0.0.1:1\",\"tls\":{\"certificates\":[%s]}}],"
             "\"routes\":[]}", certs);
    return cfg_parse(buf, strlen(buf), e);
}

static void test_cert_errors(void)
{
    struct cfg_errors e = { 0 };
    char certs[2048];

    snprintf(certs, sizeof(certs), "{\"cert_file\":\"%s/missing.pem\",\"key_file\":\"%s\"}", g_dir, ec_a_key);
    struct sl_config *c = doc(certs, &e);
    ok(c != NULL, "a missing file is not the parser's business");
    ok(gw_tls_set_build(c, &e) == NULL && e.n == 1 &&
       strcmp(e.v[0].path, "/listeners/0/tls/certificates/0/cert_file") == 0 &&
       strstr(e.v[0].message, "cannot open") != NULL, "missing cert_file: error names its path (%s)",
       e.n ? e.v[0].message : "-");
    cfg_free(c);
    cfg_errors_clear(&e);

    snprintf(certs, sizeof(certs), "{\"cert_file\":\"%s\",\"key_file\":\"%s\"},{\"cert_file\":\"%s\",\"key_file\":\"%s\"}",
             ec_a, ec_a_key, ec_a, rsa_a_key);
    c = doc(certs, &e);
    ok(gw_tls_set_build(c, &e) == NULL && e.n == 1 &&
       strcmp(e.v[0].path, "/listeners/0/tls/certificates/1/key_file") == 0 &&
       strstr(e.v[0].message, "does not match") != NULL, "a key of another certificate: named (%s)",
       e.n ? e.v[0].path : "-");
    cfg_free(c);
    cfg_errors_clear(&e);

    c = doc("{\"cert_pem\":\"not a certificate\",\"key_pem\":\"nor a key\"}", &e);
    ok(gw_tls_set_build(c, &e) == NULL && e.n == 1 &&
       strcmp(e.v[0].path, "/listeners/0/tls/certificates/0/cert_pem") == 0,
       "garbage PEM: named (%s)", e.n ? e.v[0].message : "-");
    cfg_free(c);
    cfg_errors_clear(&e);

    const char *up = "{\"listeners\":[{\"address\":\"127.0.0.1:1\"}],\"routes\":[],\"upstreams\":[{\"name\":\"a\","
                     "\"targets\":[{\"address\":\"127.0.0.1:2\"}],\"tls\":{\"ca_file\":\"/nonexistent/ca.pem\"}}]}";
    c = cfg_parse(up, strlen(up), &e);
    ok(c && gw_tls_set_build(c, &e) == NULL && e.n == 1 && strcmp(e.v[0].path, "/upstreams/0/tls/ca_file") == 0,
       "unreadable ca_file: named");
    cfg_free(c);
    cfg_errors_clear(&e);
}

static void test_sni(void)
{
    struct cfg_errors e = { 0 };
    char certs[2048];

    snprintf(certs, sizeof(certs),
             "{\"cert_file\":\"%s\",\"key_file\":\"%s\"},{\"cert_file\":\"%s\",\"key_file\":\"%s\"},"
             "{\"cert_file\":\"%s\",\"key_file\":\"%s\"}", ec_a, ec_a_key, rsa_a, rsa_a_key, ec_w, ec_w_key);
    struct sl_config *c = doc(certs, &e);
    struct gw_tls_set *ts = c ? gw_tls_set_build(c, &e) : NULL;
    ok(ts != NULL, "three certificates load");
    if (ts == NULL) {
        cfg_free(c);
        cfg_errors_clear(&e);
        return;
    }
    SSL_CTX *def = gw_tls_listener_ctx(ts, 0);
    const struct tls_srv *srv = SSL_CTX_get_ex_data(def, g_srv_idx);
    ok(srv && srv->nctx == 3 && srv->ctx[0] == def, "the first certificate is the default");
    ok(srv_lookup(srv, "a.example.test") == srv->ctx[0], "exact name -> its certificate");
    ok(srv_lookup(srv, "A.Example.TEST.") == srv->ctx[0], "case and a root dot do not matter");
    ok(srv_lookup(srv, "x.wild.example.test") == srv->ctx[2], "wildcard covers one label");
    ok(srv_lookup(srv, "y.x.wild.example.test") == NULL, "wildcard does not cover two labels");
    ok(srv_lookup(srv, "wild.example.test") == NULL, "wildcard does not cover the bare domain");
    ok(srv_lookup(srv, "unknown.test") == NULL, "unknown name -> none (the default serves)");
    /* the ECDSA context also carries the RSA certificate for the same name */
    SSL *s = SSL_new(srv->ctx[0]);
    int types = 0;
    for (int r = SSL_CTX_set_current_cert(srv->ctx[0], SSL_CERT_SET_FIRST); r == 1;
         r = SSL_CTX_set_current_cert(srv->ctx[0], SSL_CERT_SET_NEXT)) {
        X509 *x = SSL_CTX_get0_certificate(srv->ctx[0]);
        if (x)
            types |= EVP_PKEY_get_base_id(X509_get0_pubkey(x)) == EVP_PKEY_EC ? 1 : 2;
    }
    ok(types == 3, "RSA and ECDSA for the same name side by side (%d)", types);
    SSL_free(s);
    gw_tls_set_free(ts);
    cfg_free(c);
    cfg_errors_clear(&e);
}

static void test_tickets(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL *ssl = SSL_new(ctx);
    EVP_CIPHER_CTX *ec = EVP_CIPHER_CTX_new();
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *hc = EVP_MAC_CTX_new(mac);
    unsigned char name[16], iv[EVP_MAX_IV_LENGTH], name2[16];

    ok(ticket_cb(ssl, name, iv, ec, hc, 1) == 1, "a ticket is encrypted under the current key");
    int v = ticket_cb(ssl, name, iv, ec, hc, 0);
    ok(v == (SSL_version(ssl) == TLS1_3_VERSION ? 2 : 1), "and decrypts as current (%d; renewed under TLS 1.3)", v);
    gw_tls_rotate_tickets();
    ok(ticket_cb(ssl, name, iv, ec, hc, 0) == 2, "after a rotation: still valid, renewed");
    ok(ticket_cb(ssl, name2, iv, ec, hc, 1) == 1 && memcmp(name, name2, 16) != 0, "new tickets use the new key");
    gw_tls_rotate_tickets();
    ok(ticket_cb(ssl, name, iv, ec, hc, 0) == 0, "two rotations later: refused (full handshake)");
    ok(ticket_cb(ssl, name2, iv, ec, hc, 0) == 2, "the previous key still decrypts");
    memset(name2, 0xee, 16);
    ok(ticket_cb(ssl, name2, iv, ec, hc, 0) == 0, "an unknown key name is refused");
    EVP_MAC_CTX_free(hc);
    EVP_MAC_free(mac);
    EVP_CIPHER_CTX_free(ec);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

static void test_alpn(void)
{
    const unsigned char *out;
    unsigned char outlen;
    static const unsigned char both[] = "\x02h2\x08http/1.1", h2[] = "\x02h2", bad[] = "\x09http/1.1";

    ok(alpn_cb(NULL, &out, &outlen, both, sizeof(both) - 1, NULL) == SSL_TLSEXT_ERR_OK &&
       outlen == 8 && memcmp(out, "http/1.1", 8) == 0, "ALPN picks http/1.1 among h2,http/1.1");
    ok(alpn_cb(NULL, &out, &outlen, h2, sizeof(h2) - 1, NULL) == SSL_TLSEXT_ERR_NOACK,
       "only h2 offered: no ALPN, no failure");
    ok(alpn_cb(NULL, &out, &outlen, bad, sizeof(bad) - 1, NULL) == SSL_TLSEXT_ERR_NOACK,
       "a malformed list is not read past its end");
}

static void test_ktls_probe(void)
{
    char buf[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");

    if (f) {
        if (fgets(buf, sizeof(buf), f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
    /* read after the probe, which loads the module where there is one */
    ok(gw_tls_ktls_available() == (strstr(buf, "tls") != NULL),
       "kernel TLS probe agrees with tcp_available_ulp (\"%.*s\")", (int)strcspn(buf, "\n"), buf);
}

/* Drive both handshakes over a socketpair until done or failed. */
static void pump_hs(struct gw_io *cli, struct gw_io *srv, int *rc, int *rs, char *why, size_t wl)
{
    char sw[256];
    *rc = *rs = -1;
    for (int i = 0; i < 200; i++) {
        if (*rc != GW_HS_DONE && *rc != GW_HS_ERROR)
            *rc = gw_tls_handshake(cli, why, wl);
        if (*rs != GW_HS_DONE && *rs != GW_HS_ERROR)
            *rs = gw_tls_handshake(srv, sw, sizeof(sw));
        if ((*rc == GW_HS_DONE || *rc == GW_HS_ERROR) && (*rs == GW_HS_DONE || *rs == GW_HS_ERROR))
            return;
        struct pollfd p[2] = { { cli->fd, POLLIN, 0 }, { srv->fd, POLLIN, 0 } };
        poll(p, 2, 20);
    }
}

static void test_handshake_and_io(void)
{
    struct cfg_errors e = { 0 };
    char certs[2048];
    snprintf(certs, sizeof(certs), "{\"cert_file\":\"%s\",\"key_file\":\"%s\"}", ec_a, ec_a_key);
    char up[4096];
    snprintf(up, sizeof(up), "{\"listeners\":[{\"address\":\"127.0.0.1:1\",\"tls\":{\"certificates\":[%s]}}],"
             "\"routes\":[],\"upstreams\":[{\"name\":\"ok\",\"targets\":[{\"address\":\"127.0.0.1:2\"}],"
             "\"tls\":{\"ca_file\":\"%s\",\"sni\":\"a.example.test\"}},"
             "{\"name\":\"wrong\",\"targets\":[{\"address\":\"127.0.0.1:2\"}],"
             "\"tls\":{\"ca_file\":\"%s\",\"sni\":\"b.example.test\"}}]}", certs, ec_a, ec_a);
    struct sl_config *c = cfg_parse(up, strlen(up), &e);
    struct gw_tls_set *ts = c ? gw_tls_set_build(c, &e) : NULL;
    ok(ts != NULL, "listener and upstream contexts build");
    if (ts == NULL) {
        cfg_errors_clear(&e);
        cfg_free(c);
        return;
    }
    SSL_SESSION *slot = NULL;
    for (int round = 0; round < 3; round++) {
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
        struct gw_io cli = { .fd = sv[0] }, srv = { .fd = sv[1] };
        const struct cfg_upstream_tls *ut = c->upstreams[round == 2 ? 1 : 0].tls;
        SSL *cs = gw_tls_client_new(gw_tls_upstream_ctx(ts, round == 2 ? 1 : 0), sv[0], ut->sni, ut->verify, "127.0.0.1",
                                     round == 2 ? NULL : slot);   /* sessions are per name (pool bucket) */
        if (round == 2)
            SSL_SESSION_free(slot), slot = NULL;
        SSL *ss = gw_tls_server_new(gw_tls_listener_ctx(ts, 0), sv[1]);
        gw_tls_attach(&cli, cs);
        gw_tls_attach(&srv, ss);
        gw_tls_session_slot(cs, &slot);
        int rc, rs;
        char why[256] = "";
        pump_hs(&cli, &srv, &rc, &rs, why, sizeof(why));
        if (round == 2) {
            ok(rc == GW_HS_ERROR && strstr(why, "hostname mismatch") != NULL,
               "a name the certificate lacks: refused, and why (%s)", why);
        } else {
            ok(rc == GW_HS_DONE && rs == GW_HS_DONE, "handshake %d completes", round);
            ok(gw_tls_resumed(&cli) == (round == 1), "round %d: resumed=%d (the ticket was kept)", round, round == 1);
            bool tx, rx;
            gw_tls_pick_ops(&srv, &tx, &rx);
            ok(srv.ops == &gw_io_tls && !tx && !rx, "user-space TLS without ktls asked");
            /* 100 KiB in two pieces: several records, all read in order */
            static char big[100 * 1024], got[200 * 1024];
            for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (char)(i * 7 + round);
            struct iovec v[2] = { { big, 100 }, { big + 100, sizeof(big) - 100 } };
            size_t sent = 0, rcvd = 0;
            for (int i = 0; i < 1000 && rcvd < sizeof(big); i++) {
                if (sent < sizeof(big)) {
                    struct iovec w[2];
                    int n = 0;
                    size_t off = sent;
                    for (int k = 0; k < 2; k++) {
                        if (off >= v[k].iov_len) {
                            off -= v[k].iov_len;
                            continue;
                        }
                        w[n].iov_base = (char *)v[k].iov_base + off;
                        w[n++].iov_len = v[k].iov_len - off;
                        off = 0;
                    }
                    ssize_t r = gw_io_writev(&srv, w, n);
                    if (r > 0)
                        sent += (size_t)r;
                }
                ssize_t r = gw_io_read(&cli, got + rcvd, sizeof(got) - rcvd);
                if (r > 0)
                    rcvd += (size_t)r;
                else if (r != GW_IO_AGAIN)
                    break;
            }
            ok(rcvd == sizeof(big) && memcmp(got, big, sizeof(big)) == 0, "100 KiB through TLS, byte-exact");
            ok(gw_io_read(&cli, got, sizeof(got)) == GW_IO_AGAIN, "then nothing: AGAIN");
            gw_tls_close(&srv);     /* close_notify */
            ssize_t r = GW_IO_AGAIN;
            for (int i = 0; i < 50 && r == GW_IO_AGAIN; i++) {
                r = gw_io_read(&cli, got, sizeof(got));
                poll(NULL, 0, 2);
            }
            ok(r == 0, "close_notify reads as EOF");
        }
        gw_tls_close(&cli);
        if (srv.ctx)
            gw_tls_close(&srv);
        close(sv[0]);
        close(sv[1]);
    }
    SSL_SESSION_free(slot);

    /* plain HTTP to a TLS port */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    struct gw_io srv = { .fd = sv[1] };
    gw_tls_attach(&srv, gw_tls_server_new(gw_tls_listener_ctx(ts, 0), sv[1]));
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ok(write(sv[0], req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1, "plain request written");
    char why[256];
    ok(gw_tls_handshake(&srv, why, sizeof(why)) == GW_HS_PLAINTEXT, "plain HTTP on a TLS port is recognised");
    gw_tls_close(&srv);
    close(sv[0]);
    close(sv[1]);

    gw_tls_set_free(ts);
    cfg_free(c);
    cfg_errors_clear(&e);
}

int main(void)
{
    if (mkdtemp(g_dir) == NULL)
        return 1;
    gw_tls_global_init();
    static const char *const a[] = { "a.example.test" }, *const w[] = { "*.wild.example.test", "wild2.test" };
    make_cert("ec_a", EVP_PKEY_EC, a, 1, ec_a, ec_a_key);
    make_cert("rsa_a", EVP_PKEY_RSA, a, 1, rsa_a, rsa_a_key);
    make_cert("ec_w", EVP_PKEY_EC, w, 2, ec_w, ec_w_key);

    test_cert_errors();
    test_sni();
    test_tickets();
    test_alpn();
    test_ktls_probe();
    test_handshake_and_io();

    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# could not remove %s\n", g_dir);
    gw_tls_global_free();
    return tap_done();
}
