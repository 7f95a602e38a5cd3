/* lowbit serve: the HTTP server (see server/server.h). Settings come from the environment
 * first (SERVER_ADDR, BASELINE_MODEL_PATH, ...) and flags override them. Ctrl-C or SIGTERM
 * stops taking requests, lets those in flight finish, and exits 0. */
#include "cli/args.h"
#include "cli/commands.h"
#include "core/log.h"
#include "server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The write end of the pipe the signal handler wakes the main thread through. A handler can
 * reach nothing else, so this one static is set once before the handlers are installed.
 * (Blocking the signals and calling sigwait is not enough: libraries such as OpenBLAS start
 * threads before main, and a SIGTERM delivered to one of those would kill the process.) */
static int wake_fd = -1;

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    if (write(wake_fd, &b, 1) < 0) {
        /* nothing to do: the pipe is full, so the main thread is already being woken */
    }
    errno = saved;
}

int cmd_serve(int argc, char **argv)
{
    srv_config cfg;
    lb_error err;
    if (srv_config_from_env(&cfg, &err)) {
        fprintf(stderr, "serve: %s\n", err.msg);
        return 1;
    }
    int max_body_kib = (int)(cfg.max_body / 1024), drain = (int)cfg.drain_seconds;
    float temp = cfg.temperature;
    bool quiet = false;
    const char *kv_type = NULL;
    const lb_opt opts[] = {
        {"baseline", 'm', OPT_STRING, &cfg.baseline_path, "MODEL", "baseline model (env BASELINE_MODEL_PATH)"},
        {"quantized", 'q', OPT_STRING, &cfg.quantized_path, "MODEL", "quantized model served by /generate (env QUANTIZED_MODEL_PATH)"},
        {"addr", 'a', OPT_STRING, &cfg.addr, "HOST:PORT", "address to listen on; port 0 picks one (env SERVER_ADDR, default 127.0.0.1:8080)"},
        {"tokenizer", 0, OPT_STRING, &cfg.tokenizer_path, "PATH", "llama2.c tokenizer.bin for .bin models"},
        {"threads", 't', OPT_INT, &cfg.threads, "N", "compute threads per model (default: the cores shared out between the models)"},
        LB_OPT_KV_TYPE(kv_type),
        {"parallel", 'p', OPT_INT, &cfg.parallel, "SLOTS", "sequences generated together per model (default 4)"},
        {"ctx", 'c', OPT_INT, &cfg.ctx, "N", "context per sequence (default: the model's, at most 4096)"},
        {"api-key", 0, OPT_STRING, &cfg.api_key, "KEY", "require Authorization: Bearer KEY (env LOWBIT_API_KEY)"},
        {"max-queue", 0, OPT_INT, &cfg.max_queue, "N", "requests waiting for a slot before 429 (default 64)"},
        {"max-new-tokens", 'n', OPT_INT, &cfg.max_new_tokens, "N", "default tokens per request (env MAX_NEW_TOKENS, default 64)"},
        {"temp", 0, OPT_FLOAT, &temp, "T", "default temperature (env TEMPERATURE, default 0.8)"},
        {"top-k", 0, OPT_INT, &cfg.top_k, "K", "default top-k (env TOP_K, default 40)"},
        {"max-body", 0, OPT_INT, &max_body_kib, "KIB", "largest request body in KiB (default 1024)"},
        {"drain", 0, OPT_INT, &drain, "SECONDS", "how long shutdown waits for requests in flight (default 30)"},
        {"quiet", 0, OPT_FLAG, &quiet, NULL, "log errors only"},
    };
    const lb_cmd_spec spec = {
        "lowbit serve [--baseline MODEL] [--quantized MODEL] [--addr HOST:PORT] [options]",
        "Serves the models over HTTP: /health, /generate, /generate/baseline, /metadata, "
        "/evaluate, /v1/completions, /v1/chat/completions, /v1/models (SSE streaming), /metrics "
        "and a playground page at /. Concurrent requests are batched together.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    if (lb_args_kv_type("serve", kv_type))
        return 1;
    const struct {
        bool ok;
        const char *opt, *want;
        double value;
    } checks[] = {
        {cfg.threads >= 0 && cfg.threads <= 1024, "--threads", "0..1024", cfg.threads},
        {cfg.parallel >= 1 && cfg.parallel <= 256, "--parallel", "1..256", cfg.parallel},
        {cfg.ctx >= 0 && cfg.ctx <= 1 << 20, "--ctx", "0..1048576", cfg.ctx},
        {cfg.max_queue >= 0 && cfg.max_queue <= 1 << 20, "--max-queue", "0..1048576", cfg.max_queue},
        {cfg.max_new_tokens >= 1, "--max-new-tokens", "1 or more", cfg.max_new_tokens},
        {temp >= 0 && temp <= 100, "--temp", "in 0..100", temp},
        {cfg.top_k >= 0, "--top-k", "0 or more", cfg.top_k},
        {max_body_kib >= 1 && max_body_kib <= 1 << 20, "--max-body", "1..1048576", max_body_kib},
        {drain >= 0 && drain <= 3600, "--drain", "0..3600", drain},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (!checks[i].ok) {
            fprintf(stderr, "serve: %s is %g, expected %s\n", checks[i].opt, checks[i].value, checks[i].want);
            return 1;
        }
    if (!cfg.baseline_path) {
        fprintf(stderr, "serve: no baseline model: pass --baseline MODEL or set BASELINE_MODEL_PATH\n");
        return 1;
    }
    cfg.temperature = temp;
    cfg.max_body = (size_t)max_body_kib * 1024;
    cfg.drain_seconds = drain;
    if (quiet)
        lb_log_set_level(0);

    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "serve: cannot create a pipe: %s\n", strerror(errno));
        return 1;
    }
    wake_fd = fds[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_server *s;
    if (srv_create(&cfg, &s, &err)) {
        fprintf(stderr, "serve: %s\n", err.msg);
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    if (srv_load(s, &err)) {
        fprintf(stderr, "serve: %s\n", err.msg);
        srv_free(s);
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    lb_log_info("serve: ready");
    unsigned char sig = 0;
    while (read(fds[0], &sig, 1) < 0 && errno == EINTR)
        ;
    lb_log_info("serve: %s received, draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv_shutdown(s);
    srv_free(s);
    close(fds[0]);
    close(fds[1]);
    lb_log_info("serve: stopped");
    return 0;
}
