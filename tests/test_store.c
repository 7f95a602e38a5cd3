/* Results store: a run written through the API reads back the same; resume finds the
 * unfinished run; a writer killed with SIGKILL in the middle of its transactions leaves a
 * database that passes SQLite's integrity check and holds whole stages only. */
#include "check.h"
#include "pipeline/store.h"

#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { ROWS_PER_STAGE = 40 };

static json_t *rows(int stage, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:f, s:n, s:i, s:f, s:{s:i}}", "model", "m.gguf",
                                           "format", "F32", "task", "bench", "metric", "latency_p50_ms",
                                           "value", stage * 1000.0 + i, "stderr", "n", i, "seconds", 0.5,
                                           "params", "batch", i + 1));
    return a;
}

static void round_trip(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rt.db", dir);
    unlink(path);
    lb_store *s;
    lb_error err;
    CHECK(lb_store_open(path, &s, &err) == 0, "%s", err.msg);
    lb_machine mach;
    lb_machine_probe(&mach);
    CHECK(mach.cores >= 1 && mach.mem_bytes > 0 && mach.cpu[0], "machine %s %d %lld", mach.cpu, mach.cores,
          (long long)mach.mem_bytes);
    const lb_run_info ri = {"c.yaml", "model: x\n", "abc123", "0.1.0", "out"};
    int64_t run, mb, mq, modb, modq;
    CHECK(lb_store_run_begin(s, &ri, &mach, &run, &err) == 0, "%s", err.msg);
    CHECK(lb_store_method(s, run, "baseline", "none", NULL, &mb, &err) == 0, "%s", err.msg);
    CHECK(lb_store_method(s, run, "gptq4", "gptq", "{\"bits\":4}", &mq, &err) == 0, "%s", err.msg);
    int64_t again;
    CHECK(lb_store_method(s, run, "gptq4", "gptq", "{\"bits\":4,\"group_size\":128}", &again, &err) == 0, "%s", err.msg);
    CHECK(again == mq, "upsert kept the id: %lld vs %lld", (long long)again, (long long)mq);
    CHECK(lb_store_model(s, run, mb, "base.gguf", "baseline", 1000, 32.0, &modb, &err) == 0, "%s", err.msg);
    CHECK(lb_store_model(s, run, mq, "q.gguf", "gptq-int4-g128", 200, 4.5, &modq, &err) == 0, "%s", err.msg);
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:i, s:f, s:{s:i}}", "model", "q.gguf", "format", "Q4",
                          "task", "wikitext2", "metric", "perplexity", "value", 12.5, "stderr", 0.25, "n", 4096,
                          "seconds", 1.5, "params", "ctx", 256);
    json_t *arr = json_pack("[o]", r);
    CHECK(lb_store_stage(s, run, "k1", "perplexity", "perplexity gptq4 wikitext2", "running", NAN, false, &err) == 0, "%s", err.msg);
    CHECK(lb_store_results(s, run, mq, modq, "k1", arr, &err) == 0, "%s", err.msg);
    /* Importing the same stage again replaces its rows. */
    CHECK(lb_store_results(s, run, mq, modq, "k1", arr, &err) == 0, "%s", err.msg);
    json_decref(arr);
    json_t *bad = json_pack("[{s:s}]", "model", "x");
    CHECK(lb_store_results(s, run, mq, modq, "k2", bad, &err) == -1 && strstr(err.msg, "results[0]"),
          "row without task refused: %s", err.msg);
    json_decref(bad);

    int64_t unfinished;
    CHECK(lb_store_unfinished_run(s, "abc123", &unfinished, &err) == 0 && unfinished == run, "unfinished %lld",
          (long long)unfinished);
    CHECK(lb_store_run_end(s, run, "finished", &err) == 0, "%s", err.msg);
    CHECK(lb_store_unfinished_run(s, "abc123", &unfinished, &err) == 0 && unfinished == 0, "finished run not resumed");

    lb_store_run got;
    CHECK(lb_store_load_run(s, run, &got, &err) == 0, "%s", err.msg);
    CHECK(got.n_methods == 2 && got.n_results == 1 && got.n_stages == 1, "counts %d %d %d", got.n_methods,
          got.n_results, got.n_stages);
    if (got.n_results == 1 && got.n_methods == 2) {
        lb_store_result_row *x = &got.results[0];
        CHECK(x->m && strcmp(x->m->name, "gptq4") == 0, "result linked to its method");
        CHECK(x->value == 12.5 && x->stderr_ == 0.25 && x->n == 4096 && x->seconds == 1.5, "values");
        CHECK(strcmp(x->task, "wikitext2") == 0 && strcmp(x->metric, "perplexity") == 0, "names");
        CHECK(strcmp(x->params, "{\"ctx\":256}") == 0, "params %s", x->params);
        CHECK(strcmp(got.methods[1].options, "{\"bits\":4,\"group_size\":128}") == 0, "options %s", got.methods[1].options);
        CHECK(got.methods[1].model_bytes == 200 && got.methods[1].bpw == 4.5 &&
              strcmp(got.methods[1].format, "gptq-int4-g128") == 0, "model row");
        CHECK(strcmp(got.stages[0].status, "done") == 0, "stage %s", got.stages[0].status);
        CHECK(strcmp(got.status, "finished") == 0 && got.finished[0], "run status %s", got.status);
        CHECK(strcmp(got.config_text, "model: x\n") == 0 && strcmp(got.machine.cpu, mach.cpu) == 0, "header");
    }
    lb_store_run_free(&got);
    CHECK(lb_store_load_run(s, 99, &got, &err) == -1 && strstr(err.msg, "no run 99"), "%s", err.msg);
    lb_store_run *list;
    int n;
    CHECK(lb_store_list_runs(s, &list, &n, &err) == 0 && n == 1 && list[0].n_results == 1, "list");
    lb_store_runs_free(list, n);
    lb_store_close(s);

    /* A file that is not a database is refused with its name. */
    snprintf(path, sizeof path, "%s/not.db", dir);
    FILE *f = fopen(path, "w");
    fputs("this is not sqlite, it is just text that is long enough to look like a header.......", f);
    fclose(f);
    CHECK(lb_store_open(path, &s, &err) == -1 && strstr(err.msg, "not.db"), "%s", err.msg);
}

