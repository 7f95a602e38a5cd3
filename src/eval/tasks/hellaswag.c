/* HellaSwag loaders: llama.cpp's 6-line text file (context already cleaned as the harness
 * cleans it, gold index, four endings) and the original jsonl, cleaned here the harness's way:
 * query = preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)), choices =
 * preprocess(ending), each joined to the query with one space. */
#include "eval/tasks/internal.h"
#include "eval/tasks/tasks.h"

#include "core/vec.h"

#include <stdlib.h>
#include <string.h>

char *lb_hellaswag_preprocess(const char *text)
{
    /* strip() */
    const char *a = text, *b = text + strlen(text);
    while (a < b && (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r' || *a == '\v' || *a == '\f'))
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\n' || b[-1] == '\r' ||
                     b[-1] == '\v' || b[-1] == '\f'))
        b--;
    /* " [title]" → ". " */
    lb_buf s1 = {0};
    for (const char *p = a; p < b;) {
        if ((size_t)(b - p) >= 8 && memcmp(p, " [title]", 8) == 0) {
            lb_buf_append(&s1, ". ", 2);
            p += 8;
        } else {
            lb_buf_append(&s1, p++, 1);
        }
    }
    lb_buf_cstr(&s1);
    /* "\[.*?\]" removed: a '[' up to the nearest ']' on the same line ('.' stops at '\n') */
    lb_buf s2 = {0};
    for (size_t i = 0; i < s1.n;) {
        if (s1.v[i] == '[') {
            size_t j = i + 1;
            while (j < s1.n && s1.v[j] != ']' && s1.v[j] != '\n')
                j++;
            if (j < s1.n && s1.v[j] == ']') {
                i = j + 1;
                continue;
            }
        }
        lb_buf_append(&s2, &s1.v[i++], 1);
    }
    lb_buf_cstr(&s2);
    /* "  " → " ", one left-to-right pass as str.replace does */
    lb_buf s3 = {0};
    for (size_t i = 0; i < s2.n;) {
        if (i + 1 < s2.n && s2.v[i] == ' ' && s2.v[i + 1] == ' ') {
            lb_buf_append(&s3, " ", 1);
            i += 2;
        } else {
            lb_buf_append(&s3, &s2.v[i++], 1);
        }
    }
    lb_buf_free(&s1);
    lb_buf_free(&s2);
    return lb_buf_cstr(&s3);
}

int lb_task_hellaswag_text(const char *path, lb_mc_task *t, lb_error *err)
{
    task_lines l;
    if (task_lines_open(&l, path, err))
        return -1;
    char *s;
    size_t n;
    char *lines[6];
    int k = 0, rc = 0;
    while (task_next_line(&l, &s, &n)) {
        lines[k++] = s;
        if (k < 6)
            continue;
        k = 0;
        int label_line = l.line - 4;
        char *end;
        long gold = strtol(lines[1], &end, 10);
        if (!*lines[1] || *end || gold < 0 || gold > 3) {
            rc = lb_fail(err, "%s:%d: expected the gold ending's index 0..3, found \"%.40s\"",
                         path, label_line, lines[1]);
            break;
        }
        lb_mc_item *it = lb_mc_add_item(t, 4, (int)gold);
        it->context = lb_strdup(lines[0]);
        for (int c = 0; c < 4; c++)
            lb_mc_set_choice(it, c, NULL, " ", lines[2 + c]);
    }
    /* A trailing empty line is the file's final newline seen twice; anything else is a cut. */
    if (rc == 0 && k != 0 && !(k == 1 && lines[0][0] == 0))
        rc = lb_fail(err, "%s:%d: the file ends inside an item (%d of its 6 lines); expected "
                     "context, gold index and 4 endings per item", path, l.line, k);
    task_lines_close(&l);
    return rc;
}

/* Python's str.capitalize for ASCII: first letter upper, the rest lower. */
static char *capitalize(const char *s)
{
    char *c = lb_strdup(s);
    for (size_t i = 0; c[i]; i++) {
        if (i == 0 && c[i] >= 'a' && c[i] <= 'z')
            c[i] = (char)(c[i] - 'a' + 'A');
        else if (i > 0 && c[i] >= 'A' && c[i] <= 'Z')
            c[i] = (char)(c[i] - 'A' + 'a');
    }
    return c;
}

/* One item of the original jsonl: "activity_label: ctx_a Ctx_b" and four endings. */
static int jsonl_item(json_t *o, const char *path, int line, lb_mc_task *t, lb_error *err)
{
    const char *label_text, *ctx_a, *ctx_b;
    long gold;
    json_t *endings;
    if (task_json_str(o, "activity_label", path, line, &label_text, err) ||
        task_json_str(o, "ctx_a", path, line, &ctx_a, err) ||
        task_json_str(o, "ctx_b", path, line, &ctx_b, err) ||
        task_json_strings(o, "endings", path, line, LB_MC_MAX_CHOICES, &endings, err) ||
        task_json_int(o, "label", path, line, &gold, err))
        return -1;
    if (json_array_size(endings) != 4)
        return lb_fail(err, "%s:%d: expected 4 endings, found %zu", path, line,
                       json_array_size(endings));
    if (gold < 0 || gold > 3)
        return lb_fail(err, "%s:%d: label %ld is not an index of the 4 endings", path, line, gold);
    char *cap = capitalize(ctx_b);
    lb_buf q = {0};
    lb_buf_appendf(&q, "%s: %s %s", label_text, ctx_a, cap);
    free(cap);
    lb_mc_item *it = lb_mc_add_item(t, 4, (int)gold);
    it->context = lb_hellaswag_preprocess(lb_buf_cstr(&q));
    lb_buf_free(&q);
    for (int c = 0; c < 4; c++) {
        char *e = lb_hellaswag_preprocess(json_string_value(json_array_get(endings, c)));
        lb_mc_set_choice(it, c, NULL, " ", e);
        free(e);
    }
    return 0;
}

int lb_task_hellaswag_jsonl(const char *path, lb_mc_task *t, lb_error *err)
{
    return task_jsonl_each(path, t, jsonl_item, err);
}
