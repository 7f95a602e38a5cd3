/* MosaicML in-context-learning jsonl (the files in datasets/icl/), one record per line:
 *  - multiple choice: {"query", "choices", "gold"}; a query in the "Question: ..." form gets
 *    "\nAnswer:" after it as the harness's ARC/PIQA/BoolQ prompts have, other queries (COPA's
 *    "..., therefore") are used as they are; each choice follows with one space;
 *  - schema (winogrande): {"context_options", "continuation", "gold"}: partial scoring, the
 *    continuation after each filled-in context;
 *  - language modelling (lambada): {"context", "continuation"}. */
#include "eval/tasks/internal.h"
#include "eval/tasks/tasks.h"

#include "core/vec.h"

#include <stdlib.h>
#include <string.h>

static bool space_at(const char *s, bool end)
{
    size_t n = strlen(s);
    if (n == 0)
        return false;
    char c = end ? s[n - 1] : s[0];
    return c == ' ' || c == '\n' || c == '\t';
}

static char *mc_context(const char *query)
{
    if (strncmp(query, "Question:", 9) != 0 && !strstr(query, "\nQuestion:"))
        return lb_strdup(query);
    size_t n = strlen(query);
    while (n > 0 && (query[n - 1] == ' ' || query[n - 1] == '\n' || query[n - 1] == '\r'))
        n--;
    lb_buf b = {0};
    lb_buf_append(&b, query, n);
    lb_buf_append(&b, "\nAnswer:", 8);
    return lb_buf_cstr(&b);
}

static int record(json_t *o, const char *path, int line, lb_mc_task *t, lb_error *err)
{
    long gold = 0;
    json_t *arr;
    if (t->kind == LB_MC_LAMBADA) {
        const char *ctx, *cont;
        if (task_json_str(o, "context", path, line, &ctx, err) ||
            task_json_str(o, "continuation", path, line, &cont, err))
            return -1;
        if (!*cont)
            return lb_fail(err, "%s:%d: empty \"continuation\"", path, line);
        lb_mc_item *it = lb_mc_add_item(t, 1, 0);
        it->context = lb_strdup(ctx);
        /* The join space belongs to the word; norm_len is unused for lambada. */
        lb_mc_set_choice(it, 0, NULL, space_at(ctx, true) || space_at(cont, false) ? "" : " ",
                         cont);
        return 0;
    }
    if (t->kind == LB_MC_PARTIAL) {
        const char *cont;
        if (task_json_strings(o, "context_options", path, line, LB_MC_MAX_CHOICES, &arr, err) ||
            task_json_str(o, "continuation", path, line, &cont, err) ||
            task_json_int(o, "gold", path, line, &gold, err))
            return -1;
        int nc = (int)json_array_size(arr);
        if (nc < 2)
            return lb_fail(err, "%s:%d: expected at least 2 \"context_options\"", path, line);
        if (gold < 0 || gold >= nc)
            return lb_fail(err, "%s:%d: gold %ld is not an index of the %d context options",
                           path, line, gold, nc);
        lb_mc_item *it = lb_mc_add_item(t, nc, (int)gold);
        for (int c = 0; c < nc; c++) {
            const char *ctx = json_string_value(json_array_get(arr, (size_t)c));
            lb_mc_set_choice(it, c, ctx, space_at(ctx, true) || space_at(cont, false) ? "" : " ",
                             cont);
        }
        return 0;
    }
    const char *query;
    if (task_json_str(o, "query", path, line, &query, err) ||
        task_json_strings(o, "choices", path, line, LB_MC_MAX_CHOICES, &arr, err) ||
        task_json_int(o, "gold", path, line, &gold, err))
        return -1;
    int nc = (int)json_array_size(arr);
    if (nc < 2)
        return lb_fail(err, "%s:%d: expected at least 2 \"choices\", found %d", path, line, nc);
    if (gold < 0 || gold >= nc)
        return lb_fail(err, "%s:%d: gold %ld is not an index of the %d choices", path, line,
                       gold, nc);
    lb_mc_item *it = lb_mc_add_item(t, nc, (int)gold);
    it->context = mc_context(query);
    for (int c = 0; c < nc; c++)
        lb_mc_set_choice(it, c, NULL, " ", json_string_value(json_array_get(arr, (size_t)c)));
    return 0;
}

int lb_task_icl(const char *path, lb_mc_task *t, lb_error *err)
{
    return task_jsonl_each(path, t, record, err);
}
