/* filter.c: a pullman worker in C for a filter pool, with the callback loop.
 *
 * Blocks every request whose path starts with /admin (403, and the upstream never sees
 * it); passes the rest on to the pool's upstream with x-filtered-by: pullman-c added.
 *
 * Settings: flags, else the environment the hub gives the programs it starts
 * (PULLMAN_HUB, PULLMAN_POOL, PULLMAN_TOKEN):
 *   filter [--hub ADDR] [--pool NAME] [--token TOKEN] [--concurrency N] [--shm]
 * SIGTERM or SIGINT drains it, then it exits 0. */

#define _POSIX_C_SOURCE 200809L /* sigwait, pthread_sigmask, nanosleep */

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pullman.h"

static pm_worker *worker;

static void die(const char *what, pm_code code) {
    fprintf(stderr, "filter: %s: %s: %s\n", what, pm_code_name(code), pm_last_error_message());
    exit(1);
}

/* Called on the library's serving threads; the library frees the request afterwards. */
static void decide(pm_request *req, void *unused) {
    (void)unused;
    pm_bytes path;
    pm_request_path(req, &path);
    if (path.len >= 6 && memcmp(path.ptr, "/admin", 6) == 0) {
        const char *body = "blocked by the C filter\n";
        pm_request_add_header(req, "content-type", 12, "text/plain", 10);
        pm_request_respond(req, 403, (const uint8_t *)body, strlen(body));
        return;
    }
    pm_request_edit(req, PM_EDIT_SET, "x-filtered-by", 13, "pullman-c", 9);
    pm_request_pass(req);
}

static void *on_signal(void *set) {
    int sig;
    sigwait((sigset_t *)set, &sig);
    pm_worker_drain(worker);
    return NULL;
}

int main(int argc, char **argv) {
    pm_code code;
    if ((code = pm_worker_new(&worker)) != PM_CODE_OK)
        die("pm_worker_new", code);
    pm_worker_set_concurrency(worker, 4);
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(flag, "--shm") == 0) {
            code = pm_worker_set_shm(worker, true);
        } else if (value == NULL) {
            fprintf(stderr, "filter: %s needs a value\n", flag);
            return 2;
        } else if (strcmp(flag, "--hub") == 0) {
            code = pm_worker_set_hub(worker, value), i++;
        } else if (strcmp(flag, "--pool") == 0) {
            code = pm_worker_set_pool(worker, value), i++;
        } else if (strcmp(flag, "--token") == 0) {
            code = pm_worker_set_token(worker, value), i++;
        } else if (strcmp(flag, "--concurrency") == 0) {
            code = pm_worker_set_concurrency(worker, (uint32_t)atoi(value)), i++;
        } else {
            fprintf(stderr, "filter: unknown flag %s\n", flag);
            return 2;
        }
        if (code != PM_CODE_OK)
            die(flag, code);
    }

    static sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    if ((code = pm_worker_connect(worker, PM_MODE_FILTER)) != PM_CODE_OK)
        die("pm_worker_connect", code);
    pthread_t signals;
    pthread_create(&signals, NULL, on_signal, &stop);
    pthread_detach(signals);
    if ((code = pm_worker_run(worker, decide, NULL)) != PM_CODE_OK)
        die("pm_worker_run", code);
    pm_worker_free(worker);
    fprintf(stderr, "filter: drained\n");
    return 0;
}
