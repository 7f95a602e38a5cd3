/* The server's request bodies, straight into the functions that turn them into request
 * parameters (no sockets): each input is one body given to POST /generate, /v1/completions,
 * /v1/chat/completions (its messages rendered with every chat template) and /evaluate in
 * turn, as the handlers would. Whatever a reader accepts must be within the bounds it
 * promises; a refusal must name a field and say why. Generated-text helpers (UTF-8 repair,
 * whole-character cuts) get the raw bytes too. */
#include "fuzz.h"
#include "server/internal.h"

#include <string.h>

enum { N_CTX = 512 };

static void refused(int rc, const char *param, const lb_error *err, bool needs_param)
{
    if (rc == 0) return;
    /* the one field with an empty name is a key "" the body itself holds */
    bool named = param[0] || strncmp(err->msg, "unknown field ''", 16) == 0;
    if (!err->msg[0] || (needs_param && !named)) {
        fprintf(stderr, "a refusal without a field or a reason: [%s] [%s]\n", param, err->msg);
        abort();
    }
}

static void check_stop(const char *const *stop, int n, int max)
{
    if (n < 0 || n > max) abort();
    for (int i = 0; i < n; i++)
        if (!stop[i] || !stop[i][0]) abort();
}

static void generate(json_t *body)
{
    char param[128] = "";
    lb_error err = {{0}};
    srv_gen_params p = {.max_new = 64, .top_k = 40, .seed = -1, .temperature = 0.8, .top_p = 1.0};
    int rc = srv_generate_params(body, N_CTX, &p, param, sizeof param, &err);
    refused(rc, param, &err, true);
    if (rc == 0) {
        if (!p.prompt || p.max_new < 1 || p.max_new > N_CTX || p.top_k < 0 || !(p.top_p > 0) ||
            p.top_p > 1 || !(p.temperature >= 0) || p.temperature > 100 || p.seed < -1)
            abort();
        check_stop(p.stop, p.n_stop, 4);
    }
}

static void openai(json_t *body, bool chat)
{
    srv_config cfg = {.max_new_tokens = 64, .temperature = 0.8f, .top_k = 40};
    char param[128] = "";
    lb_error err = {{0}};
    srv_oa_params p;
    srv_oa_defaults(&cfg, &p);
    int rc = chat ? srv_chat_params(body, N_CTX, &p, param, sizeof param, &err)
                  : srv_completions_params(body, N_CTX, &p, param, sizeof param, &err);
    refused(rc, param, &err, true);
    if (rc) return;
    if (p.max_tokens < 1 || p.max_tokens > N_CTX || p.n != 1 || p.top_k < 0 ||
        !(p.top_p > 0) || p.top_p > 1 || p.logprobs > 5 || p.top_logprobs < 0 ||
        p.top_logprobs > 20)
        abort();
    check_stop(p.stop, p.n_stop, 4);
    if (!chat) {
        if (!p.prompt) abort();
        return;
    }
    static const char *const kinds[] = {"chatml", "llama3", "llama2", "zephyr"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        lb_buf out = {0};
        const char *stop = NULL;
        char mparam[128] = "";
        lb_error merr = {{0}};
        int mrc = srv_chat_render(kinds[k], p.messages, &out, &stop, mparam, sizeof mparam, &merr);
        refused(mrc, mparam, &merr, true);
        if (mrc == 0 && (!stop || !out.v || strlen(out.v) != out.n)) abort();
        lb_buf_free(&out);
    }
}

static void evaluate(json_t *body)
{
    char param[128] = "";
    lb_error err = {{0}};
    srv_eval_params p = {.runs = 5, .max_new = 32, .limit = 8, .ctx = 256,
                         .prompt = "Once upon a time"};
    int rc = srv_evaluate_params(body, N_CTX, &p, param, sizeof param, &err);
    refused(rc, param, &err, true);
    if (rc == 0) {
        if (p.runs < 1 || p.runs > 100 || p.max_new < 1 || p.max_new > 256 || p.limit < 1 ||
            p.limit > 256 || p.ctx < 16 || p.ctx > N_CTX || !p.prompt)
            abort();
        if (p.dataset && strcmp(p.dataset, "wikitext2") && strcmp(p.dataset, "c4") &&
            strcmp(p.dataset, "tinystories"))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* helpers for generated text: the repaired string is valid JSON text, the cut is a prefix */
    size_t cut = srv_utf8_complete((const char *)data, size);
    if (cut > size) abort();
    json_t *text = srv_json_text((const char *)data, size);
    if (!json_is_string(text)) abort();
    json_decref(text);

    lb_error err = {{0}};
    json_t *body = srv_body_json((const char *)data, size, &err);
    if (!body) {
        refused(-1, "", &err, false);
        return 0;
    }
    if (!json_is_object(body)) abort();
    generate(body);
    openai(body, false);
    openai(body, true);
    evaluate(body);
    json_decref(body);
    return 0;
}
