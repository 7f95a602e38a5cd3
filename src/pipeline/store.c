/* Results store on SQLite: schema, transactional writes, and the readers behind
 * `lowbit runs` and `lowbit report`. */
#include "pipeline/store.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct lb_store {
    sqlite3 *db;
    char *path;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS runs ("
    " id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT, status TEXT NOT NULL,"
    " config_path TEXT, config_text TEXT, config_hash TEXT, version TEXT, out_dir TEXT,"
    " cpu TEXT, cores INTEGER, mem_bytes INTEGER);"
    "CREATE TABLE IF NOT EXISTS methods ("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL,"
    " method TEXT NOT NULL, options TEXT, UNIQUE(run_id, name));"
    "CREATE TABLE IF NOT EXISTS models ("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),"
    " method_id INTEGER NOT NULL REFERENCES methods(id), path TEXT NOT NULL, format TEXT,"
    " bytes INTEGER, bits_per_weight REAL, UNIQUE(run_id, method_id));"
    "CREATE TABLE IF NOT EXISTS stages ("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), key TEXT NOT NULL,"
    " kind TEXT, name TEXT, status TEXT NOT NULL, updated TEXT, seconds REAL, cached INTEGER,"
    " UNIQUE(run_id, key));"
    "CREATE TABLE IF NOT EXISTS results ("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),"
    " method_id INTEGER REFERENCES methods(id), model_id INTEGER REFERENCES models(id),"
    " stage_key TEXT, model TEXT, format TEXT, task TEXT NOT NULL, metric TEXT NOT NULL,"
    " value REAL, stderr REAL, n INTEGER, seconds REAL, params TEXT);"
    "CREATE INDEX IF NOT EXISTS results_run ON results(run_id, stage_key);";

