/*
 * kconf.h - (k8s) where the Kubernetes API is and how to trust and log in to
 * it: from a kubeconfig file (the current context's cluster and user) or
 * from inside a pod (the service-account token and CA).
 *
 * Owns: every string in struct k8s_conf (k8s_conf_free).
 * May call: k8s/yaml_read, cJSON, OpenSSL (base64), libc.
 */
#ifndef SLUICE_K8S_KCONF_H
#define SLUICE_K8S_KCONF_H

#include <stddef.h>

struct k8s_conf {
    char *host, *port;              /* of the server URL (https only) */
    char *ca;                       /* PEM */
    size_t ca_len;
    char *token;                    /* bearer token, or NULL */
    char *token_file;               /* in-cluster: re-read at each connect (tokens rotate) */
    char *cert, *key;               /* client certificate and key (PEM), or NULL */
    size_t cert_len, key_len;
};

/* 0, or -1 with err naming the problem (a missing field, an unsupported
 * option such as insecure-skip-tls-verify, a file that cannot be read). */
int k8s_conf_kubeconfig(struct k8s_conf *c, const char *path, char *err, size_t errlen);
/* Inside a pod: KUBERNETES_SERVICE_HOST/PORT and the files in dir
 * (normally /var/run/secrets/kubernetes.io/serviceaccount). */
int k8s_conf_in_cluster(struct k8s_conf *c, const char *dir, char *err, size_t errlen);
/* The token to send now (re-reads token_file): malloc'd, or NULL. */
char *k8s_conf_token(const struct k8s_conf *c);
void k8s_conf_free(struct k8s_conf *c);

#endif
