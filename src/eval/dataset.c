/* Text datasets: plain files, jsonl documents, and the named shortcuts (see dataset.h). */
#include "eval/dataset.h"
#include "core/file.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Larger evaluation texts than this are not what perplexity is run on. */
#define DATASET_MAX_BYTES ((size_t)1 << 30)

static const struct {
    const char *name, *file;
} shortcuts[] = {
    {"wikitext2", "wikitext2/wiki.test.raw"},
    {"c4", "c4/c4_validation_2k.jsonl"},
    {"tinystories", "tinystories/validation_head.txt"},
};

char *lb_dataset_resolve(const char *name, const char *data_dir)
{
    for (size_t i = 0; i < sizeof shortcuts / sizeof shortcuts[0]; i++) {
        if (strcmp(name, shortcuts[i].name) != 0)
            continue;
        const char *dir = data_dir && *data_dir ? data_dir : getenv("LOWBIT_DATA_DIR");
        if (!dir || !*dir)
            dir = "../shared/datasets";
        return lb_path_join(dir, shortcuts[i].file);
    }
    return lb_strdup(name);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void lb_dataset_free_docs(char **docs, size_t n_docs)
{
    for (size_t i = 0; i < n_docs; i++)
        free(docs[i]);
    free(docs);
}

int lb_dataset_jsonl_docs(const char *path, char ***docs, size_t *n_docs, lb_error *err)
{
    *docs = NULL;
    *n_docs = 0;
    char *data;
    size_t len;
    if (lb_read_file(path, DATASET_MAX_BYTES, &data, &len, err))
        return -1;
    char **out = NULL;
    size_t n = 0, cap = 0;
    size_t line = 0;
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < le) {
            json_error_t je;
            json_t *obj = json_loadb(p, (size_t)(le - p), 0, &je);
            const char *why = NULL;
            json_t *text = NULL;
            if (!obj)
                why = je.text;
            else if (!json_is_object(obj))
                why = "expected a JSON object";
            else if (!(text = json_object_get(obj, "text")))
                why = "no \"text\" field";
            else if (!json_is_string(text))
                why = "\"text\" is not a string";
            if (why) {
                lb_fail(err, "%s: line %zu: %s", path, line, why);
                json_decref(obj);
                lb_dataset_free_docs(out, n);
                free(data);
                return -1;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                out = lb_realloc(out, cap * sizeof *out);
            }
            out[n++] = lb_strndup(json_string_value(text), json_string_length(text));
            json_decref(obj);
        }
        p = nl ? nl + 1 : end;
    }
    free(data);
    if (n == 0) {
        free(out);
        return lb_fail(err, "%s: no documents (the file is empty)", path);
    }
    *docs = out;
    *n_docs = n;
    return 0;
}

int lb_dataset_load_text(const char *name, const char *data_dir, char **text, size_t *len,
                         lb_error *err)
{
    *text = NULL;
    *len = 0;
    char *path = lb_dataset_resolve(name, data_dir);
    if (lb_is_dir(path)) {
        lb_fail(err, "%s: is a directory, expected a text or jsonl file", path);
        free(path);
        return -1;
    }
    if (!lb_file_exists(path)) {
        lb_fail(err, "%s: no such file%s", path,
                strcmp(path, name) ? " (named by a dataset shortcut; set --data-dir)" : "");
        free(path);
        return -1;
    }
    if (ends_with(path, ".jsonl")) {
        char **docs;
        size_t n;
        if (lb_dataset_jsonl_docs(path, &docs, &n, err)) {
            free(path);
            return -1;
        }
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += strlen(docs[i]) + 1;
        char *out = lb_malloc(total + 1), *w = out;
        for (size_t i = 0; i < n; i++) {
            if (i)
                *w++ = ' ';
            size_t l = strlen(docs[i]);
            memcpy(w, docs[i], l);
            w += l;
        }
        *w = 0;
        lb_dataset_free_docs(docs, n);
        *text = out;
        *len = (size_t)(w - out);
    } else {
        char *data;
        size_t n;
        if (lb_read_file(path, DATASET_MAX_BYTES, &data, &n, err)) {
            free(path);
            return -1;
        }
        /* llama-perplexity drops exactly one trailing newline of its -f file. */
        if (n && data[n - 1] == '\n')
            data[--n] = 0;
        *text = data;
        *len = n;
    }
    if (*len == 0) {
        lb_fail(err, "%s: the file is empty, expected text", path);
        free(*text);
        *text = NULL;
        free(path);
        return -1;
    }
    free(path);
    return 0;
}