static int db_fail(lb_store *s, lb_error *err, const char *what)
{
    return lb_fail(err, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static void now_iso(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void lb_machine_probe(lb_machine *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->cpu, sizeof m->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *colon = strchr(line, ':');
                if (colon) {
                    colon++;
                    while (*colon == ' ' || *colon == '\t') colon++;
                    colon[strcspn(colon, "\n")] = 0;
                    snprintf(m->cpu, sizeof m->cpu, "%s", colon);
                }
                break;
            }
        fclose(f);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    m->cores = n > 0 ? (int)n : 1;
    f = fopen("/proc/meminfo", "r");
    if (f) {
        long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemTotal: %lld kB", &kb) == 1) {
                m->mem_bytes = (int64_t)kb * 1024;
                break;
            }
        fclose(f);
    }
}

int lb_store_open(const char *path, lb_store **out, lb_error *err)
{
    *out = NULL;
    lb_store *s = lb_calloc(1, sizeof *s);
    s->path = lb_strdup(path);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        int rc = lb_fail(err, "%s: cannot open the results database: %s", path,
                         s->db ? sqlite3_errmsg(s->db) : "out of memory");
        lb_store_close(s);
        return rc;
    }
    sqlite3_busy_timeout(s->db, 10000);
    char *msg = NULL;
    /* WAL: a killed writer never leaves a half-written page in the main file; the readers of
     * `lowbit runs` do not block a running pipeline. */
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                     NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = lb_fail(err, "%s: not a lowbit results database: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        lb_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void lb_store_close(lb_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

static sqlite3_stmt *prep(lb_store *s, const char *sql, lb_error *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_fail(s, err, "prepare");
        return NULL;
    }
    return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Runs a prepared statement to completion and finalizes it. */
static int step_done(lb_store *s, sqlite3_stmt *st, const char *what, lb_error *err)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        db_fail(s, err, what);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

static int exec(lb_store *s, const char *sql, lb_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = lb_fail(err, "%s: %s: %s", s->path, sql, msg ? msg : "?");
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

int lb_store_run_begin(lb_store *s, const lb_run_info *ri, const lb_machine *m, int64_t *run_id,
                       lb_error *err)
{
    char now[32];
    now_iso(now);
    sqlite3_stmt *st = prep(s, "INSERT INTO runs(started,status,config_path,config_text,config_hash,"
                               "version,out_dir,cpu,cores,mem_bytes) VALUES(?,'running',?,?,?,?,?,?,?,?)", err);
    if (!st)
        return -1;
    bind_text(st, 1, now);
    bind_text(st, 2, ri->config_path);
    bind_text(st, 3, ri->config_text);
    bind_text(st, 4, ri->config_hash);
    bind_text(st, 5, ri->version);
    bind_text(st, 6, ri->out_dir);
    bind_text(st, 7, m->cpu);
    sqlite3_bind_int(st, 8, m->cores);
    sqlite3_bind_int64(st, 9, m->mem_bytes);
    if (step_done(s, st, "insert run", err))
        return -1;
    *run_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int lb_store_run_end(lb_store *s, int64_t run_id, const char *status, lb_error *err)
{
    char now[32];
    now_iso(now);
    sqlite3_stmt *st = prep(s, "UPDATE runs SET finished=?, status=? WHERE id=?", err);
    if (!st)
        return -1;
    bind_text(st, 1, now);
    bind_text(st, 2, status);
    sqlite3_bind_int64(st, 3, run_id);
    return step_done(s, st, "finish run", err);
}

int lb_store_unfinished_run(lb_store *s, const char *config_hash, int64_t *run_id, lb_error *err)
{
    *run_id = 0;
    sqlite3_stmt *st = prep(s, "SELECT id FROM runs WHERE config_hash=? AND status!='finished' "
                               "ORDER BY id DESC LIMIT 1", err);
    if (!st)
        return -1;
    bind_text(st, 1, config_hash);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(s, err, "find run");
    return 0;
}

/* Upsert, then the row's id (last_insert_rowid is not set by the UPDATE branch). */
static int upsert_id(lb_store *s, sqlite3_stmt *st, const char *select_sql, int64_t run,
                     const char *key_text, int64_t key_int, int64_t *id, lb_error *err)
{
    if (step_done(s, st, "upsert", err))
        return -1;
    sqlite3_stmt *q = prep(s, select_sql, err);
    if (!q)
        return -1;
    sqlite3_bind_int64(q, 1, run);
    if (key_text)
        bind_text(q, 2, key_text);
    else
        sqlite3_bind_int64(q, 2, key_int);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : db_fail(s, err, "read back id");
}

int lb_store_method(lb_store *s, int64_t run, const char *name, const char *method,
                    const char *options_json, int64_t *id, lb_error *err)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO methods(run_id,name,method,options) VALUES(?,?,?,?) "
                               "ON CONFLICT(run_id,name) DO UPDATE SET method=excluded.method,"
                               " options=excluded.options", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, run);
    bind_text(st, 2, name);
    bind_text(st, 3, method);
    bind_text(st, 4, options_json);
    return upsert_id(s, st, "SELECT id FROM methods WHERE run_id=? AND name=?", run, name, 0, id, err);
}

int lb_store_model(lb_store *s, int64_t run, int64_t method_id, const char *path,
                   const char *format, int64_t bytes, double bpw, int64_t *id, lb_error *err)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO models(run_id,method_id,path,format,bytes,bits_per_weight) "
                               "VALUES(?,?,?,?,?,?) ON CONFLICT(run_id,method_id) DO UPDATE SET "
                               "path=excluded.path, format=excluded.format, bytes=excluded.bytes,"
                               " bits_per_weight=excluded.bits_per_weight", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, method_id);
    bind_text(st, 3, path);
    bind_text(st, 4, format);
    sqlite3_bind_int64(st, 5, bytes);
    bind_real(st, 6, bpw);
    return upsert_id(s, st, "SELECT id FROM models WHERE run_id=? AND method_id=?", run, NULL,
                     method_id, id, err);
}

static int stage_upsert(lb_store *s, int64_t run, const char *key, const char *kind,
                        const char *name, const char *status, double seconds, bool cached,
                        lb_error *err)
{
    char now[32];
    now_iso(now);
    sqlite3_stmt *st = prep(s, "INSERT INTO stages(run_id,key,kind,name,status,updated,seconds,cached) "
                               "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(run_id,key) DO UPDATE SET "
                               "kind=coalesce(excluded.kind,kind), name=coalesce(excluded.name,name),"
                               " status=excluded.status, updated=excluded.updated,"
                               " seconds=coalesce(excluded.seconds,seconds), cached=excluded.cached", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, run);
    bind_text(st, 2, key);
    bind_text(st, 3, kind);
    bind_text(st, 4, name);
    bind_text(st, 5, status);
    bind_text(st, 6, now);
    bind_real(st, 7, seconds);
    sqlite3_bind_int(st, 8, cached);
    return step_done(s, st, "stage", err);
}

int lb_store_stage(lb_store *s, int64_t run, const char *key, const char *kind, const char *name,
                   const char *status, double seconds, bool cached, lb_error *err)
{
    return stage_upsert(s, run, key, kind, name, status, seconds, cached, err);
}

