#include "yaml_read.h"
#include "../core/arena.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

struct anchor {
    char *name;
    cJSON *node;                    /* a copy (the original may become a key and go) */
    size_t nodes;                   /* its size, charged again on each alias */
};

struct frame {
    cJSON *node;
    char *key;                      /* a mapping's pending key, or NULL */
    size_t start_nodes;             /* nodes counted when it opened */
    char *anchor;
};

struct yr {
    yaml_parser_t p;
    struct k8s_read_err *err;
    struct frame stack[K8S_YAML_MAX_DEPTH + 1];
    int depth;
    cJSON *docs, *root;
    struct anchor *anchors;
    size_t nanchors, capanchors;
    size_t nodes;
};

static void yr_fail(struct yr *y, const yaml_mark_t *m, const char *fmt, ...)
{
    va_list ap;

    if (y->err->msg[0])
        return;
    va_start(ap, fmt);
    vsnprintf(y->err->msg, sizeof y->err->msg, fmt, ap);
    va_end(ap);
    y->err->line = m ? m->line + 1 : 0;
    y->err->column = m ? m->column + 1 : 0;
}

static void anchors_clear(struct yr *y)
{
    for (size_t i = 0; i < y->nanchors; i++) {
        free(y->anchors[i].name);
        cJSON_Delete(y->anchors[i].node);
    }
    y->nanchors = 0;
}

static void anchor_set(struct yr *y, const char *name, const cJSON *orig, size_t nodes)
{
    cJSON *node = cJSON_Duplicate(orig, true);
    if (node == NULL)
        x_oom();
    for (size_t i = 0; i < y->nanchors; i++)
        if (strcmp(y->anchors[i].name, name) == 0) {   /* a redefinition wins */
            cJSON_Delete(y->anchors[i].node);
            y->anchors[i].node = node;
            y->anchors[i].nodes = nodes;
            return;
        }
    if (y->nanchors == y->capanchors) {
        y->capanchors = y->capanchors ? 2 * y->capanchors : 8;
        y->anchors = xrealloc(y->anchors, y->capanchors * sizeof(*y->anchors));
    }
    y->anchors[y->nanchors++] = (struct anchor){ xstrdup(name), node, nodes };
}

static bool is_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

static bool is_float(const char *s)
{
    bool digits = false;
    if (*s == '-' || *s == '+')
        s++;
    while (isdigit((unsigned char)*s)) {
        s++;
        digits = true;
    }
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) {
            s++;
            digits = true;
        }
    }
    if (!digits)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return *s == '\0';
}

/* The YAML 1.2 core schema, plus explicit !!str / !!int tags. */
static cJSON *scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    size_t len = ev->data.scalar.length;

    if (strlen(v) != len)           /* an embedded NUL: keep the bytes up to it */
        return cJSON_CreateString(v);
    if (tag && strcmp(tag, YAML_STR_TAG) == 0)
        return cJSON_CreateString(v);
    if (!ev->data.scalar.plain_implicit && !(tag && strcmp(tag, YAML_STR_TAG) != 0))
        return cJSON_CreateString(v);
    if (len == 0 || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL"))
        return cJSON_CreateNull();
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
        return cJSON_CreateTrue();
    if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
        return cJSON_CreateFalse();
    if ((is_int(v) && len <= 15) || is_float(v))
        return cJSON_CreateNumber(strtod(v, NULL));
    return cJSON_CreateString(v);
}

/* Places a finished node in its parent (or as the document root).
 * Takes node; false (node freed) on error. */
static bool place(struct yr *y, cJSON *node, const yaml_mark_t *m)
{
    if (node == NULL)
        x_oom();
    if (y->depth == 0) {
        cJSON_Delete(y->root);
        y->root = node;
        return true;
    }
    struct frame *f = &y->stack[y->depth - 1];
    if (cJSON_IsArray(f->node)) {
        cJSON_AddItemToArray(f->node, node);
        return true;
    }
    if (f->key == NULL) {           /* node is a key */
        if (!cJSON_IsString(node)) {
            if (cJSON_IsNumber(node) || cJSON_IsBool(node) || cJSON_IsNull(node)) {
                /* a plain key like 8080 or true: Kubernetes keys are strings */
                char buf[64];
                if (cJSON_IsNumber(node))
                    snprintf(buf, sizeof buf, "%.17g", node->valuedouble);
                else
                    snprintf(buf, sizeof buf, "%s", cJSON_IsNull(node) ? "null" :
                             cJSON_IsTrue(node) ? "true" : "false");
                f->key = xstrdup(buf);
                cJSON_Delete(node);
                return true;
            }
            cJSON_Delete(node);
            yr_fail(y, m, "a mapping key must be a scalar");
            return false;
        }
        if (cJSON_GetObjectItemCaseSensitive(f->node, node->valuestring)) {
            yr_fail(y, m, "duplicate key \"%.60s\"", node->valuestring);
            cJSON_Delete(node);
            return false;
        }
        f->key = xstrdup(node->valuestring);
        cJSON_Delete(node);
        return true;
    }
    cJSON_AddItemToObject(f->node, f->key, node);
    free(f->key);
    f->key = NULL;
    return true;
}

static bool charge(struct yr *y, size_t n, const yaml_mark_t *m)
{
    y->nodes += n;
    if (y->nodes > K8S_YAML_MAX_NODES) {
        yr_fail(y, m, "too many nodes (more than %d, aliases expanded)", K8S_YAML_MAX_NODES);
        return false;
    }
    return true;
}

