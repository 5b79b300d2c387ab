/*
 * basic.c - auth.basic: user names and passwords checked against an
 * htpasswd file of bcrypt ($2y$, $2b$, $2a$) or SHA-512-crypt ($6$) hashes.
 *
 * Such a hash costs tens of milliseconds on purpose, so it never runs on a
 * worker's event loop: the request pends and a job goes to a small pool of
 * verifier threads shared by the process; the answer comes back through a
 * pipe into the asking worker's loop (pol_txn_complete there).  The queue
 * is the only lock, taken once per hash (never on a cached request), and is
 * bounded: past VQ_MAX waiting jobs a request gets a 503, and so does one
 * whose job waited VQ_WAIT_MS for a verifier (answered unhashed).
 *
 * A user name not in the file pays the same: its password is hashed against
 * a stand-in (the hash of an entry with the file's most common algorithm
 * and cost) on the same verifiers, and the answer is a 401 whatever comes
 * out, so a 401's timing does not tell which names exist.  A request that
 * goes away while its job still waits in the queue takes the job out.
 *
 * A verified credential is cached per worker (no lock), keyed by SHA-256
 * of the users file's generation and "user:password" (never the clear
 * password), for CACHE_TTL_MS: a keep-alive client pays the hash once.  A
 * reload reads the users file again under a new generation, so a removed
 * user or changed password is never served from the cache.
 */
#include "pol_int.h"
#include "../core/arena.h"
#include "../core/check.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define USERS_FILE_MAX (16u * 1024 * 1024)
#define HASH_MAX 128                /* bcrypt 60, SHA-512-crypt at most 123 */
#define CRED_MAX 1024               /* user:password, decoded */
#define VQ_MAX 1024                 /* jobs waiting for a verifier */
/* A job that waited this long is answered 503 unhashed: a request never
 * waits on the queue much longer (the client's timers are off meanwhile),
 * and a flood drains at once instead of a hash at a time. */
#define VQ_WAIT_MS 5000
#define NVERIFIERS 2
#define CACHE_SETS 512              /* x 2 ways per worker */
#define CACHE_TTL_MS (5u * 60 * 1000)
#define BCRYPT_COST_MAX 16
#define SHA512_ROUNDS_MAX 1000000ul

struct user {
    const char *name;
    const char *hash;
    uint32_t name_len;
    uint32_t next;                  /* index + 1 in its bucket */
};

struct pol_basic {
    uint64_t gen;                   /* this load of the file (cache keys) */
    struct user *users;
    size_t n;
    uint32_t *bucket;
    uint32_t mask;
    const char *dummy;              /* unknown users are hashed against it (NULL: no users) */
};

static _Atomic uint64_t g_gen, g_hashes;

uint64_t pol_hashes_total(void)
{
    return atomic_load_explicit(&g_hashes, memory_order_relaxed);
}

/* ---- the users file */

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static const struct user *find_user(const struct pol_basic *b, const char *name, size_t n)
{
    for (uint32_t j = b->bucket[name_hash(name, n) & b->mask]; j; j = b->users[j - 1].next) {
        const struct user *u = &b->users[j - 1];
        if (u->name_len == n && memcmp(u->name, name, n) == 0)
            return u;
    }
    return NULL;
}

