/* PIQA in its original release: valid.jsonl (goal, sol1, sol2) with the gold solution's index
 * on the matching line of valid-labels.lst. Prompt as the harness's piqa:
 * "Question: {goal}\nAnswer:" followed by " " + the solution. */
#include "eval/tasks/internal.h"
#include "eval/tasks/tasks.h"

#include "core/vec.h"

#include <stdlib.h>
#include <string.h>

int lb_task_piqa(const char *path, const char *labels_path, lb_mc_task *t, lb_error *err)
{
    task_lines l, lab;
    if (task_lines_open(&l, path, err))
        return -1;
    if (task_lines_open(&lab, labels_path, err)) {
        lb_fail_prefix(err, "labels of %s: ", path);
        task_lines_close(&l);
        return -1;
    }
    char *s, *ls;
    size_t n, ln;
    int rc = 0;
    while (rc == 0 && task_next_line(&l, &s, &n)) {
        if (!task_next_line(&lab, &ls, &ln)) {
            rc = lb_fail(err, "%s: has %d lines but %s has line %d; expected one label per "
                         "question", labels_path, lab.line, path, l.line);
            break;
        }
        json_t *o = task_json_object(path, l.line, s, n, err);
        if (!o) {
            rc = -1;
            break;
        }
        const char *goal, *sol1, *sol2;
        char *end;
        long gold = strtol(ls, &end, 10);
        if (task_json_str(o, "goal", path, l.line, &goal, err) ||
            task_json_str(o, "sol1", path, l.line, &sol1, err) ||
            task_json_str(o, "sol2", path, l.line, &sol2, err)) {
            rc = -1;
        } else if (!*ls || *end || gold < 0 || gold > 1) {
            rc = lb_fail(err, "%s:%d: expected the label 0 or 1 of %s line %d, found \"%.40s\"",
                         labels_path, lab.line, path, l.line, ls);
        } else {
            lb_mc_item *it = lb_mc_add_item(t, 2, (int)gold);
            lb_buf q = {0};
            lb_buf_appendf(&q, "Question: %s\nAnswer:", goal);
            it->context = lb_buf_cstr(&q);
            lb_mc_set_choice(it, 0, NULL, " ", sol1);
            lb_mc_set_choice(it, 1, NULL, " ", sol2);
        }
        json_decref(o);
    }
    if (rc == 0 && task_next_line(&lab, &ls, &ln))
        rc = lb_fail(err, "%s:%d: more labels than the %d questions of %s", labels_path,
                     lab.line, l.line, path);
    task_lines_close(&l);
    task_lines_close(&lab);
    return rc;
}
