/* Single-sequence generation loop. */
#include "model/generate.h"
#include "core/timer.h"
#include "core/vec.h"

#include <stdlib.h>
#include <string.h>

#define PREFILL_CHUNK 256

lb_gen_params lb_gen_defaults(void)
{
    return (lb_gen_params){.max_new_tokens = 64, .sampling = lb_sampling_defaults(),
                           .add_special = true};
}

const char *lb_stop_reason_name(lb_stop_reason r)
{
    static const char *names[] = {"eos", "length", "stop", "context", "caller"};
    return names[r];
}

void lb_gen_result_free(lb_gen_result *r)
{
    free(r->text);
    r->text = NULL;
}

/* Longest suffix of text that is a proper prefix of some stop string: held back from the
 * stream until it is known not to start a stop string. */
static size_t held_back(const char *text, size_t len, const char *const *stop, int n_stop)
{
    size_t hold = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        for (size_t k = sl > 1 ? sl - 1 : 0; k > hold; k--)
            if (k <= len && memcmp(text + len - k, stop[i], k) == 0) {
                hold = k;
                break;
            }
    }
    return hold;
}

void lb_textstream_init(lb_textstream *ts, const char *const *stop, int n_stop)
{
    memset(ts, 0, sizeof *ts);
    ts->stop = stop;
    ts->n_stop = n_stop;
}

void lb_textstream_free(lb_textstream *ts)
{
    lb_buf_free(&ts->text);
    ts->emitted = 0;
}

bool lb_textstream_push(lb_textstream *ts, const char *piece, size_t n, size_t *from, size_t *len)
{
    lb_buf *text = &ts->text;
    lb_buf_append(text, piece, n);
    /* A stop string ends the text before it; otherwise stream all but a possible prefix. */
    size_t safe = text->n;
    bool stopped = false;
    for (int i = 0; i < ts->n_stop; i++) {
        /* Text before `emitted` cannot start a stop string: such prefixes are held back. */
        const char *hit = ts->stop[i][0] ? strstr(lb_buf_cstr(text) + ts->emitted, ts->stop[i]) : NULL;
        if (hit && (size_t)(hit - text->v) < safe) {
            safe = (size_t)(hit - text->v);
            stopped = true;
        }
    }
    if (!stopped)
        safe = text->n - held_back(text->v, text->n, ts->stop, ts->n_stop);
    *from = ts->emitted;
    *len = safe > ts->emitted ? safe - ts->emitted : 0;
    if (safe > ts->emitted)
        ts->emitted = safe;
    if (stopped)
        text->n = safe;
    return stopped;
}

void lb_textstream_flush(lb_textstream *ts, size_t *from, size_t *len)
{
    *from = ts->emitted;
    *len = ts->text.n > ts->emitted ? ts->text.n - ts->emitted : 0;
    ts->emitted = ts->text.n;
}

bool lb_token_ends_text(const lb_tokenizer *tok, int id)
{
    return id == tok->eos_id || (tok->types[id] == LB_TOKEN_CONTROL && id != tok->bos_id);
}

static int prefill(lb_engine *e, int seq, const int *ids, int n, float *logits, lb_error *err)
{
    int *pos = lb_malloc(PREFILL_CHUNK * sizeof(int)), *seqs = lb_malloc(PREFILL_CHUNK * sizeof(int));
    int rc = 0;
    for (int start = 0; start < n && rc == 0; start += PREFILL_CHUNK) {
        int m = n - start < PREFILL_CHUNK ? n - start : PREFILL_CHUNK;
        for (int i = 0; i < m; i++) {
            pos[i] = start + i;
            seqs[i] = seq;
        }
        lb_batch b = {m, ids + start, pos, seqs, NULL};
        rc = lb_engine_forward(e, &b, logits, err);
    }
    free(pos);
    free(seqs);
    return rc;
}

int lb_generate(lb_engine *e, int seq, const char *prompt, const lb_gen_params *params,
                lb_piece_fn on_piece, void *user, lb_gen_result *result, lb_error *err)
{
    memset(result, 0, sizeof *result);
    const lb_model *m = lb_engine_model(e);
    const lb_tokenizer *tok = m->tok;
    if (lb_sampling_check(&params->sampling, err))
        return -1;
    if (params->max_new_tokens < 0)
        return lb_fail(err, "max_new_tokens %d is negative", params->max_new_tokens);
    double t0 = lb_now_ms();
    int *ids, n_ids;
    if (tok_encode(tok, prompt, strlen(prompt), params->add_special, &ids, &n_ids, err))
        return -1;
    if (n_ids == 0) {
        free(ids);
        return lb_fail(err, "empty prompt and the tokenizer has no BOS token to start from");
    }
    int n_ctx = lb_engine_n_ctx(e);
    if (n_ids >= n_ctx) {
        free(ids);
        return lb_fail(err, "prompt of %d tokens does not fit the context of %d tokens "
                       "(leave room for at least one new token)", n_ids, n_ctx);
    }
    int vocab = m->cfg.vocab_size;
    float *logits = lb_malloc((size_t)vocab * sizeof(float));
    lb_ivec history = {0};
    for (int i = 0; i < n_ids; i++)
        lb_ivec_push(&history, ids[i]);
    result->n_prompt = n_ids;
    int rc = prefill(e, seq, ids, n_ids, logits, err);
    free(ids);
    double t1 = lb_now_ms();
    result->prefill_ms = t1 - t0;

    lb_sampler *s = lb_sampler_create(&params->sampling, vocab);
    lb_textstream ts;
    lb_textstream_init(&ts, params->stop, params->n_stop);
    size_t from, len;
    char piece[1024];
    result->stop_reason = LB_STOP_LENGTH;
    for (int step = 0; rc == 0 && step < params->max_new_tokens; step++) {
        int next = lb_sampler_sample(s, logits, history.v, history.n);
        if (lb_token_ends_text(tok, next)) {
            result->stop_reason = LB_STOP_EOS;
            break;
        }
        int prev = history.v[history.n - 1];
        lb_ivec_push(&history, next);
        result->n_generated++;
        int plen = tok_decode_token(tok, prev, next, piece, sizeof piece);
        bool stopped = lb_textstream_push(&ts, piece, (size_t)plen, &from, &len);
        if (len > 0 && on_piece && on_piece(ts.text.v + from, len, user)) {
            result->stop_reason = LB_STOP_CALLER;
            break;
        }
        if (stopped) {
            result->stop_reason = LB_STOP_STRING;
            break;
        }
        if (step + 1 == params->max_new_tokens)
            break;
        if (history.n >= n_ctx) {
            result->stop_reason = LB_STOP_CONTEXT;
            break;
        }
        int pos = history.n - 1;
        lb_batch b = {1, &next, &pos, &seq, NULL};
        rc = lb_engine_forward(e, &b, logits, err);
    }
    /* Flush anything held back for a stop string that never came. */
    if (rc == 0 && result->stop_reason != LB_STOP_STRING && result->stop_reason != LB_STOP_CALLER) {
        lb_textstream_flush(&ts, &from, &len);
        if (len > 0 && on_piece)
            on_piece(ts.text.v + from, len, user);
    }
    double t2 = lb_now_ms();
    result->decode_ms = t2 - t1;
    result->total_ms = t2 - t0;
    result->text = lb_buf_cstr(&ts.text);
    lb_sampler_free(s);
    lb_ivec_free(&history);
    free(logits);
    if (rc)
        lb_gen_result_free(result);
    return rc;
}