/* Why a hash cannot be used, or NULL. */
static const char *hash_problem(const char *h)
{
    size_t n = strlen(h);

    if (n > HASH_MAX)
        return "hash too long";
    if (strncmp(h, "$2y$", 4) == 0 || strncmp(h, "$2b$", 4) == 0 || strncmp(h, "$2a$", 4) == 0) {
        if (n != 60 || h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' || h[6] != '$')
            return "not a bcrypt hash ($2y$NN$ and 53 characters)";
        int cost = (h[4] - '0') * 10 + (h[5] - '0');
        if (cost < 4 || cost > BCRYPT_COST_MAX)
            return "bcrypt cost must be 4 to 16 (a hash must not take seconds)";
        return NULL;
    }
    if (strncmp(h, "$6$", 3) == 0) {
        const char *p = h + 3;
        if (strncmp(p, "rounds=", 7) == 0) {
            char *end;
            unsigned long r = strtoul(p + 7, &end, 10);
            if (*end != '$' || r > SHA512_ROUNDS_MAX)
                return "SHA-512-crypt rounds must be at most 1000000";
            p = end + 1;
        }
        const char *d = strchr(p, '$');
        if (d == NULL || d - p > 16 || strlen(d + 1) != 86)
            return "not a SHA-512-crypt hash ($6$salt$ and 86 characters)";
        return NULL;
    }
    return "unsupported hash: use bcrypt ($2y$, htpasswd -B) or SHA-512-crypt ($6$)";
}

/* The length of a hash's setting: what decides its cost (algorithm and
 * bcrypt cost or SHA-512-crypt rounds), salt excluded. */
static size_t setting_len(const char *h)
{
    if (h[1] == '2')
        return 7;                   /* $2y$NN$ */
    if (strncmp(h + 3, "rounds=", 7) == 0)
        return (size_t)(strchr(h + 3, '$') - h) + 1;
    return 3;                       /* $6$ */
}

/* The stand-in for unknown users: an entry of the most common setting. */
static const char *pick_dummy(const struct pol_basic *b)
{
    enum { NSET = 8 };
    const char *set[NSET];
    size_t cnt[NSET], nset = 0, best = 0;

    for (size_t i = 0; i < b->n; i++) {
        const char *h = b->users[i].hash;
        size_t k = 0, l = setting_len(h);
        while (k < nset && !(setting_len(set[k]) == l && memcmp(set[k], h, l) == 0))
            k++;
        if (k == nset) {
            if (nset == NSET)
                continue;           /* (a file of more than 8 settings: the first 8 vote) */
            set[nset] = h;
            cnt[nset++] = 0;
        }
        if (++cnt[k] > cnt[best])
            best = k;
    }
    return nset ? set[best] : NULL;
}

/* The shortest entry that can load: a one-byte name, ':', a bcrypt hash. */
#define ENTRY_MIN 62

static bool load_users(struct cfg_ctx *cx, const struct jp *path, const char *file, char *text,
                       struct pol_basic *b)
{
    size_t nlines = 1, bad = 0, line = 0;

    for (const char *p = text; *p; p++)
        nlines += *p == '\n';
    /* room for the entries that can be there, not for every line (a file
     * of blank or broken lines must not cost 24 bytes a byte) */
    size_t most = strlen(text) / ENTRY_MIN + 1;
    if (nlines > most)
        nlines = most;
    b->users = cfg_calloc(cx, nlines, sizeof(*b->users));
    uint32_t cap = 16;
    while (cap < nlines * 2 && cap < (1u << 30))
        cap *= 2;
    b->bucket = cfg_calloc(cx, cap, sizeof(*b->bucket));
    b->mask = cap - 1;
    for (char *s = text, *next; s && *s; s = next) {
        char *nl = strchr(s, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        line++;
        size_t len = strlen(s);
        if (len && s[len - 1] == '\r')
            s[--len] = '\0';
        if (len == 0 || s[0] == '#')
            continue;
        char *colon = strchr(s, ':');
        const char *why = NULL;
        if (colon == NULL || colon == s)
            why = "must be user:hash";
        else if ((size_t)(colon - s) > POL_AUTH_ID_MAX)
            why = "user name longer than 128 bytes";
        else
            why = hash_problem(colon + 1);
        if (why == NULL) {
            *colon = '\0';
            for (const char *q = s; *q; q++)
                if ((unsigned char)*q <= 0x20 || *q == 0x7f)
                    why = "user name with a space or control character";
        }
        if (why == NULL && find_user(b, s, strlen(s)))
            why = "user listed twice";
        BUG_ON(why == NULL && b->n == nlines);  /* (ENTRY_MIN bounds them) */
        if (why) {
            if (bad++ < 5)
                cfg_errp(cx, path, "%s: line %zu: %s", file, line, why);
            continue;
        }
        struct user *u = &b->users[b->n];
        u->name = cfg_strdup(cx, s);
        u->name_len = (uint32_t)strlen(s);
        u->hash = cfg_strdup(cx, colon + 1);
        uint32_t h = name_hash(u->name, u->name_len) & b->mask;
        u->next = b->bucket[h];
        b->bucket[h] = (uint32_t)++b->n;
    }
    b->dummy = pick_dummy(b);
    return bad == 0;
}

struct pol_basic *pol_basic_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                  struct pol_auth *au)
{
    static const char *const keys[] = { "users_file", NULL };
    const cJSON *f[1];
    const char *file;
    struct pol_basic *b;

    if (!cfg_check_object(cx, v, path, keys, NULL, f))
        return NULL;
    b = cfg_calloc(cx, 1, sizeof(*b));
    b->gen = atomic_fetch_add(&g_gen, 1) + 1;
    au->cred_header = "authorization";
    au->cred_header_len = 13;
    if (cfg_get_name(cx, f[0], path, "users_file", true, &file) == CFG_OK) {
        const struct jp *fp = JP_K(path, "users_file");
        size_t len;
        char *text = pol_read_file(cx, fp, file, USERS_FILE_MAX, &len);
        if (text) {
            if (memchr(text, '\0', len))
                cfg_errp(cx, fp, "%s: not a text file", file);
            else
                load_users(cx, fp, file, text, b);
            free(text);
        }
    }
    if (b->bucket == NULL) {    /* (errors above: never run, but keep lookups safe) */
        b->bucket = cfg_calloc(cx, 1, sizeof(*b->bucket));
        b->mask = 0;
    }
    return b;
}

/* ---- the verifier threads */

struct vjob {
    struct vjob *next;
    struct pol_worker *pw;          /* whose pipe the answer goes to */
    struct pol_txn *t;              /* NULL once the request went away */
    const struct user *user;        /* read only while t is set (its txn pins the config);
                                     * NULL: an unknown user, hashed for the time only */
    unsigned char key[32];          /* the cache key */
    uint64_t queued_ms;             /* when it joined the queue */
    bool ok;
    bool late;                      /* waited past VQ_WAIT_MS: not hashed */
    uint32_t user_len;
    char hash[HASH_MAX + 1];
    char cred[CRED_MAX + 1];        /* user:password, wiped once hashed */
};

static uint64_t now_ms(void);

static pthread_mutex_t vq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t vq_cond = PTHREAD_COND_INITIALIZER;
static struct vjob *vq_head, *vq_tail;
static unsigned vq_len;
static pthread_once_t vq_once = PTHREAD_ONCE_INIT;

static void *verifier_main(void *arg)
{
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));

    (void)arg;
    pthread_setname_np(pthread_self(), "sluice-verify");
    for (;;) {
        pthread_mutex_lock(&vq_lock);
        while (vq_head == NULL)
            pthread_cond_wait(&vq_cond, &vq_lock);
        struct vjob *j = vq_head;
        vq_head = j->next;
        if (vq_head == NULL)
            vq_tail = NULL;
        vq_len--;
        pthread_mutex_unlock(&vq_lock);

        j->late = now_ms() - j->queued_ms > VQ_WAIT_MS;
        if (!j->late) {
            const char *pass = j->cred + j->user_len + 1;
            char *out = crypt_rn(pass, j->hash, cd, sizeof(*cd));
            size_t hl = strlen(j->hash);
            j->ok = out != NULL && strlen(out) == hl && CRYPTO_memcmp(out, j->hash, hl) == 0;
            OPENSSL_cleanse(cd, sizeof(*cd));
            atomic_fetch_add_explicit(&g_hashes, 1, memory_order_relaxed);
        }
        OPENSSL_cleanse(j->cred + j->user_len, sizeof(j->cred) - j->user_len);
        ssize_t w;
        do
            w = write(j->pw->vpipe[1], &j, sizeof(j));
        while (w == -1 && errno == EINTR);
    }
    return NULL;
}

