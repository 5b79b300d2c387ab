/*
 * https.c - (k8s) a blocking HTTP/1.1 client over TCP or TLS (see https.h).
 */
#include "https.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

int64_t kh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ssl_err(char *err, size_t n, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, n, "%s%s%s", what, *buf ? ": " : "", buf);
    ERR_clear_error();
}

SSL_CTX *kh_tls_ctx(const char *ca_pem, size_t ca_len, const char *cert_pem, size_t cert_len,
                    const char *key_pem, size_t key_len, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        ssl_err(err, errlen, "TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    BIO *b = BIO_new_mem_buf(ca_pem, (int)ca_len);
    int ncas = 0;
    X509 *x;
    while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(st, x);
        X509_free(x);
        ncas++;
    }
    BIO_free(b);
    ERR_clear_error();
    if (ncas == 0) {
        snprintf(err, errlen, "the certificate authority data holds no PEM certificate");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (cert_pem && key_pem) {
        b = BIO_new_mem_buf(cert_pem, (int)cert_len);
        x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        b = BIO_new_mem_buf(key_pem, (int)key_len);
        EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        bool ok = x && k && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1 &&
                  SSL_CTX_check_private_key(ctx) == 1;
        X509_free(x);
        EVP_PKEY_free(k);
        if (!ok) {
            ssl_err(err, errlen, "the client certificate or key");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

/* Waits for fd to be ready for ev: 1 ready, 0 stop or deadline, -1 error. */
static int wait_fd(struct kh_conn *c, short ev, int64_t deadline_ms)
{
    for (;;) {
        if (c->stop && atomic_load(c->stop))
            return 0;
        int64_t left = 100;
        if (deadline_ms >= 0) {
            left = deadline_ms - kh_now_ms();
            if (left <= 0)
                return 0;
            if (left > 100)
                left = 100;
        }
        struct pollfd p = { .fd = c->fd, .events = ev };
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

int kh_connect(struct kh_conn *c, const char *host, const char *port, SSL_CTX *ctx,
               const atomic_bool *stop, int64_t deadline_ms, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->stop = stop;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
    int r = getaddrinfo(host, port, &hints, &ai);
    if (r != 0) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(r));
        return -1;
    }
    snprintf(err, errlen, "connect to %s:%s failed", host, port);
    for (struct addrinfo *a = ai; a && c->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        c->fd = fd;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            snprintf(err, errlen, "connect to %s:%s: %s", host, port, strerror(errno));
        } else if (wait_fd(c, POLLOUT, deadline_ms) == 1) {
            int e = 0;
            socklen_t el = sizeof e;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
            if (e == 0) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                break;
            }
            snprintf(err, errlen, "connect to %s:%s: %s", host, port, strerror(e));
        } else {
            snprintf(err, errlen, "connect to %s:%s: timed out", host, port);
        }
        close(fd);
        c->fd = -1;
    }
    freeaddrinfo(ai);
    if (c->fd < 0)
        return -1;
    if (ctx == NULL)
        return 0;

    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL) {
        ssl_err(err, errlen, "TLS");
        kh_close(c);
        return -1;
    }
    SSL_set_fd(c->ssl, c->fd);
    unsigned char ip[16];
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
    } else {
        SSL_set_tlsext_host_name(c->ssl, host);
        SSL_set1_host(c->ssl, host);
    }
    for (;;) {
        ERR_clear_error();
        int rc = SSL_connect(c->ssl);
        if (rc == 1)
            return 0;
        int e = SSL_get_error(c->ssl, rc);
        int w = e == SSL_ERROR_WANT_READ ? wait_fd(c, POLLIN, deadline_ms)
              : e == SSL_ERROR_WANT_WRITE ? wait_fd(c, POLLOUT, deadline_ms) : -1;
        if (w == 1)
            continue;
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK)
            snprintf(err, errlen, "TLS handshake with %s:%s: the server certificate is refused: %s",
                     host, port, X509_verify_cert_error_string(v));
        else if (w == 0)
            snprintf(err, errlen, "TLS handshake with %s:%s: timed out", host, port);
        else
            ssl_err(err, errlen, "TLS handshake failed");
        kh_close(c);
        return -1;
    }
}

void kh_close(struct kh_conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int write_all(struct kh_conn *c, const char *p, size_t n, int64_t deadline_ms)
{
    while (n > 0) {
        ssize_t w;
        short ev = POLLOUT;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, p, (int)(n > 1 << 20 ? 1 << 20 : n));
            if (r > 0) {
                w = r;
            } else {
                int e = SSL_get_error(c->ssl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    return -1;
                ev = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                w = 0;
            }
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno != EAGAIN && errno != EINTR)
                    return -1;
                w = 0;
            }
        }
        if (w == 0 && wait_fd(c, ev, deadline_ms) != 1)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int kh_send(struct kh_conn *c, const char *method, const char *host, const char *path,
            const char *extra_headers, const char *body, size_t body_len, int64_t deadline_ms)
{
    char head[4096];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-k8s\r\n"
                     "Accept: application/json\r\n%s%s",
                     method, path, host, extra_headers ? extra_headers : "", body ? "" : "\r\n");
    if (n < 0 || (size_t)n >= sizeof head - 64)
        return -1;
    if (body)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n\r\n", body_len);
    if (write_all(c, head, (size_t)n, deadline_ms) != 0)
        return -1;
    return body ? write_all(c, body, body_len, deadline_ms) : 0;
}

