/* Pipeline config: YAML through libyaml's document API (every node keeps its line), walked by
 * hand so each key is checked for its type and range and an unknown key is an error, not a
 * silently ignored typo. */
#include "pipeline/config.h"

#include "core/file.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

typedef struct {
    const char *path;
    char *dir;           /* the config's directory, for relative inputs */
    yaml_document_t *doc;
    lb_error *err;
} walker;

static const char *const KNOWN_DATASETS[] = {"wikitext2", "c4", "tinystories"};
static const char *const KNOWN_TASKS[] = {
    "hellaswag", "piqa", "arc_easy", "arc_challenge", "mmlu", "truthfulqa_mc1",
    "truthfulqa_mc2", "winogrande", "lambada", "boolq", "copa"};
static const char *const FORMATS[] = {"md", "html", "pdf", "csv", "json"};

bool lb_pl_known_dataset(const char *name)
{
    for (size_t i = 0; i < sizeof KNOWN_DATASETS / sizeof KNOWN_DATASETS[0]; i++)
        if (strcmp(name, KNOWN_DATASETS[i]) == 0)
            return true;
    return false;
}

static int line_of(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

static int failat(walker *w, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failat(walker *w, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return lb_fail(w->err, "%s:%d: %s: %s", w->path, n ? line_of(n) : 1, key, what);
}

static yaml_node_t *node(walker *w, int idx) { return yaml_document_get_node(w->doc, idx); }

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return n->data.scalar.length ? "a scalar" : "empty";
    }
}

static int get_string(walker *w, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0)
        return failat(w, n, key, "expected a non-empty string, got %s", kind_name(n));
    free(*out);
    *out = lb_strdup(scalar(n));
    return 0;
}

static int get_int(walker *w, const yaml_node_t *n, const char *key, long lo, long hi, int *out)
{
    const char *s = scalar(n);
    if (!s || !is_plain(n) || !*s)
        return failat(w, n, key, "expected an integer, got %s", s && *s ? "a quoted string" : kind_name(n));
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno)
        return failat(w, n, key, "expected an integer, got \"%s\"", s);
    if (v < lo || v > hi)
        return failat(w, n, key, "%ld is out of range %ld..%ld", v, lo, hi);
    *out = (int)v;
    return 0;
}

static int get_double(walker *w, const yaml_node_t *n, const char *key, double lo, double hi,
                      double *out)
{
    const char *s = scalar(n);
    if (!s || !is_plain(n) || !*s)
        return failat(w, n, key, "expected a number, got %s", s && *s ? "a quoted string" : kind_name(n));
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v))
        return failat(w, n, key, "expected a number, got \"%s\"", s);
    if (v < lo || v > hi)
        return failat(w, n, key, "%g is out of range %g..%g", v, lo, hi);
    *out = v;
    return 0;
}

static int get_bool(walker *w, const yaml_node_t *n, const char *key, bool *out)
{
    const char *s = scalar(n);
    if (s && is_plain(n)) {
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
        for (int i = 0; i < 3; i++) {
            if (strcasecmp(s, yes[i]) == 0) { *out = true; return 0; }
            if (strcasecmp(s, no[i]) == 0) { *out = false; return 0; }
        }
    }
    return failat(w, n, key, "expected true or false, got %s%s%s", s && *s ? "\"" : "",
                  s && *s ? s : kind_name(n), s && *s ? "\"" : "");
}

/* Absolute, so stage commands and their cache keys do not depend on the directory the
 * pipeline was started from. */
static char *absolute(char *path)
{
    char *abs = realpath(path, NULL);
    if (!abs)
        return path;
    free(path);
    return abs;
}

