/*
 * watch.h - (k8s) sluice-k8s watch: list+watch the Kubernetes API and PUT
 * each new translated document to the gateway's admin API.
 *
 * Owns: everything it starts (threads, connections), all gone on return.
 * May call: k8s/https, k8s/kconf, k8s/translate, k8s/index, k8s/obj, k8s/cond.
 */
#ifndef SLUICE_K8S_WATCH_H
#define SLUICE_K8S_WATCH_H

/* argv after "watch".  Runs until SIGTERM/SIGINT: 0; 1 for a bad command
 * line or configuration, 2 for a runtime failure. */
int k8s_watch_main(int argc, char **argv);

#endif
