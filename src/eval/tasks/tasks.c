/* Task registry (name → loader and default file), the loaders' shared helpers, and few-shot
 * prompts for tasks that have no dev split. */
#include "eval/tasks/tasks.h"

#include "core/file.h"
#include "core/rng.h"
#include "core/vec.h"
#include "eval/tasks/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- line and jsonl helpers ---- */

int task_lines_open(task_lines *l, const char *path, lb_error *err)
{
    memset(l, 0, sizeof *l);
    l->path = path;
    if (lb_is_dir(path))
        return lb_fail(err, "%s: is a directory, expected a file", path);
    return lb_read_file(path, TASK_MAX_FILE, &l->data, &l->len, err);
}

bool task_next_line(task_lines *l, char **s, size_t *n)
{
    if (!l->data || l->off >= l->len)
        return false;
    char *start = l->data + l->off;
    char *nl = memchr(start, '\n', l->len - l->off);
    size_t len = nl ? (size_t)(nl - start) : l->len - l->off;
    l->off += len + (nl ? 1 : 0);
    if (len > 0 && start[len - 1] == '\r')
        len--;
    start[len] = 0;
    l->line++;
    *s = start;
    *n = len;
    return true;
}

void task_lines_close(task_lines *l)
{
    free(l->data);
    memset(l, 0, sizeof *l);
}

json_t *task_json_object(const char *path, int line, const char *s, size_t n, lb_error *err)
{
    json_error_t je;
    json_t *o = json_loadb(s, n, 0, &je);
    if (!o) {
        lb_fail(err, "%s:%d: bad JSON at column %d: %s", path, line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        lb_fail(err, "%s:%d: expected a JSON object", path, line);
        return NULL;
    }
    return o;
}

int task_jsonl_each(const char *path, lb_mc_task *t, task_jsonl_fn item, lb_error *err)
{
    task_lines l;
    if (task_lines_open(&l, path, err))
        return -1;
    char *s;
    size_t n;
    int rc = 0;
    while (rc == 0 && task_next_line(&l, &s, &n)) {
        if (n == 0)
            continue;
        json_t *o = task_json_object(path, l.line, s, n, err);
        if (!o) {
            rc = -1;
            break;
        }
        rc = item(o, path, l.line, t, err);
        json_decref(o);
    }
    task_lines_close(&l);
    return rc;
}

int task_json_str(json_t *o, const char *key, const char *path, int line, const char **out,
                  lb_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return lb_fail(err, "%s:%d: missing field \"%s\"", path, line, key);
    if (!json_is_string(v))
        return lb_fail(err, "%s:%d: field \"%s\" must be a string", path, line, key);
    *out = json_string_value(v);
    return 0;
}

int task_json_int(json_t *o, const char *key, const char *path, int line, long *out,
                  lb_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return lb_fail(err, "%s:%d: missing field \"%s\"", path, line, key);
    if (json_is_integer(v)) {
        *out = (long)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long x = strtol(s, &end, 10);
        if (*s && *end == 0 && end - s < 10) {
            *out = x;
            return 0;
        }
    }
    return lb_fail(err, "%s:%d: field \"%s\" must be an integer", path, line, key);
}

int task_json_strings(json_t *o, const char *key, const char *path, int line, int max,
                      json_t **arr, lb_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return lb_fail(err, "%s:%d: missing field \"%s\"", path, line, key);
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > (size_t)max)
        return lb_fail(err, "%s:%d: field \"%s\" must be an array of 1..%d strings", path, line,
                       key, max);
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i)))
            return lb_fail(err, "%s:%d: entry %zu of \"%s\" must be a string", path, line, i,
                           key);
    *arr = v;
    return 0;
}

bool task_jsonl_has_key(const char *path, const char *key)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    bool found = false;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        size_t i = 0;
        while (i < (size_t)n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' ||
                                 line[i] == '\n'))
            i++;
        if (i == (size_t)n)
            continue;
        json_t *o = json_loadb(line, (size_t)n, 0, NULL);
        found = o && json_is_object(o) && json_object_get(o, key);
        json_decref(o);
        break;
    }
    free(line);
    fclose(f);
    return found;
}

/* ---- few-shot ---- */

