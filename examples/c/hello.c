/* hello.c: a pullman worker in C for a respond pool, with a pull loop on four threads.
 *
 *   GET  /hello        "hello from C\n"
 *   POST /echo         the request body back, streamed as it arrives
 *   GET  /sleep?ms=N   waits N milliseconds, then answers "slept\n"
 *   anything else      404
 *
 * Every answer but /hello's (the hop alone, kept minimal) carries x-in-flight (how many
 * requests this worker held unanswered when it took this one, counting it: never more than
 * its concurrency) and x-shm (1 when the request was read in place from shared memory).
 *
 * Settings: flags, else the environment the hub gives the programs it starts
 * (PULLMAN_HUB, PULLMAN_POOL, PULLMAN_TOKEN):
 *   hello [--hub ADDR] [--pool NAME] [--token TOKEN] [--concurrency N] [--shm]
 * SIGTERM or SIGINT drains it: requests in flight finish, then it exits 0. */

#define _POSIX_C_SOURCE 200809L /* sigwait, pthread_sigmask, nanosleep */

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pullman.h"

#define THREADS 4

static pm_worker *worker;
/* Requests taken and not yet answered. */
static atomic_int in_flight;

/* Called just before a request's last answering call: once that returns, the hub may
 * hand this worker its next request. */
static void answering(void) {
    atomic_fetch_sub(&in_flight, 1);
}

static void die(const char *what, pm_code code) {
    fprintf(stderr, "hello: %s: %s: %s\n", what, pm_code_name(code), pm_last_error_message());
    exit(1);
}

static int is(pm_bytes b, const char *s) {
    return b.len == strlen(s) && (b.len == 0 || memcmp(b.ptr, s, b.len) == 0);
}

static void add_header(pm_request *req, const char *name, const char *value) {
    pm_request_add_header(req, name, strlen(name), value, strlen(value));
}

/* The number after "ms=" in the query, or 0. */
static long query_ms(pm_request *req) {
    pm_bytes q;
    char buf[32] = {0};
    if (pm_request_query(req, &q) != PM_CODE_OK || q.len < 4 || q.len >= sizeof buf)
        return 0;
    memcpy(buf, q.ptr, q.len);
    return strncmp(buf, "ms=", 3) == 0 ? atol(buf + 3) : 0;
}

static void echo(pm_request *req) {
    pm_bytes length;
    if (pm_request_header(req, "content-length", 14, &length) == PM_CODE_OK) {
        char value[32] = {0};
        if (length.len < sizeof value) {
            memcpy(value, length.ptr, length.len);
            add_header(req, "content-length", value);
        }
    }
    if (pm_request_start(req, 200) != PM_CODE_OK) {
        answering(); /* cancelled: pm_request_free ends it */
        return;
    }
    for (;;) {
        pm_bytes chunk;
        if (pm_request_read(req, &chunk) != PM_CODE_OK || chunk.len == 0)
            break;
        if (pm_request_write(req, chunk.ptr, chunk.len) != PM_CODE_OK)
            break; /* the hub cancelled the request: stop writing */
    }
    answering();
    pm_request_finish(req);
}

/* Adds x-in-flight (`held`) and x-shm to the response. */
static void mark(pm_request *req, int held) {
    char count[16];
    bool shared = false;
    snprintf(count, sizeof count, "%d", held);
    pm_request_in_shared_memory(req, &shared);
    add_header(req, "x-in-flight", count);
    add_header(req, "x-shm", shared ? "1" : "0");
}

static void serve(pm_request *req) {
    int held = atomic_fetch_add(&in_flight, 1) + 1;
    pm_bytes method, path;
    pm_request_method(req, &method);
    pm_request_path(req, &path);
    if (is(path, "/hello")) {
        const char *body = "hello from C\n";
        add_header(req, "content-type", "text/plain");
        answering();
        pm_request_respond(req, 200, (const uint8_t *)body, strlen(body));
        return;
    }
    mark(req, held);
    if (is(path, "/echo") && is(method, "POST")) {
        echo(req);
    } else if (is(path, "/sleep")) {
        long ms = query_ms(req);
        struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
        answering();
        pm_request_respond(req, 200, (const uint8_t *)"slept\n", 6);
    } else {
        answering();
        pm_request_respond(req, 404, (const uint8_t *)"not found\n", 10);
    }
}

/* One of the pull loops: take a request, serve it, free it, until the worker drains. */
static void *pull(void *unused) {
    (void)unused;
    for (;;) {
        pm_request *req;
        pm_code code = pm_worker_next(worker, -1, &req);
        if (code == PM_CODE_DRAINED)
            return NULL;
        if (code != PM_CODE_OK)
            die("pm_worker_next", code);
        serve(req);
        pm_request_free(req);
    }
}

/* Waits for SIGTERM or SIGINT (blocked in every thread) and drains the worker. */
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
    pm_worker_set_concurrency(worker, THREADS);
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(flag, "--shm") == 0) {
            code = pm_worker_set_shm(worker, true);
        } else if (value == NULL) {
            fprintf(stderr, "hello: %s needs a value\n", flag);
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
            fprintf(stderr, "hello: unknown flag %s\n", flag);
            return 2;
        }
        if (code != PM_CODE_OK)
            die(flag, code);
    }

    /* Blocked before any thread starts (the library's too), so only on_signal sees them. */
    static sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    if ((code = pm_worker_connect(worker, PM_MODE_RESPOND)) != PM_CODE_OK)
        die("pm_worker_connect", code);
    pthread_t signals, threads[THREADS];
    pthread_create(&signals, NULL, on_signal, &stop);
    pthread_detach(signals);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, pull, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    pm_worker_free(worker);
    fprintf(stderr, "hello: drained\n");
    return 0;
}