static void verifiers_start(void)
{
    for (int i = 0; i < NVERIFIERS; i++) {
        pthread_t th;
        if (pthread_create(&th, NULL, verifier_main, NULL) == 0)
            pthread_detach(th);
    }
}

/* ---- the worker's cache */

struct centry {
    unsigned char key[32];
    uint64_t expires_ms;            /* 0 = empty */
    const struct user *user;        /* (of the generation in the key) */
};

struct pol_bcache {
    struct centry e[CACHE_SETS][2];
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const struct user *cache_find(struct pol_bcache *bc, const unsigned char key[32], uint64_t now)
{
    uint32_t s;

    memcpy(&s, key, sizeof(s));
    struct centry *set = bc->e[s % CACHE_SETS];
    for (int i = 0; i < 2; i++)
        if (set[i].expires_ms > now && CRYPTO_memcmp(set[i].key, key, 32) == 0)
            return set[i].user;
    return NULL;
}

static void cache_put(struct pol_bcache *bc, const unsigned char key[32], const struct user *u,
                      uint64_t now)
{
    uint32_t s;

    memcpy(&s, key, sizeof(s));
    struct centry *set = bc->e[s % CACHE_SETS];
    /* the empty or expired way, else the one that expires first */
    struct centry *e = set[0].expires_ms <= set[1].expires_ms ? &set[0] : &set[1];
    memcpy(e->key, key, 32);
    e->user = u;
    e->expires_ms = now + CACHE_TTL_MS;
}

void pol_bcache_free(struct pol_bcache *bc)
{
    if (bc)
        OPENSSL_cleanse(bc, sizeof(*bc));
    free(bc);
}

/* ---- a request */

static const char challenge[] = "WWW-Authenticate: Basic realm=\"sluice\"\r\n";

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with padding (RFC 7617): the decoded length, or -1. */
static long b64_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    if (n == 0 || n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + (size_t)k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64val(c)) < 0) {
                return -1;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        unsigned char b[3] = { (unsigned char)(x >> 16), (unsigned char)(x >> 8), (unsigned char)x };
        for (int k = 0; k < 3 - pad; k++) {
            if (o == cap)
                return -1;
            out[o++] = (char)b[k];
        }
    }
    return (long)o;
}

