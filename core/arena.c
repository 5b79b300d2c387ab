/* arena.c - abort-on-failure allocation and the config arena (arena.h). */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MEM_CHUNK (64u << 10)

struct cfg_mem {
    struct cfg_mem *next;
    size_t used, cap;
    max_align_t data[];
};

void x_oom(void)
{
    fputs("sluice: out of memory\n", stderr);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        x_oom();
    return p;
}

void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (p == NULL)
        x_oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        x_oom();
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xstrdup(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

/* Big pieces get a chunk of their own behind the current one, so its free
 * space still serves the small allocations that follow. */
void *cm_alloc(struct cfg_mem **head, size_t n, size_t align, bool zero)
{
    struct cfg_mem *c = *head;
    size_t off;

    if (n > CFG_MEM_CHUNK / 4) {
        c = zero ? calloc(1, sizeof(*c) + n) : malloc(sizeof(*c) + n);
        if (c == NULL)
            x_oom();
        c->used = c->cap = n;
        if (*head) {
            c->next = (*head)->next;
            (*head)->next = c;
        } else {
            c->next = NULL;
            *head = c;
        }
        return c->data;
    }
    off = c ? (c->used + align - 1) & ~(align - 1) : 0;
    if (c == NULL || off + n > c->cap) {
        c = xmalloc(sizeof(*c) + CFG_MEM_CHUNK);
        c->cap = CFG_MEM_CHUNK;
        c->next = *head;
        *head = c;
        off = 0;
    }
    c->used = off + n;
    void *p = (char *)c->data + off;
    if (zero)
        memset(p, 0, n);
    return p;
}

void *cm_calloc(struct cfg_mem **head, size_t n, size_t sz)
{
    if (sz && n > SIZE_MAX / sz)
        x_oom();
    size_t bytes = n * sz;
    return cm_alloc(head, bytes ? bytes : 1, _Alignof(max_align_t), true);
}

/* cm_on_free: a chunk with no room (cap 0, which no other chunk has)
 * holding the call. */
struct cm_cleanup {
    void (*fn)(void *);
    void *arg;
};

void cm_on_free(struct cfg_mem **head, void (*fn)(void *), void *arg)
{
    struct cfg_mem *c = xmalloc(sizeof(*c) + sizeof(struct cm_cleanup));
    struct cm_cleanup *k = (struct cm_cleanup *)(void *)c->data;

    k->fn = fn;
    k->arg = arg;
    c->used = c->cap = 0;
    if (*head) {                /* behind the head, as big pieces go */
        c->next = (*head)->next;
        (*head)->next = c;
    } else {
        c->next = NULL;
        *head = c;
    }
}

void cm_free_all(struct cfg_mem *c)
{
    while (c) {
        struct cfg_mem *n = c->next;
        if (c->cap == 0) {
            struct cm_cleanup *k = (struct cm_cleanup *)(void *)c->data;
            k->fn(k->arg);
        }
        free(c);
        c = n;
    }
}

char *cm_strndup(struct cfg_mem **head, const char *s, size_t n)
{
    char *p = head ? cm_alloc(head, n + 1, 1, false) : xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *cm_strdup(struct cfg_mem **head, const char *s)
{
    return s ? cm_strndup(head, s, strlen(s)) : NULL;
}