static void killed_writer(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/kill.db", dir);
    unlink(path);
    lb_store *s;
    lb_error err;
    lb_machine mach = {"cpu", 1, 1};
    const lb_run_info ri = {"c.yaml", "", "h", "0", "out"};
    int64_t run, m;
    CHECK(lb_store_open(path, &s, &err) == 0, "%s", err.msg);
    CHECK(lb_store_run_begin(s, &ri, &mach, &run, &err) == 0, "%s", err.msg);
    CHECK(lb_store_method(s, run, "a", "rtn", NULL, &m, &err) == 0, "%s", err.msg);
    lb_store_close(s);

    pid_t pid = fork();
    if (pid == 0) {
        if (lb_store_open(path, &s, &err))
            _exit(2);
        for (int st = 0;; st++) {
            char key[32];
            snprintf(key, sizeof key, "stage-%d", st);
            json_t *a = rows(st, ROWS_PER_STAGE);
            if (lb_store_results(s, run, m, 0, key, a, &err))
                _exit(3);
            json_decref(a);
        }
    }
    /* Let it write for a while, then kill it wherever it is. */
    struct timespec ts = {0, 400 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status), "writer was killed (status %d)", status);

    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK, "reopen");
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL);
    CHECK(sqlite3_step(q) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0,
          "integrity_check: %s", sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);

    CHECK(lb_store_open(path, &s, &err) == 0, "%s", err.msg);
    lb_store_run got;
    CHECK(lb_store_load_run(s, run, &got, &err) == 0, "%s", err.msg);
    CHECK(got.n_stages > 0, "the writer committed some stages before it was killed");
    CHECK(got.n_results == got.n_stages * ROWS_PER_STAGE, "%d rows for %d stages: whole stages only",
          got.n_results, got.n_stages);
    for (int i = 0; i < got.n_stages; i++)
        CHECK(strcmp(got.stages[i].status, "done") == 0, "stage %s: %s", got.stages[i].key, got.stages[i].status);
    printf("killed writer: %d whole stages, %d rows\n", got.n_stages, got.n_results);
    /* And the database is writable again. */
    json_t *a = rows(999, 3);
    CHECK(lb_store_results(s, run, m, 0, "after", a, &err) == 0, "%s", err.msg);
    json_decref(a);
    lb_store_run_free(&got);
    lb_store_close(s);
}

int main(void)
{
    char dir[] = "/tmp/lowbit-store-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    round_trip(dir);
    killed_writer(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("test_store");
}