static void job_free(struct vjob *j)
{
    OPENSSL_cleanse(j, sizeof(*j));
    free(j);
}

/* The request went away: a job still queued leaves the queue (no hash for
 * nobody, a slot free for others); one being hashed comes back and is
 * freed unheard. */
static void basic_cancel(struct pol_txn *t)
{
    struct vjob *j = t->op, *prev = NULL;

    pthread_mutex_lock(&vq_lock);
    struct vjob *q = vq_head;
    while (q && q != j) {
        prev = q;
        q = q->next;
    }
    if (q) {
        if (prev)
            prev->next = j->next;
        else
            vq_head = j->next;
        if (vq_tail == j)
            vq_tail = prev;
        vq_len--;
    }
    pthread_mutex_unlock(&vq_lock);
    if (q) {
        t->pw->vinflight--;
        job_free(j);
    } else {
        j->t = NULL;
    }
}

/* The verifiers' answers on this worker's loop. */
static void vpipe_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pol_worker *pw = arg;
    struct vjob *jobs[64];

    (void)what;
    for (;;) {
        ssize_t n = read(fd, jobs, sizeof(jobs));
        if (n <= 0)
            return;
        for (size_t i = 0; i < (size_t)n / sizeof(jobs[0]); i++) {
            struct vjob *j = jobs[i];
            struct pol_txn *t = j->t;
            pw->vinflight--;
            if (t != NULL) {
                const struct user *u = j->ok ? j->user : NULL;
                if (u) {
                    cache_put(pw->bcache, j->key, u, now_ms());
                    pol_txn_set_auth_id(t, u->name, u->name_len);
                } else {
                    pol_txn_deny(t, j->late ? 503 : 401, j->late ? NULL : challenge);
                }
                job_free(j);
                pol_txn_complete(t, u ? POL_ALLOW : POL_DENY);
            } else {
                job_free(j);
            }
        }
    }
}