/* Finds an input file: as given, then beside the config. */
static int get_file(walker *w, const yaml_node_t *n, const char *key, char **out)
{
    char *given = NULL;
    if (get_string(w, n, key, &given))
        return -1;
    if (lb_file_exists(given) || given[0] == '/') {
        if (!lb_file_exists(given)) {
            int rc = failat(w, n, key, "%s does not exist", given);
            free(given);
            return rc;
        }
        free(*out);
        *out = absolute(given);
        return 0;
    }
    char *beside = lb_path_join(w->dir, given);
    if (!lb_file_exists(beside)) {
        int rc = failat(w, n, key, "%s does not exist (looked in the current directory and in %s)",
                        given, w->dir);
        free(beside);
        free(given);
        return rc;
    }
    free(given);
    free(*out);
    *out = absolute(beside);
    return 0;
}

/* Iterates a mapping, refusing duplicate and unknown keys. */
typedef int (*key_fn)(walker *w, const char *key, const char *path, yaml_node_t *value, void *ctx);

static int walk_mapping(walker *w, yaml_node_t *map, const char *path, const char *const *keys,
                        int n_keys, key_fn fn, void *ctx)
{
    if (map->type != YAML_MAPPING_NODE)
        return failat(w, map, path, "expected a mapping, got %s", kind_name(map));
    yaml_node_pair_t *start = map->data.mapping.pairs.start, *top = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = node(w, p->key), *v = node(w, p->value);
        const char *ks = scalar(k);
        if (!ks)
            return failat(w, k, path, "keys must be plain names, got %s", kind_name(k));
        char full[256];
        snprintf(full, sizeof full, "%s%s%s", path, *path ? "." : "", ks);
        for (yaml_node_pair_t *q = start; q < p; q++) {
            const char *qs = scalar(node(w, q->key));
            if (qs && strcmp(qs, ks) == 0)
                return failat(w, k, full, "given twice (first on line %d)", line_of(node(w, q->key)));
        }
        bool known = false;
        for (int i = 0; i < n_keys; i++)
            known |= strcmp(keys[i], ks) == 0;
        if (!known) {
            char list[512] = "";
            for (int i = 0; i < n_keys; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", keys[i]);
            return failat(w, k, full, "unknown key (expected one of %s)", list);
        }
        if (fn(w, ks, full, v, ctx))
            return -1;
    }
    return 0;
}

/* A list of scalars (a lone scalar counts as a one-item list). */
static int get_string_list(walker *w, yaml_node_t *n, const char *key, char ***out, int *count)
{
    yaml_node_item_t *items = NULL;
    int n_items = 1;
    if (n->type == YAML_SEQUENCE_NODE) {
        items = n->data.sequence.items.start;
        n_items = (int)(n->data.sequence.items.top - items);
    }
    for (int i = 0; i < *count; i++)
        free((*out)[i]);
    free(*out);
    *out = lb_calloc((size_t)n_items + 1, sizeof **out);
    *count = 0;
    for (int i = 0; i < n_items; i++) {
        yaml_node_t *it = items ? node(w, items[i]) : n;
        char k[256];
        snprintf(k, sizeof k, "%s[%d]", key, i);
        if (get_string(w, it, k, &(*out)[i]))
            return -1;
        (*count)++;
        for (int j = 0; j < i; j++)
            if (strcmp((*out)[j], (*out)[i]) == 0)
                return failat(w, it, k, "\"%s\" is listed twice", (*out)[i]);
    }
    return 0;
}

/* ---- sections ---- */

static int calib_key(walker *w, const char *key, const char *path, yaml_node_t *v, void *ctx)
{
    lb_pl_config *c = ctx;
    if (strcmp(key, "file") == 0)
        return get_file(w, v, path, &c->calib_file);
    if (strcmp(key, "samples") == 0)
        return get_int(w, v, path, 1, 100000, &c->calib_samples);
    return get_int(w, v, path, 8, 1 << 16, &c->calib_seqlen);
}

static bool name_ok(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    return true;
}

typedef struct {
    lb_pl_method *m;
    yaml_node_t *bits_node, *group_node, *act_node, *alpha_node, *damp_node;
} method_ctx;