/* More bytes into c->buf: 1, 0 at end of stream, -1 error/stop/deadline. */
static int fill(struct kh_conn *c, int64_t deadline_ms)
{
    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == sizeof c->buf)
        return -1;
    for (;;) {
        short ev = POLLIN;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - c->len));
            if (r > 0) {
                c->len += (size_t)r;
                return 1;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN)
                return 0;
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 ? 0 : -1;
            ev = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        } else {
            ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
            if (r > 0) {
                c->len += (size_t)r;
                return 1;
            }
            if (r == 0)
                return 0;
            if (errno != EAGAIN && errno != EINTR)
                return -1;
        }
        if (wait_fd(c, ev, deadline_ms) != 1)
            return -1;
    }
}

/* One CRLF- or LF-terminated line (without it) into out.  0 or -1. */
static int get_line(struct kh_conn *c, char *out, size_t n, int64_t deadline_ms)
{
    for (;;) {
        char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
        if (nl) {
            size_t l = (size_t)(nl - (c->buf + c->off));
            size_t copy = l && nl[-1] == '\r' ? l - 1 : l;
            if (copy >= n)
                return -1;
            memcpy(out, c->buf + c->off, copy);
            out[copy] = '\0';
            c->off += l + 1;
            return 0;
        }
        if (fill(c, deadline_ms) != 1)
            return -1;
    }
}

int kh_read_head(struct kh_conn *c, int64_t deadline_ms)
{
    char line[8192];
    int status = -1;
    if (get_line(c, line, sizeof line, deadline_ms) != 0 || strncmp(line, "HTTP/1.", 7) != 0 ||
        sscanf(line + 8, " %3d", &status) != 1)
        return -1;
    c->chunked = false;
    c->eof = false;
    c->remain = -1;
    c->chunk_left = 0;
    for (;;) {
        if (get_line(c, line, sizeof line, deadline_ms) != 0)
            return -1;
        if (line[0] == '\0')
            break;
        if (!strncasecmp(line, "Content-Length:", 15))
            c->remain = strtoll(line + 15, NULL, 10);
        else if (!strncasecmp(line, "Transfer-Encoding:", 18) && strcasestr(line + 18, "chunked"))
            c->chunked = true;
    }
    if (c->chunked)
        c->remain = -1;
    if (status == 204 || status == 304)
        c->remain = 0;
    return status;
}

ssize_t kh_body_read(struct kh_conn *c, char *out, size_t n, int64_t deadline_ms)
{
    if (c->eof)
        return 0;
    if (c->chunked) {
        if (c->chunk_left == 0) {
            char line[256];
            if (get_line(c, line, sizeof line, deadline_ms) != 0)
                return -1;
            if (line[0] == '\0' && get_line(c, line, sizeof line, deadline_ms) != 0)
                return -1;       /* the CRLF after the previous chunk's data */
            char *end;
            long long sz = strtoll(line, &end, 16);
            if (end == line || sz < 0)
                return -1;
            if (sz == 0) {
                /* trailers, up to the empty line: the connection may be reused */
                do {
                    if (get_line(c, line, sizeof line, deadline_ms) != 0)
                        return -1;
                } while (line[0] != '\0');
                c->eof = true;
                return 0;
            }
            c->chunk_left = sz;
        }
    } else if (c->remain == 0) {
        c->eof = true;
        return 0;
    }
    if (c->off == c->len) {
        int r = fill(c, deadline_ms);
        if (r == 0 && !c->chunked && c->remain < 0) {
            c->eof = true;
            return 0;
        }
        if (r != 1)
            return -1;
    }
    size_t avail = c->len - c->off;
    long long lim = c->chunked ? c->chunk_left : c->remain;
    if (lim >= 0 && (long long)avail > lim)
        avail = (size_t)lim;
    if (avail > n)
        avail = n;
    memcpy(out, c->buf + c->off, avail);
    c->off += avail;
    if (c->chunked)
        c->chunk_left -= (long long)avail;
    else if (c->remain > 0)
        c->remain -= (long long)avail;
    return (ssize_t)avail;
}

int kh_read_body(struct kh_conn *c, struct kh_resp *r, size_t max, int64_t deadline_ms)
{
    size_t cap = 4096;
    r->len = 0;
    r->body = malloc(cap);
    if (r->body == NULL)
        return -1;
    for (;;) {
        if (cap - r->len < 4096 + 1) {
            if (cap >= max) {
                free(r->body);
                r->body = NULL;
                return -1;
            }
            char *nb = realloc(r->body, cap * 2);
            if (nb == NULL) {
                free(r->body);
                r->body = NULL;
                return -1;
            }
            r->body = nb;
            cap *= 2;
        }
        ssize_t got = kh_body_read(c, r->body + r->len, cap - r->len - 1, deadline_ms);
        if (got < 0) {
            free(r->body);
            r->body = NULL;
            return -1;
        }
        if (got == 0)
            break;
        r->len += (size_t)got;
    }
    r->body[r->len] = '\0';
    return 0;
}
