/*
 * sluice-k8s - the Kubernetes Gateway API translator.
 *
 *   sluice-k8s translate -f PATH [-f PATH ...] [--gateway-class sluice]
 *
 * Reads manifests, prints the sluice config document on stdout and the
 * problems as conditions (JSON lines) on stderr.  Exit 0 when a document
 * was printed, 1 for a bad command line or a file that cannot be read or
 * parsed (then nothing is printed: a partial config would drop routes).
 */
#include "cond.h"
#include "index.h"
#include "load.h"
#include "obj.h"
#include "translate.h"
#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice-k8s translate -f PATH [-f PATH ...] [--gateway-class NAME]\n"
               "  -f PATH               a manifest file (YAML or JSON, multi-document) or a\n"
               "                        directory of *.yaml, *.yml, *.json files\n"
               "  --gateway-class NAME  the GatewayClass served (default \"sluice\")\n"
               "  --listen-host HOST    the address listeners bind (default 0.0.0.0)\n"
               "Prints the sluice config document on stdout; problems go to stderr as\n"
               "Kubernetes-style conditions, one JSON object per line.\n"
               "\n"
               "       sluice-k8s watch (--kubeconfig FILE | --in-cluster) --admin http://HOST:PORT\n"
               "                        [--admin-token T] [--gateway-class NAME] [--listen-host HOST]\n"
               "                        [--gateway-address ADDR (default $POD_IP)]\n"
               "  list+watch the Gateway API objects on the Kubernetes API and PUT each new\n"
               "  document to the gateway's admin API (debounced, only when it changed)\n");
}

static int translate(int argc, char **argv)
{
    struct k8s_opts opt = { .gateway_class = "sluice", .bind_host = "0.0.0.0" };
    const char **paths = calloc((size_t)argc, sizeof(*paths));
    size_t npaths = 0;

    if (paths == NULL)
        return 2;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-f") || !strcmp(a, "--filename") || !strcmp(a, "--gateway-class") ||
             !strcmp(a, "--listen-host")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (a[1] == 'f' || a[2] == 'f')
                paths[npaths++] = v;
            else if (!strcmp(a, "--gateway-class"))
                opt.gateway_class = v;
            else
                opt.bind_host = v;
            continue;
        }
        fprintf(stderr, "sluice-k8s: %s: unknown or incomplete argument\n", a);
        usage(stderr);
        free(paths);
        return 1;
    }
    if (npaths == 0 || !*opt.gateway_class || !*opt.bind_host) {
        usage(stderr);
        free(paths);
        return 1;
    }

    struct k8s_store store = { 0 };
    struct k8s_conds conds = { 0 };
    struct k8s_load load = { 0 };
    int rc = 0;
    for (size_t i = 0; i < npaths; i++)
        if (k8s_load_path(&load, paths[i], &store, &conds) != 0)
            rc = 1;
    free(paths);
    if (rc == 0) {
        struct k8s_index ix;
        k8s_index_build(&ix, &store, &conds);
        cJSON *doc = k8s_translate(&ix, &opt, &conds);
        char *s = cJSON_Print(doc);
        if (s == NULL) {
            fprintf(stderr, "sluice-k8s: out of memory\n");
            rc = 2;
        } else {
            fputs(s, stdout);
            fputc('\n', stdout);
            free(s);
        }
        cJSON_Delete(doc);
        k8s_index_free(&ix);
    }
    k8s_conds_print(&conds, stderr);
    k8s_conds_free(&conds);
    k8s_store_free(&store);
    k8s_load_free(&load);
    if (fflush(stdout) != 0)
        rc = 2;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "translate"))
        return translate(argc - 2, argv + 2);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "watch"))
        return k8s_watch_main(argc - 2, argv + 2);
    usage(stderr);
    return 1;
}