static int method_key(walker *w, const char *key, const char *path, yaml_node_t *v, void *ctx)
{
    method_ctx *mc = ctx;
    lb_pl_method *m = mc->m;
    if (strcmp(key, "name") == 0) {
        if (get_string(w, v, path, &m->name))
            return -1;
        if (!name_ok(m->name) || strcmp(m->name, "baseline") == 0)
            return failat(w, v, path, "\"%s\" must be letters, digits, '-', '_' or '.' and not \"baseline\"",
                          m->name);
        return 0;
    }
    if (strcmp(key, "method") == 0) {
        if (get_string(w, v, path, &m->method))
            return -1;
        const char *ok[] = {"rtn", "gptq", "awq", "smoothquant"};
        for (int i = 0; i < 4; i++)
            if (strcmp(m->method, ok[i]) == 0)
                return 0;
        return failat(w, v, path, "\"%s\" is not one of rtn, gptq, awq, smoothquant", m->method);
    }
    if (strcmp(key, "bits") == 0) {
        mc->bits_node = v;
        return get_int(w, v, path, 0, 64, &m->bits);
    }
    if (strcmp(key, "group_size") == 0) {
        mc->group_node = v;
        return get_int(w, v, path, 0, 1 << 20, &m->group_size);
    }
    if (strcmp(key, "act_order") == 0) {
        mc->act_node = v;
        return get_bool(w, v, path, &m->act_order);
    }
    if (strcmp(key, "sym") == 0) {
        m->sym_set = true;
        return get_bool(w, v, path, &m->sym);
    }
    if (strcmp(key, "alpha") == 0) {
        mc->alpha_node = v;
        return get_double(w, v, path, 0, 1, &m->alpha);
    }
    mc->damp_node = v;
    return get_double(w, v, path, 0, 1, &m->damp);
}

/* What each method can do: bit widths and group sizes. */
static int check_method(walker *w, yaml_node_t *item, const char *path, method_ctx *mc)
{
    lb_pl_method *m = mc->m;
    char k[256];
    if (!m->method)
        return failat(w, item, path, "method: missing (one of rtn, gptq, awq, smoothquant)");
    if (!m->name)
        return failat(w, item, path, "name: missing");
    struct {
        const char *method;
        int bits[4], n_bits, def_bits;
        int groups[5], n_groups, def_group;
    } caps[] = {
        {"rtn", {2, 3, 4, 8}, 4, 8, {0, 32, 64, 128, 256}, 5, 0},
        {"gptq", {2, 3, 4, 8}, 4, 4, {0, 32, 64, 128, 256}, 5, 128},
        {"awq", {4}, 1, 4, {32, 64, 128}, 3, 128},
        {"smoothquant", {8}, 1, 8, {0}, 1, 0},
    };
    for (int c = 0; c < 4; c++) {
        if (strcmp(caps[c].method, m->method))
            continue;
        if (!mc->bits_node)
            m->bits = caps[c].def_bits;
        if (!mc->group_node)
            m->group_size = caps[c].def_group;
        bool ok = false;
        char list[64] = "";
        for (int i = 0; i < caps[c].n_bits; i++) {
            ok |= m->bits == caps[c].bits[i];
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? ", " : "", caps[c].bits[i]);
        }
        snprintf(k, sizeof k, "%s.bits", path);
        if (!ok)
            return failat(w, mc->bits_node, k, "%d is not one of %s for %s", m->bits, list, m->method);
        ok = false;
        list[0] = 0;
        for (int i = 0; i < caps[c].n_groups; i++) {
            ok |= m->group_size == caps[c].groups[i];
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? ", " : "", caps[c].groups[i]);
        }
        snprintf(k, sizeof k, "%s.group_size", path);
        if (!ok)
            return failat(w, mc->group_node, k, "%d is not one of %s for %s", m->group_size, list,
                          m->method);
    }
    if (mc->act_node && m->act_order && strcmp(m->method, "gptq")) {
        snprintf(k, sizeof k, "%s.act_order", path);
        return failat(w, mc->act_node, k, "only gptq reorders columns, not %s", m->method);
    }
    if (mc->alpha_node && strcmp(m->method, "smoothquant")) {
        snprintf(k, sizeof k, "%s.alpha", path);
        return failat(w, mc->alpha_node, k, "only smoothquant takes alpha, not %s", m->method);
    }
    if (mc->damp_node && strcmp(m->method, "gptq")) {
        snprintf(k, sizeof k, "%s.damp", path);
        return failat(w, mc->damp_node, k, "only gptq takes damp, not %s", m->method);
    }
    return 0;
}