static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = lb_malloc(la + lb + lc + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

void lb_task_fewshot(lb_mc_task *t, int k, uint64_t seed)
{
    int n = t->n_items;
    if (k <= 0 || n < 2)
        return;
    if (k > n - 1)
        k = n - 1;
    /* Each item's example text is computed before any prefix is added. */
    char **example = lb_malloc((size_t)n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        const lb_mc_item *it = &t->items[i];
        int g = it->gold >= 0 && it->gold < it->n_choices ? it->gold : 0;
        const char *ctx = it->contexts ? it->contexts[g] : it->context;
        example[i] = join3(ctx ? ctx : "", it->conts[g], "");
    }
    lb_rng rng;
    lb_rng_seed(&rng, seed);
    int *pick = lb_malloc((size_t)k * sizeof(int));
    for (int i = 0; i < n; i++) {
        /* k distinct others, by rejection (k is small against n). */
        for (int j = 0; j < k; j++) {
            int x;
            bool again;
            do {
                x = (int)(lb_rng_next(&rng) % (uint64_t)n);
                again = x == i;
                for (int q = 0; q < j && !again; q++)
                    again = pick[q] == x;
            } while (again);
            pick[j] = x;
        }
        lb_buf prefix = {0};
        for (int j = 0; j < k; j++) {
            lb_buf_append(&prefix, example[pick[j]], strlen(example[pick[j]]));
            lb_buf_append(&prefix, "\n\n", 2);
        }
        lb_buf_cstr(&prefix);
        lb_mc_item *it = &t->items[i];
        if (it->contexts) {
            for (int c = 0; c < it->n_choices; c++) {
                char *s = join3(prefix.v, it->contexts[c], "");
                free(it->contexts[c]);
                it->contexts[c] = s;
            }
        } else {
            char *s = join3(prefix.v, it->context ? it->context : "", "");
            free(it->context);
            it->context = s;
        }
        lb_buf_free(&prefix);
    }
    for (int i = 0; i < n; i++)
        free(example[i]);
    free(example);
    free(pick);
}

/* ---- registry ---- */

typedef struct {
    const char *name;
    const char *file;
    lb_mc_kind kind;
} task_entry;

static const task_entry entries[] = {
    {"hellaswag", "hellaswag/validation_full.txt", LB_MC_CHOICE},
    {"piqa", "piqa/valid.jsonl", LB_MC_CHOICE},
    {"arc_easy", "icl/arc_easy.jsonl", LB_MC_CHOICE},
    {"arc_challenge", "icl/arc_challenge.jsonl", LB_MC_CHOICE},
    {"copa", "icl/copa.jsonl", LB_MC_CHOICE},
    {"boolq", "icl/boolq.jsonl", LB_MC_CHOICE},
    {"winogrande", "icl/winogrande.jsonl", LB_MC_PARTIAL},
    {"lambada", "icl/lambada_openai.jsonl", LB_MC_LAMBADA},
    {"mmlu", "mmlu", LB_MC_CHOICE},
    {"truthfulqa_mc1", "truthfulqa/mc_task.json", LB_MC_MC1},
    {"truthfulqa_mc2", "truthfulqa/mc_task.json", LB_MC_MC2},
};

const char *const lb_task_names[] = {"hellaswag", "piqa", "arc_easy", "arc_challenge", "copa",
                                     "boolq", "winogrande", "lambada", "mmlu",
                                     "truthfulqa_mc1", "truthfulqa_mc2", NULL};

static const task_entry *find_entry(const char *task)
{
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (strcmp(entries[i].name, task) == 0)
            return &entries[i];
    return NULL;
}

char *lb_task_default_path(const char *task, const char *data_dir)
{
    const task_entry *te = find_entry(task);
    if (!te)
        return NULL;
    const char *dir = data_dir && *data_dir ? data_dir : getenv("LOWBIT_DATA_DIR");
    if (!dir || !*dir)
        dir = "../shared/datasets";
    return lb_path_join(dir, te->file);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

int lb_task_load(const char *task, const char *path, const char *data_dir,
                 const lb_task_options *o, lb_mc_task **out, lb_error *err)
{
    *out = NULL;
    const task_entry *te = find_entry(task);
    if (!te) {
        lb_buf names = {0};
        for (int i = 0; lb_task_names[i]; i++)
            lb_buf_appendf(&names, "%s%s", i ? ", " : "", lb_task_names[i]);
        lb_fail(err, "unknown task \"%s\"; expected one of %s", task, lb_buf_cstr(&names));
        lb_buf_free(&names);
        return -1;
    }
    char *file = path ? lb_strdup(path) : lb_task_default_path(task, data_dir);
    if (!lb_file_exists(file) && !lb_is_dir(file)) {
        lb_fail(err, "%s: no such file (task %s)", file, task);
        free(file);
        return -1;
    }
    lb_mc_task *t = lb_mc_task_create(task, te->kind);
    int shots = o && o->shots >= 0 ? o->shots : strcmp(task, "mmlu") == 0 ? 5 : 0;
    uint64_t seed = o ? o->seed : 1234;
    int rc;
    bool own_shots = false;
    if (strcmp(task, "mmlu") == 0) {
        rc = lb_task_mmlu(file, shots, t, err);
        own_shots = true;
    } else if (te->kind == LB_MC_MC1 || te->kind == LB_MC_MC2) {
        rc = lb_task_truthfulqa(file, t, err);
        own_shots = true;   /* the harness's fixed 6-shot QA prompt */
    } else if (strcmp(task, "hellaswag") == 0) {
        if (!ends_with(file, ".jsonl"))
            rc = lb_task_hellaswag_text(file, t, err);
        else if (task_jsonl_has_key(file, "query"))
            rc = lb_task_icl(file, t, err);
        else
            rc = lb_task_hellaswag_jsonl(file, t, err);
    } else if (strcmp(task, "piqa") == 0 && !task_jsonl_has_key(file, "query")) {
        /* valid.jsonl → valid-labels.lst beside it */
        char *labels;
        if (ends_with(file, ".jsonl")) {
            size_t n = strlen(file) - 6;
            labels = lb_malloc(n + 12);
            memcpy(labels, file, n);
            memcpy(labels + n, "-labels.lst", 12);
        } else {
            labels = join3(file, "-labels.lst", "");
        }
        rc = lb_task_piqa(file, labels, t, err);
        free(labels);
    } else {
        rc = lb_task_icl(file, t, err);
    }
    if (rc == 0 && t->n_items == 0)
        rc = lb_fail(err, "%s: no items (task %s)", file, task);
    if (rc == 0 && !own_shots && shots > 0)
        lb_task_fewshot(t, shots, seed);
    free(file);
    if (rc) {
        lb_mc_task_free(t);
        return -1;
    }
    *out = t;
    return 0;
}
