/* MMLU in the Hendrycks layout: DIR/test/<subject>_test.csv and DIR/dev/<subject>_dev.csv,
 * rows of question, four answers and the letter of the right one (RFC 4180 quoting, newlines
 * allowed inside quotes). The prompt is the harness's mmlu default:
 *   "The following are multiple choice questions (with answers) about <subject>.\n\n"
 *   + k dev examples ("<question>\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer: <letter>", each
 *   followed by "\n\n") + the test question in the same form ending in "Answer:";
 * the choices are " A" .. " D". The dev examples are the first k of the subject's dev file.
 * Subjects are taken in name order and are the task's subtasks. */
#include "eval/tasks/internal.h"
#include "eval/tasks/tasks.h"

#include "core/file.h"
#include "core/vec.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *f[6];
} mmlu_row;

typedef struct {
    mmlu_row *rows;
    int n, cap;
} mmlu_rows;

static void rows_free(mmlu_rows *r)
{
    for (int i = 0; i < r->n; i++)
        for (int j = 0; j < 6; j++)
            free(r->rows[i].f[j]);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

/* Reads every record of a csv file; each must have exactly 6 fields and a letter A-D. */
static int read_csv(const char *path, mmlu_rows *out, lb_error *err)
{
    char *data;
    size_t len;
    memset(out, 0, sizeof *out);
    if (lb_read_file(path, TASK_MAX_FILE, &data, &len, err))
        return -1;
    size_t i = 0;
    int line = 1, rc = 0;
    while (i < len && rc == 0) {
        int rec_line = line;
        char *fields[7] = {0};
        int nf = 0;
        bool end_rec = false;
        while (!end_rec && rc == 0) {
            lb_buf fb = {0};
            if (i < len && data[i] == '"') {
                i++;
                for (;;) {
                    if (i >= len) {
                        rc = lb_fail(err, "%s:%d: a quoted field is never closed", path,
                                     rec_line);
                        break;
                    }
                    if (data[i] == '"') {
                        if (i + 1 < len && data[i + 1] == '"') {
                            lb_buf_append(&fb, "\"", 1);
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (data[i] == '\n')
                        line++;
                    lb_buf_append(&fb, &data[i++], 1);
                }
            }
            while (rc == 0 && i < len && data[i] != ',' && data[i] != '\n') {
                if (data[i] != '\r')
                    lb_buf_append(&fb, &data[i], 1);
                i++;
            }
            char *field = lb_buf_cstr(&fb);
            if (rc) {
                free(field);
                break;
            }
            if (nf < 7)
                fields[nf] = field;
            else
                free(field);
            nf++;
            if (i >= len || data[i] == '\n') {
                end_rec = true;
                line++;
            }
            i++;
        }
        if (rc == 0 && nf == 1 && fields[0][0] == 0) {
            free(fields[0]);   /* blank line */
            continue;
        }
        if (rc == 0 && nf != 6)
            rc = lb_fail(err, "%s:%d: expected 6 fields (question, A, B, C, D, answer), found %d",
                         path, rec_line, nf);
        if (rc == 0 && (strlen(fields[5]) != 1 || fields[5][0] < 'A' || fields[5][0] > 'D'))
            rc = lb_fail(err, "%s:%d: expected the answer letter A-D, found \"%.20s\"", path,
                         rec_line, fields[5]);
        if (rc == 0) {
            if (out->n == out->cap) {
                out->cap = out->cap ? 2 * out->cap : 64;
                out->rows = lb_realloc(out->rows, (size_t)out->cap * sizeof *out->rows);
            }
            memcpy(out->rows[out->n++].f, fields, sizeof(char *) * 6);
        } else {
            for (int k = 0; k < 7 && k < nf; k++)
                free(fields[k]);
        }
    }
    free(data);
    if (rc)
        rows_free(out);
    return rc;
}

static void append_question(lb_buf *b, const mmlu_row *r)
{
    /* question.strip() */
    const char *q = r->f[0], *e = q + strlen(q);
    while (q < e && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r'))
        q++;
    while (e > q && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    lb_buf_append(b, q, (size_t)(e - q));
    lb_buf_appendf(b, "\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:", r->f[1], r->f[2], r->f[3],
                   r->f[4]);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lb_task_mmlu(const char *dir, int shots, lb_mc_task *t, lb_error *err)
{
    char *test_dir = lb_path_join(dir, "test"), *dev_dir = lb_path_join(dir, "dev");
    DIR *d = opendir(test_dir);
    if (!d) {
        lb_fail(err, "%s: cannot open the directory; expected MMLU's test/ csv files",
                test_dir);
        free(test_dir);
        free(dev_dir);
        return -1;
    }
    char **subjects = NULL;
    int n_sub = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n > 9 && strcmp(de->d_name + n - 9, "_test.csv") == 0) {
            subjects = lb_realloc(subjects, (size_t)(n_sub + 1) * sizeof(char *));
            subjects[n_sub++] = lb_strndup(de->d_name, n - 9);
        }
    }
    closedir(d);
    qsort(subjects, (size_t)n_sub, sizeof(char *), cmp_str);
    int rc = n_sub == 0 ? lb_fail(err, "%s: no <subject>_test.csv files", test_dir) : 0;
    for (int s = 0; s < n_sub && rc == 0; s++) {
        lb_buf name = {0};
        lb_buf_appendf(&name, "%s_test.csv", subjects[s]);
        char *test_path = lb_path_join(test_dir, lb_buf_cstr(&name));
        name.n = 0;
        lb_buf_appendf(&name, "%s_dev.csv", subjects[s]);
        char *dev_path = lb_path_join(dev_dir, lb_buf_cstr(&name));
        lb_buf_free(&name);
        mmlu_rows test = {0}, dev = {0};
        if (read_csv(test_path, &test, err) ||
            (shots > 0 && read_csv(dev_path, &dev, err))) {
            rc = -1;
        } else if (shots > dev.n && shots > 0) {
            rc = lb_fail(err, "%s: has %d examples, fewer than the %d shots asked for",
                         dev_path, dev.n, shots);
        } else {
            lb_buf prefix = {0};
            lb_buf_append(&prefix, "The following are multiple choice questions (with answers) "
                          "about ", 65);
            for (const char *p = subjects[s]; *p; p++)
                lb_buf_append(&prefix, *p == '_' ? " " : p, 1);
            lb_buf_append(&prefix, ".\n\n", 3);
            for (int k = 0; k < shots; k++) {
                append_question(&prefix, &dev.rows[k]);
                lb_buf_appendf(&prefix, " %s\n\n", dev.rows[k].f[5]);
            }
            int sub = lb_mc_subtask(t, subjects[s]);
            for (int q = 0; q < test.n; q++) {
                lb_mc_item *it = lb_mc_add_item(t, 4, test.rows[q].f[5][0] - 'A');
                it->subtask = sub;
                lb_buf ctx = {0};
                lb_buf_append(&ctx, prefix.v, prefix.n);
                append_question(&ctx, &test.rows[q]);
                it->context = lb_buf_cstr(&ctx);
                static const char *const letters[] = {"A", "B", "C", "D"};
                for (int c = 0; c < 4; c++)
                    lb_mc_set_choice(it, c, NULL, " ", letters[c]);
            }
            lb_buf_free(&prefix);
        }
        rows_free(&test);
        rows_free(&dev);
        free(test_path);
        free(dev_path);
    }
    for (int s = 0; s < n_sub; s++)
        free(subjects[s]);
    free(subjects);
    free(test_dir);
    free(dev_dir);
    return rc;
}