static int parse_methods(walker *w, yaml_node_t *v, lb_pl_config *c)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return failat(w, v, "methods", "expected a list of methods, got %s", kind_name(v));
    yaml_node_item_t *items = v->data.sequence.items.start;
    int n = (int)(v->data.sequence.items.top - items);
    if (n > 256)
        return failat(w, v, "methods", "%d methods, at most 256", n);
    c->methods = lb_calloc((size_t)n + 1, sizeof *c->methods);
    static const char *const keys[] = {"name", "method", "bits", "group_size", "act_order", "sym", "alpha", "damp"};
    for (int i = 0; i < n; i++) {
        yaml_node_t *item = node(w, items[i]);
        lb_pl_method *m = &c->methods[i];
        m->alpha = NAN;
        m->damp = NAN;
        m->sym = true;
        m->line = line_of(item);
        c->n_methods = i + 1;
        char path[64];
        snprintf(path, sizeof path, "methods[%d]", i);
        method_ctx mc = {.m = m};
        if (walk_mapping(w, item, path, keys, 8, method_key, &mc) || check_method(w, item, path, &mc))
            return -1;
        for (int j = 0; j < i; j++)
            if (strcmp(c->methods[j].name, m->name) == 0) {
                char k[80];
                snprintf(k, sizeof k, "%s.name", path);
                return failat(w, item, k, "\"%s\" is also the name of methods[%d]", m->name, j);
            }
    }
    return 0;
}

static int eval_key(walker *w, const char *key, const char *path, yaml_node_t *v, void *ctx)
{
    lb_pl_config *c = ctx;
    if (strcmp(key, "perplexity") == 0) {
        if (get_string_list(w, v, path, &c->ppl, &c->n_ppl))
            return -1;
        /* A name the perplexity command knows, or a text file. */
        for (int i = 0; i < c->n_ppl; i++) {
            if (lb_pl_known_dataset(c->ppl[i]))
                continue;
            yaml_node_t *it = v->type == YAML_SEQUENCE_NODE ? node(w, v->data.sequence.items.start[i]) : v;
            char k[128];
            snprintf(k, sizeof k, "%s[%d]", path, i);
            if (get_file(w, it, k, &c->ppl[i])) {
                char why[1024];
                snprintf(why, sizeof why, "%s", w->err->msg);
                return lb_fail(w->err, "%s (datasets by name: wikitext2, c4, tinystories)", why);
            }
        }
        return 0;
    }
    if (strcmp(key, "tasks") == 0) {
        if (get_string_list(w, v, path, &c->tasks, &c->n_tasks))
            return -1;
        for (int i = 0; i < c->n_tasks; i++) {
            bool ok = false;
            for (size_t t = 0; t < sizeof KNOWN_TASKS / sizeof KNOWN_TASKS[0]; t++)
                ok |= strcmp(KNOWN_TASKS[t], c->tasks[i]) == 0;
            if (!ok) {
                yaml_node_t *it = v->type == YAML_SEQUENCE_NODE ? node(w, v->data.sequence.items.start[i]) : v;
                char k[128];
                snprintf(k, sizeof k, "%s[%d]", path, i);
                return failat(w, it, k, "unknown task \"%s\" (known: hellaswag, piqa, arc_easy, "
                              "arc_challenge, mmlu, truthfulqa_mc1, truthfulqa_mc2, winogrande, "
                              "lambada, boolq, copa)", c->tasks[i]);
            }
        }
        return 0;
    }
    if (strcmp(key, "kld") == 0)
        return get_bool(w, v, path, &c->kld);
    if (strcmp(key, "limit") == 0)
        return get_int(w, v, path, 0, INT_MAX, &c->limit);
    if (strcmp(key, "chunks") == 0)
        return get_int(w, v, path, 0, INT_MAX, &c->ppl_chunks);
    return get_int(w, v, path, 0, 1 << 20, &c->ctx);
}