static double json_num(json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int lb_store_results(lb_store *s, int64_t run, int64_t method_id, int64_t model_id,
                     const char *stage_key, json_t *results, lb_error *err)
{
    if (!json_is_array(results))
        return lb_fail(err, "%s: results for stage %s: expected an array", s->path, stage_key);
    if (exec(s, "BEGIN IMMEDIATE", err))
        return -1;
    sqlite3_stmt *del = prep(s, "DELETE FROM results WHERE run_id=? AND stage_key=?", err);
    if (!del)
        goto fail;
    sqlite3_bind_int64(del, 1, run);
    bind_text(del, 2, stage_key);
    if (step_done(s, del, "delete results", err))
        goto fail;
    sqlite3_stmt *ins = prep(s, "INSERT INTO results(run_id,method_id,model_id,stage_key,model,format,"
                                "task,metric,value,stderr,n,seconds,params) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", err);
    if (!ins)
        goto fail;
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r) {
        const char *task = json_string_value(json_object_get(r, "task"));
        const char *metric = json_string_value(json_object_get(r, "metric"));
        if (!json_is_object(r) || !task || !metric) {
            sqlite3_finalize(ins);
            lb_fail(err, "%s: stage %s: results[%zu]: expected an object with task and metric",
                    s->path, stage_key, i);
            goto fail;
        }
        sqlite3_reset(ins);
        sqlite3_clear_bindings(ins);
        sqlite3_bind_int64(ins, 1, run);
        if (method_id > 0) sqlite3_bind_int64(ins, 2, method_id);
        if (model_id > 0) sqlite3_bind_int64(ins, 3, model_id);
        bind_text(ins, 4, stage_key);
        bind_text(ins, 5, json_string_value(json_object_get(r, "model")));
        bind_text(ins, 6, json_string_value(json_object_get(r, "format")));
        bind_text(ins, 7, task);
        bind_text(ins, 8, metric);
        bind_real(ins, 9, json_num(json_object_get(r, "value")));
        bind_real(ins, 10, json_num(json_object_get(r, "stderr")));
        json_t *n = json_object_get(r, "n");
        if (json_is_integer(n))
            sqlite3_bind_int64(ins, 11, json_integer_value(n));
        bind_real(ins, 12, json_num(json_object_get(r, "seconds")));
        json_t *params = json_object_get(r, "params");
        char *ptext = params ? json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        bind_text(ins, 13, ptext);
        free(ptext);
        int rc = sqlite3_step(ins);
        if (rc != SQLITE_DONE) {
            db_fail(s, err, "insert result");
            sqlite3_finalize(ins);
            goto fail;
        }
    }
    sqlite3_finalize(ins);
    if (stage_upsert(s, run, stage_key, NULL, NULL, "done", NAN, false, err))
        goto fail;
    if (exec(s, "COMMIT", err))
        goto fail;
    return 0;
fail:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* ---- reading ---- */

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return lb_strdup(t ? (const char *)t : "");
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static void read_header(sqlite3_stmt *st, lb_store_run *r)
{
    r->id = sqlite3_column_int64(st, 0);
    r->started = col_text(st, 1);
    r->finished = col_text(st, 2);
    r->status = col_text(st, 3);
    r->config_path = col_text(st, 4);
    r->config_text = col_text(st, 5);
    r->config_hash = col_text(st, 6);
    r->version = col_text(st, 7);
    r->out_dir = col_text(st, 8);
    const unsigned char *cpu = sqlite3_column_text(st, 9);
    snprintf(r->machine.cpu, sizeof r->machine.cpu, "%s", cpu ? (const char *)cpu : "");
    r->machine.cores = sqlite3_column_int(st, 10);
    r->machine.mem_bytes = sqlite3_column_int64(st, 11);
    r->n_results = sqlite3_column_int(st, 12);
}

#define HEADER_COLS "id,started,finished,status,config_path,config_text,config_hash,version,out_dir," \
                    "cpu,cores,mem_bytes,(SELECT count(*) FROM results WHERE run_id=runs.id)"

int lb_store_list_runs(lb_store *s, lb_store_run **runs, int *n, lb_error *err)
{
    *runs = NULL;
    *n = 0;
    sqlite3_stmt *st = prep(s, "SELECT " HEADER_COLS " FROM runs ORDER BY id DESC", err);
    if (!st)
        return -1;
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *runs = lb_realloc(*runs, (size_t)cap * sizeof **runs);
        }
        lb_store_run *r = &(*runs)[(*n)++];
        memset(r, 0, sizeof *r);
        read_header(st, r);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, err, "list runs");
    return 0;
}

void lb_store_runs_free(lb_store_run *runs, int n)
{
    for (int i = 0; i < n; i++)
        lb_store_run_free(&runs[i]);
    free(runs);
}

