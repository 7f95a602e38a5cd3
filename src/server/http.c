/* The HTTP layer over libmicrohttpd: one thread per connection (so a handler may block while
 * its request is generated, and a streaming reader may wait for the next piece), request
 * bodies gathered up to a size limit, routing by path then method (404 / 405), the API key,
 * JSON and error responses, and noticing a client that has gone away. */
#include "core/log.h"
#include "server/internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
    const char *method;
    const char *path;        /* a trailing '*' matches any rest */
    srv_handler fn;
    const char *label;       /* metrics label */
    bool open;               /* answers without the API key */
    bool model;              /* needs the models loaded */
} route;

static const route routes[] = {
    {"GET", "/health", srv_health, "/health", true, false},
    {"GET", "/metrics", srv_metrics_page, "/metrics", true, false},
    {"GET", "/", srv_playground, "/", false, false},
    {"POST", "/generate", srv_generate, "/generate", false, true},
    {"POST", "/generate/baseline", srv_generate, "/generate/baseline", false, true},
    {"GET", "/metadata", srv_metadata, "/metadata", false, true},
    {"POST", "/evaluate", srv_evaluate, "/evaluate", false, true},
    {"GET", "/evaluate/*", srv_evaluate_get, "/evaluate/{id}", false, true},
    {"POST", "/v1/completions", srv_v1_completions, "/v1/completions", false, true},
    {"POST", "/v1/chat/completions", srv_v1_chat, "/v1/chat/completions", false, true},
    {"GET", "/v1/models", srv_v1_models, "/v1/models", false, true},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static bool path_matches(const char *pattern, const char *path)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, path, n - 1) == 0 && path[n - 1] != '\0' && !strchr(path + n - 1, '/');
    return strcmp(pattern, path) == 0;
}

enum MHD_Result srv_send_text(srv_conn *cc, int status, const char *type, const char *text,
                              size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    if (status == 429)
        MHD_add_response_header(resp, "Retry-After", "1");
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (status == 405 && cc->method) {
        /* Allow: the methods that path does answer */
        char allow[64] = "";
        const char *path = cc->endpoint;
        for (size_t i = 0; i < N_ROUTES; i++)
            if (strcmp(routes[i].label, path) == 0 && !strstr(allow, routes[i].method)) {
                if (allow[0])
                    strcat(allow, ", ");
                strcat(allow, routes[i].method);
            }
        if (allow[0])
            MHD_add_response_header(resp, "Allow", allow);
    }
    cc->status = status;
    enum MHD_Result rc = MHD_queue_response(cc->c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result srv_send_json(srv_conn *cc, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);
    if (!text) {
        static const char oops[] = "{\"error\":{\"message\":\"could not encode the response\","
                                   "\"type\":\"server_error\",\"param\":null,\"code\":null}}\n";
        return srv_send_text(cc, 500, "application/json", oops, sizeof oops - 1);
    }
    size_t n = strlen(text);
    char *withnl = lb_malloc(n + 2);
    memcpy(withnl, text, n);
    withnl[n] = '\n';
    free(text);
    enum MHD_Result rc = srv_send_text(cc, status, "application/json", withnl, n + 1);
    free(withnl);
    return rc;
}

static const char *error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "method_not_allowed";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

enum MHD_Result srv_send_error(srv_conn *cc, int status, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:{s:s, s:s, s:o, s:n}}", "error", "message", msg, "type",
                          error_type(status), "param", param ? json_string(param) : json_null(),
                          "code");
    return srv_send_json(cc, status, e);
}

enum MHD_Result srv_send_bad(srv_conn *cc, const char *param, const lb_error *err)
{
    return srv_send_error(cc, 400, param, "%s", err->msg);
}

bool srv_client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return true;
    struct pollfd p = {info->connect_fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return true;
    /* Readable: either the peer closed (recv gives 0) or it sent more (a pipelined request). */
    char b;
    ssize_t n = recv(info->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

bool srv_wait_done(srv_server *s, srv_sched *sc, srv_req *r, struct MHD_Connection *c)
{
    (void)s;
    for (;;) {
        srv_sched_lock(sc);
        bool done = r->state == REQ_DONE;
        size_t seen = r->out.n;
        srv_sched_unlock(sc);
        if (done)
            return true;
        srv_sched_wait(sc, r, seen, 50);
        if (srv_client_gone(c))
            return false;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv_server *s = cls;
    srv_conn *cc = *con_cls;
    if (!cc) {
        cc = lb_calloc(1, sizeof *cc);
        cc->c = c;
        cc->method = method;
        cc->endpoint = "unknown";
        *con_cls = cc;
        /* Everything that does not need the body is answered before it is read. */
        const route *hit = NULL;
        bool path_known = false;
        for (size_t i = 0; i < N_ROUTES; i++)
            if (path_matches(routes[i].path, url)) {
                path_known = true;
                cc->endpoint = routes[i].label;
                if (strcmp(routes[i].method, method) == 0) {
                    hit = &routes[i];
                    break;
                }
            }
        if (!path_known)
            return srv_send_error(cc, 404, NULL, "no such endpoint: %s %s", method, url);
        if (!hit)
            return srv_send_error(cc, 405, NULL, "%s does not answer %s", url, method);
        if (!hit->open && s->cfg.api_key && s->cfg.api_key[0]) {
            const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
            if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, s->cfg.api_key) != 0)
                return srv_send_error(cc, 401, NULL, "missing or wrong API key (send Authorization: Bearer KEY)");
        }
        if (hit->model && !s->ready)
            return srv_send_error(cc, 503, NULL, "the models are still loading");
        if (hit->model && s->draining)
            return srv_send_error(cc, 503, NULL, "the server is shutting down");
        const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (len && strtoull(len, NULL, 10) > s->cfg.max_body)
            return srv_send_error(cc, 413, NULL, "request body of %s bytes is over the limit of %zu", len, s->cfg.max_body);
        return MHD_YES;
    }
    if (cc->status)       /* answered early; the rest of the body is dropped */
    {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cc->body.n + *upload_size > s->cfg.max_body)
            cc->too_large = true;
        else
            lb_buf_append(&cc->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (cc->too_large)
        return srv_send_error(cc, 413, NULL, "request body is over the limit of %zu bytes", s->cfg.max_body);
    for (size_t i = 0; i < N_ROUTES; i++)
        if (path_matches(routes[i].path, url) && strcmp(routes[i].method, method) == 0)
            return routes[i].fn(s, cc, url);
    return srv_send_error(cc, 404, NULL, "no such endpoint: %s %s", method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    srv_server *s = cls;
    srv_conn *cc = *con_cls;
    if (!cc)
        return;
    if (cc->status)
        srv_metrics_request(s->metrics, cc->endpoint, cc->status);
    lb_buf_free(&cc->body);
    free(cc);
    *con_cls = NULL;
}

int srv_http_start(srv_server *s, const struct sockaddr *addr, lb_error *err)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ITC;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                                 MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1u << 20),
                                 MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                                 MHD_OPTION_END);
    if (!s->daemon)
        return lb_fail(err, "cannot listen on %s: %s (address in use, or not an address of this machine?)",
                       s->cfg.addr, strerror(errno));
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    return 0;
}

void srv_http_quiesce(srv_server *s)
{
    if (!s->daemon)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void srv_http_stop(srv_server *s)
{
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