static int bench_key(walker *w, const char *key, const char *path, yaml_node_t *v, void *ctx)
{
    lb_pl_config *c = ctx;
    if (strcmp(key, "batch_sizes") == 0) {
        yaml_node_item_t *items = NULL;
        int n = 1;
        if (v->type == YAML_SEQUENCE_NODE) {
            items = v->data.sequence.items.start;
            n = (int)(v->data.sequence.items.top - items);
        }
        if (n < 1 || n > 64)
            return failat(w, v, path, "expected 1 to 64 batch sizes, got %d", n);
        free(c->batch_sizes);
        c->batch_sizes = lb_calloc((size_t)n, sizeof *c->batch_sizes);
        c->n_batch = n;
        for (int i = 0; i < n; i++) {
            char k[128];
            snprintf(k, sizeof k, "%s[%d]", path, i);
            if (get_int(w, items ? node(w, items[i]) : v, k, 1, 4096, &c->batch_sizes[i]))
                return -1;
        }
        return 0;
    }
    if (strcmp(key, "prompt") == 0)
        return get_int(w, v, path, 1, 1 << 16, &c->prompt);
    if (strcmp(key, "gen") == 0)
        return get_int(w, v, path, 1, 1 << 16, &c->gen);
    return get_int(w, v, path, 1, 100000, &c->reps);
}

static int report_key(walker *w, const char *key, const char *path, yaml_node_t *v, void *ctx)
{
    lb_pl_config *c = ctx;
    if (strcmp(key, "output") == 0)
        return get_string(w, v, path, &c->report_output);
    if (get_string_list(w, v, path, &c->formats, &c->n_formats))
        return -1;
    for (int i = 0; i < c->n_formats; i++) {
        bool ok = false;
        for (int f = 0; f < 5; f++)
            ok |= strcmp(FORMATS[f], c->formats[i]) == 0;
        if (!ok) {
            yaml_node_t *it = v->type == YAML_SEQUENCE_NODE ? node(w, v->data.sequence.items.start[i]) : v;
            char k[128];
            snprintf(k, sizeof k, "%s[%d]", path, i);
            return failat(w, it, k, "\"%s\" is not one of md, html, pdf, csv, json", c->formats[i]);
        }
    }
    return 0;
}

static int top_key(walker *w, const char *key, const char *path, yaml_node_t *v, void *ctx)
{
    lb_pl_config *c = ctx;
    if (strcmp(key, "model") == 0)
        return get_file(w, v, path, &c->model);
    if (strcmp(key, "calibration") == 0) {
        static const char *const keys[] = {"file", "samples", "seqlen"};
        if (walk_mapping(w, v, path, keys, 3, calib_key, c))
            return -1;
        if (!c->calib_file)
            return failat(w, v, "calibration.file", "missing");
        return 0;
    }
    if (strcmp(key, "methods") == 0)
        return parse_methods(w, v, c);
    if (strcmp(key, "evaluation") == 0) {
        static const char *const keys[] = {"perplexity", "tasks", "kld", "limit", "ctx", "chunks"};
        return walk_mapping(w, v, path, keys, 6, eval_key, c);
    }
    if (strcmp(key, "benchmark") == 0) {
        static const char *const keys[] = {"batch_sizes", "prompt", "gen", "reps"};
        c->bench = true;
        return walk_mapping(w, v, path, keys, 4, bench_key, c);
    }
    static const char *const keys[] = {"formats", "output"};
    return walk_mapping(w, v, path, keys, 2, report_key, c);
}

