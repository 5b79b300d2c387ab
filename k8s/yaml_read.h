/*
 * yaml_read.h - (k8s) YAML (libyaml) and JSON (cJSON) text to cJSON trees,
 * one per document.
 *
 * Owns: nothing after it returns.  May call: libyaml, cJSON, core/arena.
 * YAML scalars follow the YAML 1.2 core schema (what Kubernetes reads):
 * plain null/~, true/false, integers and floats become JSON values, every
 * quoted scalar is a string.  Aliases are expanded within a node budget,
 * nesting is bounded, duplicate keys are an error: a hostile file gets an
 * error, never a crash or a blow-up.
 */
#ifndef SLUICE_K8S_YAML_READ_H
#define SLUICE_K8S_YAML_READ_H

#include <stddef.h>

#include <cJSON.h>

#define K8S_YAML_MAX_DEPTH 64
#define K8S_YAML_MAX_NODES 2000000   /* per call, aliases expanded */

struct k8s_read_err {
    unsigned long line, column;     /* 1-based; 0 when unknown */
    char msg[200];
};

/* Parses buf[0..len) as YAML: returns a JSON array holding each non-empty
 * document's root, or NULL with *err filled. */
cJSON *k8s_yaml_parse(const char *buf, size_t len, struct k8s_read_err *err);
/* The same for JSON text: one value (an array is left as is: the store
 * takes each element as an object). */
cJSON *k8s_json_parse(const char *buf, size_t len, struct k8s_read_err *err);
/* JSON when the first non-blank byte is '{' or '[', else YAML. */
cJSON *k8s_text_parse(const char *buf, size_t len, struct k8s_read_err *err);

#endif
