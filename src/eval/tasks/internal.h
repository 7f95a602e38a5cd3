/* Helpers the task loaders share: line iteration over a whole-read file, and jsonl fields with
 * errors that name the file and line. */
#ifndef LB_TASKS_INTERNAL_H
#define LB_TASKS_INTERNAL_H

#include "core/error.h"
#include "eval/multichoice.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Dataset files are read whole; anything larger is not a task file. */
#define TASK_MAX_FILE ((size_t)1 << 30)

typedef struct {
    char *data;
    size_t len, off;
    int line;            /* number of the line last returned, from 1 */
    const char *path;
} task_lines;

int task_lines_open(task_lines *l, const char *path, lb_error *err);
/* Next line without its "\n" (and "\r"); false at the end. The line is NUL-terminated in
 * place. */
bool task_next_line(task_lines *l, char **s, size_t *n);
void task_lines_close(task_lines *l);

/* Parses one jsonl line as an object. */
json_t *task_json_object(const char *path, int line, const char *s, size_t n, lb_error *err);
/* Calls item for the object on each non-empty line of a jsonl file, in order, stopping at the
 * first failure (bad JSON or item's own error). */
typedef int (*task_jsonl_fn)(json_t *o, const char *path, int line, lb_mc_task *t, lb_error *err);
int task_jsonl_each(const char *path, lb_mc_task *t, task_jsonl_fn item, lb_error *err);
/* Field getters: fail naming path:line and the field when it is missing or of another type. */
int task_json_str(json_t *o, const char *key, const char *path, int line, const char **out,
                  lb_error *err);
/* An integer, or a string of digits (labels are stored both ways). */
int task_json_int(json_t *o, const char *key, const char *path, int line, long *out,
                  lb_error *err);
/* An array of 1..max strings. */
int task_json_strings(json_t *o, const char *key, const char *path, int line, int max,
                      json_t **arr, lb_error *err);
/* Whether the first non-blank line of a jsonl file has the key (false on any problem). */
bool task_jsonl_has_key(const char *path, const char *key);

#endif