int lb_pl_config_parse(const char *path, const char *text, size_t len, lb_pl_config *cfg,
                       lb_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return lb_fail(err, "%s: cannot start the YAML parser", path);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int rc = lb_fail(err, "%s:%d: YAML: %s%s%s", path, (int)parser.problem_mark.line + 1,
                         parser.problem ? parser.problem : "syntax error",
                         parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_parser_delete(&parser);
    walker w = {path, lb_path_dir(path), &doc, err};
    cfg->path = lb_strdup(path);
    cfg->text = lb_strndup(text, len);
    cfg->calib_samples = 128;
    cfg->calib_seqlen = 512;
    cfg->prompt = 128;
    cfg->gen = 128;
    cfg->reps = 5;
    int rc = -1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    static const char *const keys[] = {"model", "calibration", "methods", "evaluation", "benchmark", "report"};
    if (!root) {
        lb_fail(err, "%s:1: model: missing (the file is empty)", path);
        goto done;
    }
    if (walk_mapping(&w, root, "", keys, 6, top_key, cfg))
        goto done;
    if (!cfg->model) {
        failat(&w, root, "model", "missing");
        goto done;
    }
    for (int i = 0; i < cfg->n_methods; i++)
        if (strcmp(cfg->methods[i].method, "rtn") && !cfg->calib_file) {
            lb_fail(err, "%s:%d: methods[%d].method: %s needs calibration data, and there is no calibration: {file: ...}",
                    path, cfg->methods[i].line, i, cfg->methods[i].method);
            goto done;
        }
    if (cfg->kld && cfg->n_ppl == 0) {
        lb_fail(err, "%s:1: evaluation.kld: needs a text, and evaluation.perplexity names none", path);
        goto done;
    }
    if (!cfg->formats) {
        const char *def[] = {"md", "html", "csv", "json"};
        cfg->formats = lb_calloc(5, sizeof *cfg->formats);
        for (int i = 0; i < 4; i++)
            cfg->formats[i] = lb_strdup(def[i]);
        cfg->n_formats = 4;
    }
    if (cfg->bench && !cfg->batch_sizes) {
        cfg->batch_sizes = lb_calloc(1, sizeof *cfg->batch_sizes);
        cfg->batch_sizes[0] = 1;
        cfg->n_batch = 1;
    }
    rc = 0;
done:
    yaml_document_delete(&doc);
    free(w.dir);
    if (rc)
        lb_pl_config_free(cfg);
    return rc;
}

int lb_pl_config_load(const char *path, lb_pl_config *cfg, lb_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    char *text;
    size_t len;
    if (lb_read_file(path, 1 << 20, &text, &len, err))
        return -1;
    int rc = lb_pl_config_parse(path, text, len, cfg, err);
    free(text);
    return rc;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void lb_pl_config_free(lb_pl_config *cfg)
{
    free(cfg->path);
    free(cfg->text);
    free(cfg->model);
    free(cfg->calib_file);
    for (int i = 0; i < cfg->n_methods; i++) {
        free(cfg->methods[i].name);
        free(cfg->methods[i].method);
    }
    free(cfg->methods);
    free_list(cfg->ppl, cfg->n_ppl);
    free_list(cfg->tasks, cfg->n_tasks);
    free(cfg->batch_sizes);
    free_list(cfg->formats, cfg->n_formats);
    free(cfg->report_output);
    memset(cfg, 0, sizeof *cfg);
}
