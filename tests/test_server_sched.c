/* The continuous-batching scheduler against the library's own single-sequence loop: requests
 * run together in one engine (prompts of different lengths, greedy and seeded sampling, stop
 * strings, a token limit) give exactly the text, token count and stop reason lb_generate gives
 * for each alone; a cancelled request frees its slot; a full queue refuses. */
#include "check.h"
#include "core/timer.h"
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *prompt;
    int max_new;
    float temp;
    uint64_t seed;
    const char *stop;
} job;

static void wait_done(srv_sched *s, srv_req *r)
{
    double until = lb_now_ms() + 60000;
    for (;;) {
        srv_sched_lock(s);
        bool done = r->state == REQ_DONE;
        size_t seen = r->out.n;
        srv_sched_unlock(s);
        if (done || lb_now_ms() > until)
            return;
        srv_sched_wait(s, r, seen, 50);
    }
}

int main(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", test_env("LOWBIT_SHARED"));
    lb_error err;
    lb_model *m;
    if (lb_model_load(path, NULL, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    lb_engine *batch_engine, *solo_engine;
    if (lb_engine_create(m, 512, 4, 1, &batch_engine, &err) || lb_engine_create(m, 512, 1, 1, &solo_engine, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    srv_metrics *metrics = srv_metrics_create();
    srv_sched *s = srv_sched_create(batch_engine, metrics, "test");

    const job jobs[] = {
        {"", 61, 0, 0, NULL},
        {"Once upon a time", 40, 0, 0, "Lily"},
        {"Tom and his dog went to the park. They saw a big tree and", 30, 0, 0, NULL},
        {"Lily", 50, 1.0f, 7, NULL},
        {"The sun", 50, 0.8f, 8, ". "},
        {"One day, a little bird", 3, 0, 0, NULL},
        {"She was happy", 45, 1.2f, 9, NULL},
        {"A cat", 60, 0, 0, "dog"},
        {"Ben liked to play with his red ball every day after school with his friends", 25, 0.7f, 10, NULL},
        {"Mom said", 40, 0.9f, 11, "\""},
    };
    enum { N = sizeof jobs / sizeof jobs[0] };
    srv_req *reqs[N];
    /* Ten requests on four slots: six wait in the queue and join as slots free. */
    for (int i = 0; i < N; i++) {
        int *ids, n;
        CHECK(tok_encode(m->tok, jobs[i].prompt, strlen(jobs[i].prompt), true, &ids, &n, &err) == 0, "%s", err.msg);
        lb_sampling sp = lb_sampling_defaults();
        sp.temperature = jobs[i].temp;
        sp.seed = jobs[i].seed;
        const char *stop[1] = {jobs[i].stop};
        reqs[i] = srv_req_new(ids, n, jobs[i].max_new, &sp, stop, jobs[i].stop ? 1 : 0, -1);
        free(ids);
        CHECK(srv_sched_submit(s, reqs[i], 64) == 0, "submit %d", i);
    }
    for (int i = 0; i < N; i++)
        wait_done(s, reqs[i]);

    for (int i = 0; i < N; i++) {
        lb_gen_params gp = lb_gen_defaults();
        gp.max_new_tokens = jobs[i].max_new;
        gp.sampling = lb_sampling_defaults();
        gp.sampling.temperature = jobs[i].temp;
        gp.sampling.seed = jobs[i].seed;
        const char *stop[1] = {jobs[i].stop};
        gp.stop = stop;
        gp.n_stop = jobs[i].stop ? 1 : 0;
        lb_gen_result res;
        CHECK(lb_generate(solo_engine, 0, jobs[i].prompt, &gp, NULL, NULL, &res, &err) == 0, "%s", err.msg);
        srv_req *r = reqs[i];
        srv_sched_lock(s);
        bool done = r->state == REQ_DONE && !r->failed;
        char *text = lb_strndup(r->out.v ? r->out.v : "", r->out.n);
        int n_gen = r->n_generated;
        lb_stop_reason reason = r->reason;
        srv_sched_unlock(s);
        CHECK(done, "request %d finished", i);
        CHECK(strcmp(text, res.text) == 0, "request %d (%s): batched [%s], alone [%s]", i, jobs[i].prompt, text, res.text);
        CHECK(n_gen == res.n_generated, "request %d: %d tokens batched, %d alone", i, n_gen, res.n_generated);
        CHECK(reason == res.stop_reason, "request %d: stop %s batched, %s alone", i, lb_stop_reason_name(reason),
              lb_stop_reason_name(res.stop_reason));
        if (i == 0)
            CHECK(strncmp(text, "Once upon a time, there was a little girl named Lily.", 53) == 0, "Lily: %s", text);
        if (i == 1)
            CHECK(reason == LB_STOP_STRING && strcmp(text, ", there was a little girl named ") == 0, "stop: %s", text);
        free(text);
        lb_gen_result_free(&res);
        srv_sched_release(s, r);
    }

    /* A cancelled request leaves its slot at the next step. Greedy from "Once" never ends
     * before the context does (510 tokens), so these requests are surely still running. */
    int *ids, n;
    tok_encode(m->tok, "Once", 4, true, &ids, &n, &err);
    lb_sampling sp = lb_sampling_defaults();
    sp.temperature = 0;
    srv_req *longr = srv_req_new(ids, n, 400, &sp, NULL, 0, -1);
    CHECK(srv_sched_submit(s, longr, 64) == 0, "submit long");
    int queued, busy, kv;
    double until = lb_now_ms() + 10000;
    do {
        srv_sched_load(s, &queued, &busy, &kv);
    } while (busy == 0 && lb_now_ms() < until);
    srv_sched_release(s, longr);
    until = lb_now_ms() + 10000;
    do {
        srv_sched_load(s, &queued, &busy, &kv);
        if (busy)
            usleep(1000);
    } while (busy && lb_now_ms() < until);
    CHECK(busy == 0 && queued == 0 && kv == 0, "slot freed after cancel: busy %d queued %d kv %d", busy, queued, kv);

    /* With every slot busy and no room in the queue, a submission is refused. */
    srv_req *hold[4];
    for (int i = 0; i < 4; i++) {
        hold[i] = srv_req_new(ids, n, 2000, &sp, NULL, 0, -1);
        CHECK(srv_sched_submit(s, hold[i], 0) == 0, "slot %d taken", i);
    }
    srv_req *extra = srv_req_new(ids, n, 10, &sp, NULL, 0, -1);
    until = lb_now_ms() + 10000;
    do {
        srv_sched_load(s, &queued, &busy, &kv);
    } while (busy < 4 && lb_now_ms() < until);
    CHECK(srv_sched_submit(s, extra, 0) == -1, "a fifth request with max_queue 0 is refused");
    CHECK(srv_sched_submit(s, extra, 1) == 0, "with room for one in the queue it waits");
    srv_sched_release(s, extra);
    for (int i = 0; i < 4; i++)
        srv_sched_release(s, hold[i]);
    free(ids);

    srv_sched_free(s);
    srv_metrics_free(metrics);
    lb_engine_free(batch_engine);
    lb_engine_free(solo_engine);
    lb_model_free(m);
    return check_finish("test_server_sched");
}
