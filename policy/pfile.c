/*
 * pfile.c - reading the files a policy names (keys, users) at config load,
 * and the digests the checks compare.  Calls nothing else of the module.
 */
#include "pol_int.h"
#include "../core/arena.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *pol_read_file(struct cfg_ctx *cx, const struct jp *path, const char *file, size_t max,
                    size_t *len)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    FILE *f;
    char *buf;
    size_t n = 0, cap = 4096;

    if (fd == -1) {
        cfg_errp(cx, path, "cannot open %s: %s", file, strerror(errno));
        return NULL;
    }
    /* a FIFO or a device would hold the reload (or read forever) */
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        cfg_errp(cx, path, "%s is not a regular file", file);
        close(fd);
        return NULL;
    }
    if ((f = fdopen(fd, "rb")) == NULL) {
        cfg_errp(cx, path, "cannot read %s: %s", file, strerror(errno));
        close(fd);
        return NULL;
    }
    buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                cfg_errp(cx, path, "%s is larger than %zu bytes", file, max);
                free(buf);
                fclose(f);
                return NULL;
            }
            cap = cap * 2 > max ? max : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    if (ferror(f)) {
        cfg_errp(cx, path, "cannot read %s: %s", file, strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int pol_unhex(const char *s, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n / 2; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return n % 2 ? -1 : 0;
}

bool pol_prefix_ieq(const char *s, size_t n, const char *prefix, size_t plen)
{
    if (n < plen)
        return false;
    for (size_t i = 0; i < plen; i++) {
        char a = s[i], b = prefix[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a | 0x20);
        if (b >= 'A' && b <= 'Z')
            b = (char)(b | 0x20);
        if (a != b)
            return false;
    }
    return true;
}

/* OpenSSL 3's one-shot SHA256() fetches the algorithm on every call (a
 * lock and a lookup, most of a short key's cost): fetch it once, and keep a
 * context per worker. */
static EVP_MD *g_sha256;
static pthread_once_t g_sha_once = PTHREAD_ONCE_INIT;

static void sha_init(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void pol_sha256(struct pol_worker *pw, const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;

    pthread_once(&g_sha_once, sha_init);
    if (pw->md == NULL)
        pw->md = EVP_MD_CTX_new();
    if (g_sha256 == NULL || pw->md == NULL || !EVP_DigestInit_ex2(pw->md, g_sha256, NULL) ||
        !EVP_DigestUpdate(pw->md, p, n) || !EVP_DigestFinal_ex(pw->md, out, &len))
        x_oom();    /* (SHA-256 cannot fail but for memory) */
}