/* The worker's end of the verifiers (once, at its first hash). */
static bool worker_setup(struct pol_worker *pw)
{
    if (pw->vev)
        return true;
    if (pipe2(pw->vpipe, O_NONBLOCK | O_CLOEXEC) == -1) {
        pw->vpipe[0] = pw->vpipe[1] = -1;
        return false;
    }
    /* the verifier's writes may block (a full pipe: the worker is busy) */
    fcntl(pw->vpipe[1], F_SETFL, 0);
    pw->vev = event_new(pw->base, pw->vpipe[0], EV_READ | EV_PERSIST, vpipe_cb, pw);
    event_add(pw->vev, NULL);
    pw->bcache = xcalloc(1, sizeof(*pw->bcache));
    pthread_once(&vq_once, verifiers_start);
    return true;
}

void pol_basic_worker_end(struct pol_worker *pw)
{
    /* jobs still hashing come back to this pipe: wait for them (each a few
     * tens of ms; every request was cancelled), so none writes to a closed
     * pipe or leaks */
    while (pw->vinflight > 0) {
        struct pollfd p = { pw->vpipe[0], POLLIN, 0 };
        if (poll(&p, 1, 1000) <= 0)
            continue;
        vpipe_cb(pw->vpipe[0], EV_READ, pw);
    }
}

enum pol_verdict pol_basic_check(const struct pol_auth *au, struct pol_txn *t,
                                 const struct pol_req *r)
{
    const struct pol_basic *b = au->basic;
    struct pol_worker *pw = t->pw;
    const struct h1_header *h = pol_header_sole(r, "authorization", 13);
    char cred[8 + CRED_MAX + 1];    /* the generation, then user:password */
    unsigned char key[32];

    if (h == NULL || !pol_prefix_ieq(h->value, h->value_len, "Basic ", 6))
        return pol_txn_deny(t, 401, challenge);
    size_t off = 6;
    while (off < h->value_len && h->value[off] == ' ')
        off++;
    memcpy(cred, &b->gen, 8);
    long n = b64_decode(h->value + off, h->value_len - off, cred + 8, CRED_MAX);
    if (n < 0)
        return pol_txn_deny(t, 401, challenge);
    char *colon = memchr(cred + 8, ':', (size_t)n);
    /* crypt() reads a C string: "pw\0anything" must not pass as "pw" */
    if (colon == NULL || memchr(cred + 8, '\0', (size_t)n)) {
        OPENSSL_cleanse(cred, sizeof(cred));
        return pol_txn_deny(t, 401, challenge);
    }
    size_t ulen = (size_t)(colon - (cred + 8));
    const struct user *u = find_user(b, cred + 8, ulen);
    if (u == NULL && b->dummy == NULL) {    /* no users at all: nothing to hide */
        OPENSSL_cleanse(cred, sizeof(cred));
        return pol_txn_deny(t, 401, challenge);
    }
    pol_sha256(pw, cred, 8 + (size_t)n, key);
    if (!worker_setup(pw)) {
        OPENSSL_cleanse(cred, sizeof(cred));
        return pol_txn_deny(t, 503, NULL);
    }
    uint64_t now = now_ms();
    if (u && cache_find(pw->bcache, key, now) == u) {
        OPENSSL_cleanse(cred, sizeof(cred));
        pol_txn_set_auth_id(t, u->name, u->name_len);
        return POL_ALLOW;
    }
    struct vjob *j = xcalloc(1, sizeof(*j));
    j->pw = pw;
    j->t = t;
    j->user = u;
    memcpy(j->key, key, 32);
    const char *hash = u ? u->hash : b->dummy;
    memcpy(j->hash, hash, strlen(hash) + 1);
    memcpy(j->cred, cred + 8, (size_t)n);
    j->user_len = (uint32_t)ulen;
    OPENSSL_cleanse(cred, sizeof(cred));
    pthread_mutex_lock(&vq_lock);
    if (vq_len >= VQ_MAX) {
        pthread_mutex_unlock(&vq_lock);
        job_free(j);
        return pol_txn_deny(t, 503, NULL);
    }
    j->queued_ms = now;
    if (vq_tail)
        vq_tail->next = j;
    else
        vq_head = j;
    vq_tail = j;
    vq_len++;
    pthread_cond_signal(&vq_cond);
    pthread_mutex_unlock(&vq_lock);
    pw->vinflight++;
    t->op = j;
    t->cancel = basic_cancel;
    return POL_PENDING;
}
