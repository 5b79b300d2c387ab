/*
 * fuzz_yaml.c - the manifest reader of sluice-k8s (k8s/yaml_read.c, then the
 * store, index and translation): any bytes give documents or an error,
 * never a crash, an over-read, a leak or a blow-up (aliases and nesting are
 * bounded).
 */
#include "../../k8s/yaml_read.h"
#include "../../k8s/cond.h"
#include "../../k8s/index.h"
#include "../../k8s/load.h"
#include "../../k8s/obj.h"
#include "../../k8s/translate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: an over-read past the input shows */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);

    struct k8s_store store = { 0 };
    struct k8s_conds conds = { 0 };
    struct k8s_load load = { 0 };
    if (k8s_load_text(&load, "fuzz", buf, size, &store, &conds) == 0) {
        struct k8s_index ix;
        struct k8s_opts opt = { 0 };
        k8s_index_build(&ix, &store, &conds);
        cJSON *doc = k8s_translate(&ix, &opt, &conds);
        char *s = cJSON_PrintUnformatted(doc);
        free(s);
        cJSON_Delete(doc);
        k8s_index_free(&ix);
    }
    k8s_conds_free(&conds);
    k8s_store_free(&store);
    k8s_load_free(&load);
    free(buf);
    return 0;
}