static bool open_node(struct yr *y, cJSON *node, const yaml_char_t *anchor, const yaml_mark_t *m)
{
    if (node == NULL)
        x_oom();
    if (y->depth >= K8S_YAML_MAX_DEPTH) {
        cJSON_Delete(node);
        yr_fail(y, m, "nested deeper than %d levels", K8S_YAML_MAX_DEPTH);
        return false;
    }
    if (y->depth > 0 && !cJSON_IsArray(y->stack[y->depth - 1].node) &&
        y->stack[y->depth - 1].key == NULL) {
        cJSON_Delete(node);
        yr_fail(y, m, "a mapping key must be a scalar");
        return false;
    }
    y->stack[y->depth++] = (struct frame){ node, NULL, y->nodes,
                                           anchor ? xstrdup((const char *)anchor) : NULL };
    return charge(y, 1, m);
}

static bool close_node(struct yr *y, const yaml_mark_t *m)
{
    struct frame f = y->stack[--y->depth];
    if (f.key != NULL) {
        /* "a:" with no value cannot happen (libyaml gives an empty scalar) */
        free(f.key);
        cJSON_Delete(f.node);
        free(f.anchor);
        yr_fail(y, m, "a key without a value");
        return false;
    }
    cJSON *node = f.node;
    if (f.anchor) {
        size_t n = y->nodes - f.start_nodes;
        bool ok = charge(y, n, m);  /* the anchor's copy counts too */
        if (ok)
            anchor_set(y, f.anchor, node, n);
        free(f.anchor);
        if (!ok) {
            cJSON_Delete(node);
            return false;
        }
    }
    return place(y, node, m);
}

static bool on_event(struct yr *y, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        y->root = NULL;
        anchors_clear(y);
        return true;
    case YAML_DOCUMENT_END_EVENT:
        if (y->root && !cJSON_IsNull(y->root))
            cJSON_AddItemToArray(y->docs, y->root);
        else
            cJSON_Delete(y->root);
        y->root = NULL;
        return true;
    case YAML_SCALAR_EVENT: {
        if (!charge(y, 1, m))
            return false;
        cJSON *n = scalar(ev);
        if (n == NULL)
            x_oom();
        if (ev->data.scalar.anchor)
            anchor_set(y, (const char *)ev->data.scalar.anchor, n, 1);
        return place(y, n, m);
    }
    case YAML_SEQUENCE_START_EVENT:
        return open_node(y, cJSON_CreateArray(), ev->data.sequence_start.anchor, m);
    case YAML_MAPPING_START_EVENT:
        return open_node(y, cJSON_CreateObject(), ev->data.mapping_start.anchor, m);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_node(y, m);
    case YAML_ALIAS_EVENT: {
        const char *a = (const char *)ev->data.alias.anchor;
        for (size_t i = y->nanchors; i-- > 0;) {
            if (strcmp(y->anchors[i].name, a) != 0)
                continue;
            if (!charge(y, y->anchors[i].nodes, m))
                return false;
            cJSON *copy = cJSON_Duplicate(y->anchors[i].node, true);
            return place(y, copy, m);
        }
        yr_fail(y, m, "unknown alias *%.60s", a);
        return false;
    }
    default:
        return true;
    }
}

cJSON *k8s_yaml_parse(const char *buf, size_t len, struct k8s_read_err *err)
{
    struct yr y = { .err = err };
    yaml_event_t ev;
    bool ok = true, done = false;

    memset(err, 0, sizeof(*err));
    if (!yaml_parser_initialize(&y.p))
        x_oom();
    yaml_parser_set_input_string(&y.p, (const unsigned char *)buf, len);
    y.docs = cJSON_CreateArray();
    while (ok && !done) {
        if (!yaml_parser_parse(&y.p, &ev)) {
            yr_fail(&y, &y.p.problem_mark, "%s%s%s", y.p.problem ? y.p.problem : "bad YAML",
                    y.p.context ? " " : "", y.p.context ? y.p.context : "");
            ok = false;
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        ok = on_event(&y, &ev);
        yaml_event_delete(&ev);
    }
    while (y.depth > 0) {
        struct frame *f = &y.stack[--y.depth];
        cJSON_Delete(f->node);
        free(f->key);
        free(f->anchor);
    }
    cJSON_Delete(y.root);
    anchors_clear(&y);
    free(y.anchors);
    yaml_parser_delete(&y.p);
    if (!ok) {
        cJSON_Delete(y.docs);
        return NULL;
    }
    return y.docs;
}

cJSON *k8s_json_parse(const char *buf, size_t len, struct k8s_read_err *err)
{
    const char *end = NULL;

    memset(err, 0, sizeof(*err));
    cJSON *v = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (v == NULL) {
        size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
        err->line = 1;
        for (size_t i = 0; i < off && i < len; i++) {
            if (buf[i] == '\n') {
                err->line++;
                err->column = 0;
            } else {
                err->column++;
            }
        }
        err->column++;
        snprintf(err->msg, sizeof err->msg, "bad JSON");
        return NULL;
    }
    for (const char *p = end; p && p < buf + len; p++)
        if (!isspace((unsigned char)*p)) {
            cJSON_Delete(v);
            snprintf(err->msg, sizeof err->msg, "bytes after the JSON value");
            return NULL;
        }
    cJSON *docs = cJSON_CreateArray();
    cJSON_AddItemToArray(docs, v);
    return docs;
}

cJSON *k8s_text_parse(const char *buf, size_t len, struct k8s_read_err *err)
{
    size_t i = 0;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        i = 3;
    while (i < len && isspace((unsigned char)buf[i]))
        i++;
    if (i < len && (buf[i] == '{' || buf[i] == '['))
        return k8s_json_parse(buf + i, len - i, err);
    return k8s_yaml_parse(buf, len, err);
}
