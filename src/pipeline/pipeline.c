/* Pipeline driver: stages as child processes of this program, cached by a hash of their
 * inputs, results imported into the store, the report written at the end. */
#include "pipeline/pipeline.h"

#include "core/dist.h"
#include "core/file.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/threadpool.h"
#include "core/timer.h"
#include "core/vec.h"
#include "model/model.h"
#include "pipeline/config.h"
#include "pipeline/store.h"
#include "report/report.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_ARGS = 48 };

typedef struct {
    char kind[16];        /* quantize, perplexity, kld, mc, bench */
    char name[256];       /* "perplexity gptq-4bit wikitext2" */
    int model;            /* index into the pipeline's models; 0 is the baseline */
    char *argv[MAX_ARGS]; /* without the program; owned */
    int argc;
    const char *inputs[4];/* files whose identity is part of the key */
    int n_inputs;
    char key[65];
    char *file;           /* stage file: <out>/stages/<kind>-<model>-<key16>.json */
    bool selected;
    enum { ST_PENDING, ST_RUNNING, ST_CACHED, ST_DONE, ST_FAILED, ST_SKIPPED } state;
    char tmp[4200];       /* while running: the output under a temporary name */
    pid_t pid;            /* while running here: the child */
    double t0;
} stage;

typedef struct {
    char *name;           /* "baseline" or the method's name */
    char *path;
    char format[64];
    int quantize_stage;   /* -1 for the baseline */
    int64_t method_id, model_id;
} pl_model;

typedef struct {
    const lb_pl_options *o;
    lb_pl_config cfg;
    char *out, *db_path, *report_dir, *stage_dir, *model_dir;
    pl_model *models;
    int n_models;
    stage *stages;
    int n_stages;
    lb_store *store;
    int64_t run_id;
} pipeline;

static void add_arg(stage *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_arg(stage *s, const char *fmt, ...)
{
    if (s->argc >= MAX_ARGS - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s->argv[s->argc], fmt, ap) < 0)
        s->argv[s->argc] = lb_strdup("");
    va_end(ap);
    s->argc++;
}

static stage *new_stage(pipeline *p, const char *kind, int model)
{
    p->stages = lb_realloc(p->stages, (size_t)(p->n_stages + 1) * sizeof *p->stages);
    stage *s = &p->stages[p->n_stages++];
    memset(s, 0, sizeof *s);
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    s->model = model;
    add_arg(s, "%s", kind);
    return s;
}

static void method_format(const lb_pl_method *m, char *out, size_t n)
{
    if (strcmp(m->method, "smoothquant") == 0)
        snprintf(out, n, "smoothquant-w8a8");
    else if (m->group_size)
        snprintf(out, n, "%s-int%d-g%d", m->method, m->bits, m->group_size);
    else
        snprintf(out, n, "%s-int%d", m->method, m->bits);
}

/* The stage list, in the order they run: quantizers first (everything else reads their
 * models), then per model the evaluations and the benchmark. */
