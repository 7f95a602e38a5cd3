/* Multiple-choice task loaders, one per dataset format (this directory), behind one entry
 * point that maps a task name to its loader and its default file under the data directory:
 *
 *   hellaswag       hellaswag/validation_full.txt   llama.cpp's 6-line text, or the original
 *                                                   jsonl (ctx_a/ctx_b/endings/label)
 *   piqa            piqa/valid.jsonl (+ valid-labels.lst beside it), or MosaicML ICL jsonl
 *   arc_easy        icl/arc_easy.jsonl              MosaicML ICL jsonl: query/choices/gold
 *   arc_challenge   icl/arc_challenge.jsonl
 *   copa            icl/copa.jsonl
 *   boolq           icl/boolq.jsonl
 *   winogrande      icl/winogrande.jsonl            context_options/continuation/gold
 *   lambada         icl/lambada_openai.jsonl        context/continuation
 *   mmlu            mmlu/ (dev/ and test/ csv)      Hendrycks layout, 57 subjects
 *   truthfulqa_mc1  truthfulqa/mc_task.json
 *   truthfulqa_mc2  truthfulqa/mc_task.json
 *
 * The data directory is data_dir when given, else $LOWBIT_DATA_DIR, else ../shared/datasets
 * relative to the current directory. Every error names the file and line (or item) and what
 * was expected. */
#ifndef LB_TASKS_H
#define LB_TASKS_H

#include "eval/multichoice.h"

#include <stdint.h>

typedef struct {
    int shots;        /* few-shot examples; -1: the task's default (MMLU 5, others 0) */
    uint64_t seed;    /* picks the few-shot examples of tasks without a dev split */
} lb_task_options;

/* Task names, NULL-terminated. */
extern const char *const lb_task_names[];

/* The default file (or directory) of a task; malloc'd, NULL for an unknown task. */
char *lb_task_default_path(const char *task, const char *data_dir);

/* Loads task `task` from path (NULL: its default file). */
int lb_task_load(const char *task, const char *path, const char *data_dir,
                 const lb_task_options *o, lb_mc_task **out, lb_error *err);

/* The loaders by format (path is the file or, for MMLU, the directory). */
int lb_task_hellaswag_text(const char *path, lb_mc_task *t, lb_error *err);
int lb_task_hellaswag_jsonl(const char *path, lb_mc_task *t, lb_error *err);
int lb_task_piqa(const char *path, const char *labels_path, lb_mc_task *t, lb_error *err);
/* MosaicML in-context-learning jsonl; the record layout must suit t->kind (LB_MC_CHOICE:
 * query/choices/gold, LB_MC_PARTIAL: context_options/continuation/gold, LB_MC_LAMBADA:
 * context/continuation). */
int lb_task_icl(const char *path, lb_mc_task *t, lb_error *err);
int lb_task_mmlu(const char *dir, int shots, lb_mc_task *t, lb_error *err);
/* t->kind LB_MC_MC1 or LB_MC_MC2. */
int lb_task_truthfulqa(const char *path, lb_mc_task *t, lb_error *err);

/* Harness HellaSwag text cleanup: strip, " [title]" → ". ", drop "[...]", "  " → " ".
 * Returns a malloc'd string. */
char *lb_hellaswag_preprocess(const char *text);

/* Puts k examples (context + gold continuation of other items, chosen by seed) before each
 * item's context, separated by blank lines. */
void lb_task_fewshot(lb_mc_task *t, int k, uint64_t seed);

#endif
