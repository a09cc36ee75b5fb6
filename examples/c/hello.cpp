// hello.cpp: the C API from C++: a respond-mode worker whose handler is a lambda, run by
// pm_worker_run on two threads. Answers every request with "hello from C++\n".
//
//   hello_cpp [--hub ADDR] [--pool NAME] [--token TOKEN]
// (or PULLMAN_HUB, PULLMAN_POOL, PULLMAN_TOKEN). SIGTERM or SIGINT drains it.

#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include <pthread.h>

#include "pullman.h"

namespace {

// Turns a code other than PM_CODE_OK into an exception that names the call.
void check(pm_code code, const char *what) {
    if (code != PM_CODE_OK) {
        throw std::runtime_error(std::string(what) + ": " + pm_code_name(code) + ": " +
                                 pm_last_error_message());
    }
}

// Owns a pm_worker: freed (after draining) when it goes out of scope.
class Worker {
  public:
    Worker() { check(pm_worker_new(&w_), "pm_worker_new"); }
    ~Worker() { pm_worker_free(w_); }
    Worker(const Worker &) = delete;
    Worker &operator=(const Worker &) = delete;

    pm_worker *get() const { return w_; }

    // Serves every request with `handler` until the worker drains.
    template <typename Handler> void run(Handler &handler) {
        auto trampoline = [](pm_request *req, void *userdata) {
            (*static_cast<Handler *>(userdata))(req);
        };
        check(pm_worker_run(w_, trampoline, &handler), "pm_worker_run");
    }

  private:
    pm_worker *w_ = nullptr;
};

} // namespace

int main(int argc, char **argv) {
    try {
        Worker worker;
        check(pm_worker_set_concurrency(worker.get(), 2), "pm_worker_set_concurrency");
        for (int i = 1; i + 1 < argc; i += 2) {
            std::string flag = argv[i];
            const char *value = argv[i + 1];
            if (flag == "--hub") {
                check(pm_worker_set_hub(worker.get(), value), "--hub");
            } else if (flag == "--pool") {
                check(pm_worker_set_pool(worker.get(), value), "--pool");
            } else if (flag == "--token") {
                check(pm_worker_set_token(worker.get(), value), "--token");
            } else {
                throw std::runtime_error("unknown flag " + flag);
            }
        }

        // Blocked before any thread starts, so that only the waiting thread takes them.
        static sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGTERM);
        sigaddset(&stop, SIGINT);
        pthread_sigmask(SIG_BLOCK, &stop, nullptr);
        check(pm_worker_connect(worker.get(), PM_MODE_RESPOND), "pm_worker_connect");
        std::thread([w = worker.get()] {
            int sig = 0;
            sigwait(&stop, &sig);
            pm_worker_drain(w);
        }).detach();

        auto hello = [](pm_request *req) {
            static const char body[] = "hello from C++\n";
            pm_request_add_header(req, "content-type", 12, "text/plain", 10);
            pm_request_respond(req, 200, reinterpret_cast<const uint8_t *>(body),
                               sizeof body - 1);
        };
        worker.run(hello);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "hello_cpp: %s\n", e.what());
        return 1;
    }
    return 0;
}