static void plan(pipeline *p)
{
    const lb_pl_config *c = &p->cfg;
    p->models = lb_calloc((size_t)c->n_methods + 1, sizeof *p->models);
    p->models[0].name = lb_strdup("baseline");
    p->models[0].path = lb_strdup(c->model);
    p->models[0].quantize_stage = -1;
    snprintf(p->models[0].format, sizeof p->models[0].format, "baseline");
    p->n_models = 1;
    for (int i = 0; i < c->n_methods; i++) {
        const lb_pl_method *m = &c->methods[i];
        pl_model *pm = &p->models[p->n_models];
        char file[300];
        snprintf(file, sizeof file, "%s.gguf", m->name);
        pm->name = lb_strdup(m->name);
        pm->path = lb_path_join(p->model_dir, file);
        method_format(m, pm->format, sizeof pm->format);
        pm->quantize_stage = p->n_stages;
        stage *s = new_stage(p, "quantize", p->n_models);
        snprintf(s->name, sizeof s->name, "quantize %s", m->name);
        add_arg(s, "-m"); add_arg(s, "%s", c->model);
        add_arg(s, "--method"); add_arg(s, "%s", m->method);
        add_arg(s, "--bits"); add_arg(s, "%d", m->bits);
        add_arg(s, "--group-size"); add_arg(s, "%d", m->group_size);
        if (m->act_order) add_arg(s, "--act-order");
        if (m->sym_set) add_arg(s, "%s", m->sym ? "--sym" : "--asym");
        if (!isnan(m->alpha)) { add_arg(s, "--alpha"); add_arg(s, "%g", m->alpha); }
        if (!isnan(m->damp)) { add_arg(s, "--damp"); add_arg(s, "%g", m->damp); }
        s->inputs[s->n_inputs++] = c->model;
        if (c->calib_file && strcmp(m->method, "rtn")) {
            add_arg(s, "--calib"); add_arg(s, "%s", c->calib_file);
            add_arg(s, "--calib-samples"); add_arg(s, "%d", c->calib_samples);
            add_arg(s, "--calib-seqlen"); add_arg(s, "%d", c->calib_seqlen);
            s->inputs[s->n_inputs++] = c->calib_file;
        }
        add_arg(s, "-o"); add_arg(s, "%s", pm->path);
        p->n_models++;
    }
    for (int mi = 0; mi < p->n_models; mi++) {
        pl_model *pm = &p->models[mi];
        for (int d = 0; d < c->n_ppl; d++) {
            stage *s = new_stage(p, "perplexity", mi);
            const char *base = strrchr(c->ppl[d], '/') ? strrchr(c->ppl[d], '/') + 1 : c->ppl[d];
            snprintf(s->name, sizeof s->name, "perplexity %s %s", pm->name, base);
            add_arg(s, "-m"); add_arg(s, "%s", pm->path);
            add_arg(s, "-f"); add_arg(s, "%s", c->ppl[d]);
            if (c->ctx) { add_arg(s, "--ctx"); add_arg(s, "%d", c->ctx); }
            if (c->ppl_chunks) { add_arg(s, "--chunks"); add_arg(s, "%d", c->ppl_chunks); }
            add_arg(s, "--json");
            s->inputs[s->n_inputs++] = pm->path;
            if (!lb_pl_known_dataset(c->ppl[d]))
                s->inputs[s->n_inputs++] = c->ppl[d];
        }
        if (c->kld && mi > 0) {
            stage *s = new_stage(p, "kld", mi);
            snprintf(s->name, sizeof s->name, "kld %s", pm->name);
            add_arg(s, "-m"); add_arg(s, "%s", pm->path);
            add_arg(s, "--base"); add_arg(s, "%s", c->model);
            add_arg(s, "-f"); add_arg(s, "%s", c->ppl[0]);
            if (c->ctx) { add_arg(s, "--ctx"); add_arg(s, "%d", c->ctx); }
            if (c->ppl_chunks) { add_arg(s, "--chunks"); add_arg(s, "%d", c->ppl_chunks); }
            add_arg(s, "--json");
            s->inputs[s->n_inputs++] = pm->path;
            s->inputs[s->n_inputs++] = c->model;
            if (!lb_pl_known_dataset(c->ppl[0]))
                s->inputs[s->n_inputs++] = c->ppl[0];
        }
        for (int t = 0; t < c->n_tasks; t++) {
            stage *s = new_stage(p, "mc", mi);
            snprintf(s->name, sizeof s->name, "mc %s %s", pm->name, c->tasks[t]);
            add_arg(s, "-m"); add_arg(s, "%s", pm->path);
            add_arg(s, "--task"); add_arg(s, "%s", c->tasks[t]);
            if (c->limit) { add_arg(s, "--limit"); add_arg(s, "%d", c->limit); }
            add_arg(s, "--json");
            s->inputs[s->n_inputs++] = pm->path;
        }
        if (c->bench) {
            stage *s = new_stage(p, "bench", mi);
            snprintf(s->name, sizeof s->name, "bench %s", pm->name);
            add_arg(s, "-m"); add_arg(s, "%s", pm->path);
            char list[512] = "";
            for (int b = 0; b < c->n_batch; b++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", b ? "," : "", c->batch_sizes[b]);
            add_arg(s, "--batch"); add_arg(s, "%s", list);
            add_arg(s, "--prompt"); add_arg(s, "%d", c->prompt);
            add_arg(s, "--gen"); add_arg(s, "%d", c->gen);
            add_arg(s, "--reps"); add_arg(s, "%d", c->reps);
            add_arg(s, "--json");
            s->inputs[s->n_inputs++] = pm->path;
        }
    }
}

/* The stage file its key names. */
static void stage_name_file(pipeline *p, stage *s)
{
    free(s->file);
    char name[512];
    snprintf(name, sizeof name, "%s-%s-%.16s.json", s->kind, p->models[s->model].name, s->key);
    s->file = lb_path_join(p->stage_dir, name);
}

/* Key: version, the command line and the identity of each input as it is now. An input that
 * does not exist yet (a model still to be quantized) hashes as absent; the key is computed
 * again right before the stage runs. */
static void stage_key(pipeline *p, stage *s)
{
    lb_sha256 h;
    lb_sha256_init(&h);
    lb_sha256_update(&h, p->o->version, strlen(p->o->version) + 1);
    for (int i = 0; i < s->argc; i++)
        lb_sha256_update(&h, s->argv[i], strlen(s->argv[i]) + 1);
    for (int i = 0; i < s->n_inputs; i++) {
        struct stat st;
        char id[128];
        if (stat(s->inputs[i], &st) == 0)
            snprintf(id, sizeof id, "%lld:%lld.%09ld", (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec);
        else
            snprintf(id, sizeof id, "absent");
        lb_sha256_update(&h, id, strlen(id) + 1);
    }
    uint8_t d[32];
    lb_sha256_final(&h, d);
    lb_sha256_hex(d, s->key);
    stage_name_file(p, s);
}

static json_t *load_stage_file(const char *path)
{
    json_t *j = json_load_file(path, 0, NULL);
    if (j && !json_is_array(json_object_get(j, "results"))) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* Starts the stage's command as a child of this program with stdout into out_path; stderr
 * passes through. */
static int child_start(pipeline *p, stage *s, const char *out_path, lb_error *err)
{
    const char *exe = p->o->exe ? p->o->exe : "/proc/self/exe";
    char *argv[MAX_ARGS + 1];
    argv[0] = (char *)"lowbit";
    for (int i = 0; i < s->argc; i++)
        argv[i + 1] = s->argv[i];
    argv[s->argc + 1] = NULL;
    /* Under mpirun a stage is one process of its own, with the cores this rank was given. */
    char threads[16];
    snprintf(threads, sizeof threads, "%d", lb_cpu_count());
    bool detach = lb_dist_active();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return lb_fail(err, "%s: cannot start a process: %s", s->name, strerror(errno));
    if (pid == 0) {
        /* A stage dies with the pipeline (kill -9 included), so nothing writes behind a resume. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (detach) {
            lb_dist_detach_env();
            setenv("LOWBIT_THREADS", threads, 1);
        }
        FILE *f = fopen(out_path, "w");
        if (!f || dup2(fileno(f), 1) < 0)
            _exit(126);
        fclose(f);
        execv(exe, argv);
        fprintf(stderr, "pipeline: cannot run %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    s->pid = pid;
    return 0;
}

/* The child's wait status as a result. */
static int child_result(const stage *s, int status, lb_error *err)
{
    if (WIFSIGNALED(status))
        return lb_fail(err, "stage %s: killed by signal %d", s->name, WTERMSIG(status));
    if (WEXITSTATUS(status))
        return lb_fail(err, "stage %s: exit status %d (lowbit %s failed; its message is above)",
                       s->name, WEXITSTATUS(status), s->kind);
    return 0;
}

static int child_wait(const stage *s, lb_error *err)
{
    int status;
    while (waitpid(s->pid, &status, 0) < 0)
        if (errno != EINTR)
            return lb_fail(err, "%s: waitpid: %s", s->name, strerror(errno));
    return child_result(s, status, err);
}

static void write_model_info(pipeline *p, pl_model *pm)
{
    struct stat st;
    int64_t bytes = stat(pm->path, &st) == 0 ? (int64_t)st.st_size : 0;
    double bpw = NAN;
    lb_model *m = NULL;
    lb_error e;
    if (lb_model_load(pm->path, NULL, &m, &e) == 0) {
        int64_t params = lb_model_params(m);
        if (params > 0)
            bpw = 8.0 * (double)lb_model_bytes(m) / (double)params;
        lb_model_free(m);
    }
    if (lb_store_model(p->store, p->run_id, pm->method_id, pm->path, pm->format, bytes, bpw,
                       &pm->model_id, &e))
        fprintf(stderr, "pipeline: %s\n", e.msg);
}

/* A quantize stage's file records the model it made, so a deleted or replaced model makes the
 * stage run again. */
static bool quantize_output_matches(json_t *j, const char *model_path)
{
    struct stat st;
    json_t *size = json_object_get(j, "model_bytes");
    return stat(model_path, &st) == 0 && json_is_integer(size) &&
           json_integer_value(size) == (json_int_t)st.st_size;
}

static bool selected(const pipeline *p, const stage *s)
{
    const char *only = p->o->only;
    if (!only)
        return true;
    return strcmp(only, s->kind) == 0 || strcmp(only, p->models[s->model].name) == 0 ||
           strcmp(only, s->name) == 0;
}

/* What a stage needs next: nothing (skipped: its model is missing, or not selected), only
 * its results imported (a finished stage file holds them), or to run. */
typedef enum { NEXT_SKIP, NEXT_CACHED, NEXT_RUN } stage_next;

static stage_next stage_begin(pipeline *p, stage *s, int index, json_t **cached)
{
    *cached = NULL;
    pl_model *pm = &p->models[s->model];
    if (pm->quantize_stage >= 0 && strcmp(s->kind, "quantize")) {
        stage *q = &p->stages[pm->quantize_stage];
        if (q->state == ST_FAILED || q->state == ST_SKIPPED || q->state == ST_PENDING) {
            s->state = ST_SKIPPED;
            fprintf(stderr, "pipeline: [%d/%d] %s: skipped (no model: %s did not finish)\n", index + 1,
                    p->n_stages, s->name, q->name);
            return NEXT_SKIP;
        }
    }
    stage_key(p, s);
    json_t *j = load_stage_file(s->file);
    if (j && strcmp(s->kind, "quantize") == 0 && !quantize_output_matches(j, pm->path)) {
        json_decref(j);
        j = NULL;
    }
    if (j) {
        fprintf(stderr, "pipeline: [%d/%d] %s: cached\n", index + 1, p->n_stages, s->name);
        *cached = j;
        return NEXT_CACHED;
    }
    if (!s->selected || p->o->dry_run) {
        s->state = ST_SKIPPED;
        fprintf(stderr, "pipeline: [%d/%d] %s: %s\n", index + 1, p->n_stages, s->name,
                p->o->dry_run ? "to run" : "skipped (--only)");
        return NEXT_SKIP;
    }
    return NEXT_RUN;
}

/* Starts the stage's child with its output under a temporary name (the log, for a quantizer,
 * whose output is its model). Any process of the job can do this and stage_finish. */
static int stage_spawn(pipeline *p, stage *s, lb_error *err)
{
    snprintf(s->tmp, sizeof s->tmp, "%s.tmp.%d", s->file, (int)getpid());
    char log[4200];
    snprintf(log, sizeof log, "%s.log", s->file);
    s->t0 = lb_now_ms();
    return child_start(p, s, strcmp(s->kind, "quantize") == 0 ? log : s->tmp, err);
}

/* After the child ended with rc: checks what it wrote and renames it into place as the stage
 * file. */
static int stage_finish(pipeline *p, stage *s, int rc, lb_error *err)
{
    pl_model *pm = &p->models[s->model];
    json_t *j = NULL;
    if (rc == 0 && strcmp(s->kind, "quantize") == 0) {
        struct stat st;
        if (stat(pm->path, &st) != 0)
            rc = lb_fail(err, "stage %s: finished but %s is not there", s->name, pm->path);
        else {
            j = json_pack("{s:[], s:s, s:I}", "results", "model", pm->path, "model_bytes",
                          (json_int_t)st.st_size);
            if (json_dump_file(j, s->tmp, JSON_INDENT(2)) != 0)
                rc = lb_fail(err, "%s: cannot write", s->tmp);
            json_decref(j);
        }
    }
    bool keep = false;   /* a malformed document stays for a look */
    if (rc == 0) {
        j = load_stage_file(s->tmp);
        if (!j) {
            rc = lb_fail(err, "stage %s: its output is not a {\"results\": [...]} document (kept in %s)",
                         s->name, s->tmp);
            keep = true;
        }
        json_decref(j);
    }
    if (rc == 0 && rename(s->tmp, s->file) != 0)
        rc = lb_fail(err, "%s: cannot rename into place: %s", s->file, strerror(errno));
    if (rc && !keep)
        unlink(s->tmp);   /* a failed stage's partial output is no result */
    return rc;
}

/* Rank 0: a stage's results (from its file, or cached_j) into the store. */
static int stage_import(pipeline *p, stage *s, json_t *cached_j, double secs, lb_error *err)
{
    pl_model *pm = &p->models[s->model];
    bool cached = cached_j != NULL;
    json_t *j = cached ? cached_j : load_stage_file(s->file);
    if (!j) {
        s->state = ST_FAILED;
        return lb_fail(err, "stage %s: %s is missing or not a results document", s->name, s->file);
    }
    if (strcmp(s->kind, "quantize") == 0)
        write_model_info(p, pm);
    int rc = lb_store_stage(p->store, p->run_id, s->key, s->kind, s->name, "running",
                            cached ? NAN : secs, cached, err);
    if (rc == 0)
        rc = lb_store_results(p->store, p->run_id, pm->method_id, pm->model_id, s->key,
                              json_object_get(j, "results"), err);
    json_decref(j);
    s->state = rc ? ST_FAILED : cached ? ST_CACHED : ST_DONE;
    return rc;
}

static void stage_failed(pipeline *p, stage *s)
{
    s->state = ST_FAILED;
    lb_error e2;
    lb_store_stage(p->store, p->run_id, s->key, s->kind, s->name, "failed",
                   (lb_now_ms() - s->t0) / 1000, false, &e2);
}

/* One stage from start to end in this process. */
static int do_stage(pipeline *p, stage *s, int index, lb_error *err)
{
    json_t *j;
    switch (stage_begin(p, s, index, &j)) {
    case NEXT_SKIP:
        return 0;
    case NEXT_CACHED:
        return stage_import(p, s, j, NAN, err);
    case NEXT_RUN:
        break;
    }
    fprintf(stderr, "pipeline: [%d/%d] %s: running\n", index + 1, p->n_stages, s->name);
    if (lb_store_stage(p->store, p->run_id, s->key, s->kind, s->name, "running", NAN, false, err))
        return -1;
    int rc = stage_spawn(p, s, err);
    if (rc == 0)
        rc = child_wait(s, err);
    if (stage_finish(p, s, rc, err)) {
        stage_failed(p, s);
        return -1;
    }
    return stage_import(p, s, NULL, (lb_now_ms() - s->t0) / 1000, err);
}

/* Under mpirun: rank 0 keeps the store and hands stages out, one at a time, to every process
 * (itself included) as they become free; a stage that reads a quantized model waits until its
 * quantizer is done. The stage files go to the output directory, which every process must
 * see (one machine, or a shared file system). A message to a worker is the stage's index and
 * key (-1: no more work); the reply is the index and the child's status. */
enum { MSG_INTS = 1 + 16 };

static void pack_msg(int msg[MSG_INTS], int index, const char *key)
{
    msg[0] = index;
    memset(msg + 1, 0, 16 * sizeof(int));
    if (key)
        memcpy(msg + 1, key, 64);
}

static bool stage_ready(const pipeline *p, const stage *s)
{
    int q = p->models[s->model].quantize_stage;
    if (q < 0 || strcmp(s->kind, "quantize") == 0)
        return true;
    int st = p->stages[q].state;
    return st != ST_PENDING && st != ST_RUNNING;
}

static void note_failure(int *failed, lb_error *first, const lb_error *e)
{
    fprintf(stderr, "pipeline: %s\n", e->msg);
    if (!(*failed)++)
        *first = *e;
}

/* The next stage that can start now, its begin step taken (cached and skipped stages are
 * settled on the way); -1 when none can start yet. */
static int next_runnable(pipeline *p, int *finished, int *failed, lb_error *first)
{
    for (int i = 0; i < p->n_stages; i++) {
        stage *s = &p->stages[i];
        if (s->state != ST_PENDING || !stage_ready(p, s))
            continue;
        json_t *j;
        lb_error e = {{0}};
        switch (stage_begin(p, s, i, &j)) {
        case NEXT_SKIP:
            (*finished)++;
            continue;
        case NEXT_CACHED:
            if (stage_import(p, s, j, NAN, &e))
                note_failure(failed, first, &e);
            (*finished)++;
            continue;
        case NEXT_RUN:
            if (lb_store_stage(p->store, p->run_id, s->key, s->kind, s->name, "running", NAN,
                               false, &e)) {
                s->state = ST_FAILED;
                note_failure(failed, first, &e);
                (*finished)++;
                continue;
            }
            s->state = ST_RUNNING;
            s->t0 = lb_now_ms();
            return i;
        }
    }
    return -1;
}

static void stage_settle(pipeline *p, int i, int rc, int *failed, lb_error *first)
{
    stage *s = &p->stages[i];
    lb_error e = {{0}};
    if (rc) {
        lb_fail(&e, "stage %s failed (its message is above)", s->name);
        stage_failed(p, s);
        note_failure(failed, first, &e);
    } else if (stage_import(p, s, NULL, (lb_now_ms() - s->t0) / 1000, &e)) {
        note_failure(failed, first, &e);
    }
}

static void run_distributed(pipeline *p, lb_progress *bar, int *failed, lb_error *first)
{
    int size = lb_dist_size(), finished = 0, local = -1;
    int *busy = lb_malloc((size_t)size * sizeof *busy);   /* stage each worker runs, or -1 */
    for (int r = 0; r < size; r++)
        busy[r] = -1;
    int msg[MSG_INTS];
    for (;;) {
        /* Hand out whatever can start to whoever is free: the workers first, then this
         * process, which also has to keep answering. */
        for (int r = 1; r < size; r++) {
            if (busy[r] >= 0)
                continue;
            int i = next_runnable(p, &finished, failed, first);
            if (i < 0)
                break;
            fprintf(stderr, "pipeline: [%d/%d] %s: running (process %d)\n", i + 1, p->n_stages,
                    p->stages[i].name, r);
            pack_msg(msg, i, p->stages[i].key);
            if (lb_dist_send(r, msg, MSG_INTS)) {
                stage_settle(p, i, -1, failed, first);
                finished++;
                continue;
            }
            busy[r] = i;
        }
        if (local < 0) {
            int i = next_runnable(p, &finished, failed, first);
            if (i >= 0) {
                fprintf(stderr, "pipeline: [%d/%d] %s: running (process 0)\n", i + 1,
                        p->n_stages, p->stages[i].name);
                lb_error e = {{0}};
                if (stage_spawn(p, &p->stages[i], &e)) {
                    fprintf(stderr, "pipeline: %s\n", e.msg);
                    stage_settle(p, i, -1, failed, first);
                    finished++;
                } else {
                    local = i;
                }
            }
        }
        lb_progress_update(bar, (uint64_t)finished);
        bool running = local >= 0;
        for (int r = 1; r < size; r++)
            running |= busy[r] >= 0;
        /* Nothing runs and nothing could start: every stage is settled (one left pending
         * would have had to wait for a quantizer, and none is running). */
        if (!running)
            break;
        /* Wait for the first of: a worker's reply, this process's own child. */
        bool event = false;
        while (!event) {
            if (lb_dist_poll()) {
                int from;
                if (lb_dist_recv(&from, msg, MSG_INTS) == 0 && from > 0 && from < size &&
                    busy[from] == msg[0]) {
                    busy[from] = -1;
                    stage_settle(p, msg[0], msg[1], failed, first);
                    finished++;
                }
                event = true;
            }
            if (local >= 0) {
                stage *s = &p->stages[local];
                int status;
                pid_t w = waitpid(s->pid, &status, WNOHANG);
                if (w == s->pid || (w < 0 && errno != EINTR)) {
                    lb_error e = {{0}};
                    int rc = w == s->pid ? child_result(s, status, &e)
                                         : lb_fail(&e, "%s: waitpid: %s", s->name, strerror(errno));
                    if (rc == 0)
                        rc = stage_finish(p, s, 0, &e);
                    if (rc)
                        fprintf(stderr, "pipeline: %s\n", e.msg);
                    stage_settle(p, local, rc, failed, first);
                    finished++;
                    local = -1;
                    event = true;
                }
            }
            if (!event)
                usleep(10000);
        }
    }
    for (int r = 1; r < size; r++) {
        pack_msg(msg, -1, NULL);
        lb_dist_send(r, msg, MSG_INTS);
    }
    free(busy);
}

/* Ranks above 0: run the stages rank 0 sends until it says there are no more. */
static void serve_stages(pipeline *p)
{
    int msg[MSG_INTS], from;
    while (lb_dist_recv(&from, msg, MSG_INTS) == 0 && msg[0] >= 0 && msg[0] < p->n_stages) {
        stage *s = &p->stages[msg[0]];
        /* The key rank 0 computed names the stage file, whatever this process sees. */
        memcpy(s->key, msg + 1, 64);
        s->key[64] = 0;
        stage_name_file(p, s);
        lb_error e = {{0}};
        int rc = stage_spawn(p, s, &e);
        if (rc == 0)
            rc = child_wait(s, &e);
        if (stage_finish(p, s, rc, &e)) {
            fprintf(stderr, "pipeline: process %d: %s\n", lb_dist_rank(), e.msg);
            rc = -1;
        }
        int reply[MSG_INTS];
        pack_msg(reply, msg[0], NULL);
        reply[1] = rc ? 1 : 0;
        if (lb_dist_send(0, reply, MSG_INTS))
            break;
    }
}

static char *options_json(const lb_pl_method *m)
{
    json_t *o = json_pack("{s:s, s:i, s:i, s:b}", "method", m->method, "bits", m->bits,
                          "group_size", m->group_size, "act_order", m->act_order);
    /* Unset, the grid is the quantizer's default for the bit width. */
    if (m->sym_set) json_object_set_new(o, "sym", json_boolean(m->sym));
    if (!isnan(m->alpha)) json_object_set_new(o, "alpha", json_real(m->alpha));
    if (!isnan(m->damp)) json_object_set_new(o, "damp", json_real(m->damp));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int mkdirs(const char *path, lb_error *err)
{
    char *p = lb_strdup(path);
    for (char *q = p + 1; ; q++) {
        if (*q == '/' || *q == 0) {
            char c = *q;
            *q = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int rc = lb_fail(err, "%s: cannot create the directory: %s", p, strerror(errno));
                free(p);
                return rc;
            }
            *q = c;
            if (!c)
                break;
        }
    }
    free(p);
    return 0;
}

/* A stage killed with the pipeline leaves "<stage>.json.tmp.<pid>"; once that pipeline is
 * gone nothing will finish it, so it goes (never read either way: only renamed files count). */
static void remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, ".json.tmp.");
        if (!t)
            continue;
        long pid = strtol(t + 10, NULL, 10);
        if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char *path = lb_path_join(dir, e->d_name);
            unlink(path);
            free(path);
        }
    }
    closedir(d);
}

static void pipeline_free(pipeline *p)
{
    for (int i = 0; i < p->n_stages; i++) {
        for (int a = 0; a < p->stages[i].argc; a++)
            free(p->stages[i].argv[a]);
        free(p->stages[i].file);
    }
    free(p->stages);
    for (int i = 0; i < p->n_models; i++) {
        free(p->models[i].name);
        free(p->models[i].path);
    }
    free(p->models);
    free(p->out);
    free(p->db_path);
    free(p->report_dir);
    free(p->stage_dir);
    free(p->model_dir);
    lb_store_close(p->store);
    lb_pl_config_free(&p->cfg);
}

int lb_pipeline_run(const lb_pl_options *o, lb_error *err)
{
    pipeline p = {.o = o};
    bool workers_told = false;
    if (lb_pl_config_load(o->config_path, &p.cfg, err))
        return -1;
    unsigned formats = 0;
    for (int i = 0; i < p.cfg.n_formats; i++) {
        unsigned f = 0;
        if (lb_report_parse_formats(p.cfg.formats[i], &f, err)) {
            lb_pl_config_free(&p.cfg);
            return -1;
        }
        formats |= f;
    }
    if (o->out_dir)
        p.out = lb_strdup(o->out_dir);
    else if (p.cfg.report_output)
        p.out = lb_path_dir(p.cfg.report_output);
    else
        p.out = lb_strdup("out");
    p.report_dir = o->out_dir || !p.cfg.report_output ? lb_path_join(p.out, "report")
                                                       : lb_strdup(p.cfg.report_output);
    p.db_path = o->db_path ? lb_strdup(o->db_path) : lb_path_join(p.out, "results.db");
    p.stage_dir = lb_path_join(p.out, "stages");
    p.model_dir = lb_path_join(p.out, "models");
    int rc = -1;
    /* Under mpirun with more than one process (and not a dry run), rank 0 drives and the
     * others run the stages it hands them. They all plan the same stages, then agree that
     * every one of them got that far before any work is handed out. */
    bool shared = lb_dist_active() && !o->dry_run, worker = shared && lb_dist_rank() > 0;
    if (mkdirs(p.stage_dir, err) || mkdirs(p.model_dir, err))
        goto agree;
    if (!worker)
        remove_stale_tmp(p.stage_dir);
    if (o->only) {
        static const char *const kinds[] = {"quantize", "perplexity", "kld", "mc", "bench", "report", "baseline"};
        bool ok = false;
        for (int i = 0; i < 7; i++)
            ok |= strcmp(o->only, kinds[i]) == 0;
        for (int i = 0; i < p.cfg.n_methods; i++)
            ok |= strcmp(o->only, p.cfg.methods[i].name) == 0;
        if (!ok) {
            lb_fail(err, "--only %s: expected a stage kind (quantize, perplexity, kld, mc, bench, report), "
                    "baseline or a method name from %s", o->only, o->config_path);
            goto agree;
        }
    }
    if (!worker && lb_store_open(p.db_path, &p.store, err))
        goto agree;
    rc = 0;
agree:
    if (shared && lb_dist_agree(rc, err))
        goto done;
    if (rc)
        goto done;
    rc = -1;
    plan(&p);
    if (worker) {
        serve_stages(&p);
        rc = 0;
        goto done;
    }
    /* --only: the selected stages plus the quantizers whose models they read. */
    for (int i = 0; i < p.n_stages; i++) {
        stage *s = &p.stages[i];
        s->selected = selected(&p, s);
        int q = p.models[s->model].quantize_stage;
        if (s->selected && q >= 0)
            p.stages[q].selected = true;
    }

    uint8_t d[32];
    char hash[65];
    lb_sha256 h;
    lb_sha256_init(&h);
    lb_sha256_update(&h, p.cfg.text, strlen(p.cfg.text));
    lb_sha256_final(&h, d);
    lb_sha256_hex(d, hash);
    if (o->resume && lb_store_unfinished_run(p.store, hash, &p.run_id, err))
        goto done;
    if (p.run_id)
        fprintf(stderr, "pipeline: resuming run %lld\n", (long long)p.run_id);
    else {
        lb_machine mach;
        lb_machine_probe(&mach);
        const lb_run_info ri = {o->config_path, p.cfg.text, hash, o->version, p.out};
        if (lb_store_run_begin(p.store, &ri, &mach, &p.run_id, err))
            goto done;
        fprintf(stderr, "pipeline: run %lld (%d stages, results in %s)\n", (long long)p.run_id,
                p.n_stages, p.db_path);
    }
    for (int i = 0; i < p.n_models; i++) {
        pl_model *pm = &p.models[i];
        char *opts = i ? options_json(&p.cfg.methods[i - 1]) : NULL;
        rc = lb_store_method(p.store, p.run_id, pm->name, i ? p.cfg.methods[i - 1].method : "none",
                             opts, &pm->method_id, err);
        free(opts);
        if (rc)
            goto done;
        rc = -1;
    }
    write_model_info(&p, &p.models[0]);

    lb_progress *bar = o->dry_run ? NULL : lb_progress_start("pipeline", (uint64_t)p.n_stages, "stages");
    int failed = 0;
    lb_error first = {{0}};
    if (shared) {
        fprintf(stderr, "pipeline: %d processes share the stages\n", lb_dist_size());
        run_distributed(&p, bar, &failed, &first);
        workers_told = true;
    } else {
        for (int i = 0; i < p.n_stages; i++) {
            lb_error e = {{0}};
            if (do_stage(&p, &p.stages[i], i, &e))
                note_failure(&failed, &first, &e);
            lb_progress_update(bar, (uint64_t)i + 1);
        }
    }
    lb_progress_finish(bar);
    if (o->dry_run) {
        rc = 0;
        goto done;
    }

    int pending = 0;
    for (int i = 0; i < p.n_stages; i++)
        pending += p.stages[i].state == ST_SKIPPED;
    lb_error e2;
    lb_store_run_end(p.store, p.run_id, failed ? "failed" : pending ? "partial" : "finished", &e2);
    /* The report is written even after a failed stage: it shows what did finish. */
    lb_store_run run;
    if (lb_store_load_run(p.store, p.run_id, &run, err))
        goto done;
    int wr = lb_report_write(&run, p.report_dir, formats, err);
    lb_store_run_free(&run);
    if (wr)
        goto done;
    fprintf(stderr, "pipeline: report in %s\n", p.report_dir);
    if (failed) {
        *err = first;
        if (failed > 1)
            lb_fail_prefix(err, "%d stages failed; first: ", failed);
        goto done;
    }
    rc = 0;
done:
    /* Workers wait for word from rank 0 until it says there is no more work. */
    if (shared && !worker && !workers_told && p.stages)
        for (int r = 1; r < lb_dist_size(); r++) {
            int msg[MSG_INTS];
            pack_msg(msg, -1, NULL);
            lb_dist_send(r, msg, MSG_INTS);
        }
    pipeline_free(&p);
    return rc;
}