int lb_store_load_run(lb_store *s, int64_t id, lb_store_run *run, lb_error *err)
{
    memset(run, 0, sizeof *run);
    sqlite3_stmt *st = prep(s, id ? "SELECT " HEADER_COLS " FROM runs WHERE id=?"
                                  : "SELECT " HEADER_COLS " FROM runs ORDER BY id DESC LIMIT 1", err);
    if (!st)
        return -1;
    if (id)
        sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE)
            return id ? lb_fail(err, "%s: no run %lld (lowbit runs list shows them)", s->path, (long long)id)
                      : lb_fail(err, "%s: no runs yet", s->path);
        return db_fail(s, err, "read run");
    }
    read_header(st, run);
    run->n_results = 0;   /* the header's count; the rows are read below */
    sqlite3_finalize(st);

    st = prep(s, "SELECT m.id,m.name,m.method,m.options,md.path,md.format,md.bytes,md.bits_per_weight "
                 "FROM methods m LEFT JOIN models md ON md.method_id=m.id WHERE m.run_id=? ORDER BY m.id", err);
    if (!st)
        goto fail;
    sqlite3_bind_int64(st, 1, run->id);
    int cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (run->n_methods == cap) {
            cap = cap ? cap * 2 : 8;
            run->methods = lb_realloc(run->methods, (size_t)cap * sizeof *run->methods);
        }
        lb_store_method_row *m = &run->methods[run->n_methods++];
        m->id = sqlite3_column_int64(st, 0);
        m->name = col_text(st, 1);
        m->method = col_text(st, 2);
        m->options = col_text(st, 3);
        m->model_path = col_text(st, 4);
        m->format = col_text(st, 5);
        m->model_bytes = sqlite3_column_int64(st, 6);
        m->bpw = col_real(st, 7);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_fail(s, err, "read methods");
        goto fail;
    }

    st = prep(s, "SELECT id,method_id,model,format,task,metric,value,stderr,n,seconds,params,stage_key "
                 "FROM results WHERE run_id=? ORDER BY id", err);
    if (!st)
        goto fail;
    sqlite3_bind_int64(st, 1, run->id);
    cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (run->n_results == cap) {
            cap = cap ? cap * 2 : 64;
            run->results = lb_realloc(run->results, (size_t)cap * sizeof *run->results);
        }
        lb_store_result_row *r = &run->results[run->n_results++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(st, 0);
        int64_t mid = sqlite3_column_int64(st, 1);
        for (int i = 0; i < run->n_methods; i++)
            if (run->methods[i].id == mid)
                r->m = &run->methods[i];
        r->model = col_text(st, 2);
        r->format = col_text(st, 3);
        r->task = col_text(st, 4);
        r->metric = col_text(st, 5);
        r->value = col_real(st, 6);
        r->stderr_ = col_real(st, 7);
        r->n = sqlite3_column_int64(st, 8);
        r->seconds = col_real(st, 9);
        r->params = col_text(st, 10);
        r->stage = col_text(st, 11);
        json_t *p = json_loads(r->params, 0, NULL);
        json_t *b = json_object_get(p, "batch");
        r->batch = json_is_integer(b) ? (int)json_integer_value(b) : 0;
        json_decref(p);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_fail(s, err, "read results");
        goto fail;
    }

    st = prep(s, "SELECT key,kind,name,status,seconds,cached FROM stages WHERE run_id=? ORDER BY id", err);
    if (!st)
        goto fail;
    sqlite3_bind_int64(st, 1, run->id);
    cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (run->n_stages == cap) {
            cap = cap ? cap * 2 : 16;
            run->stages = lb_realloc(run->stages, (size_t)cap * sizeof *run->stages);
        }
        lb_store_stage_row *g = &run->stages[run->n_stages++];
        g->key = col_text(st, 0);
        g->kind = col_text(st, 1);
        g->name = col_text(st, 2);
        g->status = col_text(st, 3);
        g->seconds = col_real(st, 4);
        g->cached = sqlite3_column_int(st, 5) != 0;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_fail(s, err, "read stages");
        goto fail;
    }
    return 0;
fail:
    lb_store_run_free(run);
    return -1;
}

void lb_store_run_free(lb_store_run *run)
{
    free(run->started);
    free(run->finished);
    free(run->status);
    free(run->config_path);
    free(run->config_text);
    free(run->config_hash);
    free(run->version);
    free(run->out_dir);
    for (int i = 0; i < run->n_methods; i++) {
        lb_store_method_row *m = &run->methods[i];
        free(m->name); free(m->method); free(m->options); free(m->model_path); free(m->format);
    }
    free(run->methods);
    /* List headers carry a count but no rows. */
    for (int i = 0; run->results && i < run->n_results; i++) {
        lb_store_result_row *r = &run->results[i];
        free(r->model); free(r->format); free(r->task); free(r->metric); free(r->params); free(r->stage);
    }
    free(run->results);
    for (int i = 0; i < run->n_stages; i++) {
        lb_store_stage_row *g = &run->stages[i];
        free(g->key); free(g->kind); free(g->name); free(g->status);
    }
    free(run->stages);
    memset(run, 0, sizeof *run);
}
