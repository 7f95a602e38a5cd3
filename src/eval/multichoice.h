/* Multiple-choice evaluation by log-likelihood, as lm-evaluation-harness reports it.
 *
 * A task is a list of items; an item offers choices, each a (context, continuation) request,
 * and names the gold choice. Usually every choice shares the item's context and the
 * continuations differ; winogrande's partial scoring gives each choice its own context (the
 * sentence up to the blank, filled with that option) and one shared continuation.
 *
 *  - acc:      the choice with the largest sum of log-probabilities is the gold one;
 *  - acc_norm: the same with each sum divided by the choice's length in bytes (the choice text
 *              without the space that joins it to the context);
 *  - mc2 (TruthfulQA): the probability mass of the true answers, normalized over all answers,
 *              exp(ll) of each answer summed;
 *  - lambada:  one continuation (the last word); acc is 1 when greedy decoding reproduces it
 *              (the harness's is_greedy), and perplexity is exp(-mean log-likelihood).
 * Each metric is the mean over items with the sample standard error of that mean
 * (sample standard deviation / sqrt(n)). Tasks with subtasks (MMLU subjects) also get one
 * figure per subtask, and the headline figure is their macro average, whose standard error is
 * sqrt(sum se_i^2) / k. */
#ifndef LB_MULTICHOICE_H
#define LB_MULTICHOICE_H

#include "core/error.h"
#include "core/progress.h"
#include "model/engine.h"

#include <stdbool.h>

/* Loaders refuse items with more choices. */
#define LB_MC_MAX_CHOICES 64

typedef enum {
    LB_MC_CHOICE,    /* acc + acc_norm */
    LB_MC_PARTIAL,   /* winogrande: per-choice contexts, acc */
    LB_MC_MC1,       /* TruthfulQA MC1: acc, gold is the first choice */
    LB_MC_MC2,       /* TruthfulQA MC2 */
    LB_MC_LAMBADA,   /* last word: acc (greedy) + perplexity */
} lb_mc_kind;

typedef struct {
    char *context;       /* shared context, or NULL when each choice has its own */
    char **contexts;     /* per-choice contexts (partial scoring), else NULL */
    char **conts;        /* continuation of each choice, joining space included */
    int *norm_len;       /* bytes acc_norm divides by */
    unsigned char *truth;/* MC2: 1 for the true answers */
    int n_choices;
    int gold;
    int subtask;         /* index into task->subtasks, or -1 */
} lb_mc_item;

typedef struct {
    char name[64];
    lb_mc_kind kind;
    lb_mc_item *items;
    int n_items, cap_items;
    char **subtasks;
    int n_subtasks;
} lb_mc_task;

lb_mc_task *lb_mc_task_create(const char *name, lb_mc_kind kind);
void lb_mc_task_free(lb_mc_task *t);
/* Appends an item with n choices and no text yet; returns it (valid until the next add). */
lb_mc_item *lb_mc_add_item(lb_mc_task *t, int n_choices, int gold);
/* Sets choice i: context (NULL keeps the shared one), the joining text and the choice text;
 * the continuation is join + text, and norm_len is strlen(text). */
void lb_mc_set_choice(lb_mc_item *it, int i, const char *context, const char *join,
                      const char *text);
/* Index of a subtask by name, added when new. */
int lb_mc_subtask(lb_mc_task *t, const char *name);
/* Keeps the first n items of each subtask, or of the task when it has none, as the harness's
 * --limit does (n <= 0 keeps everything). */
void lb_mc_limit(lb_mc_task *t, int n);

/* One reported figure. */
typedef struct {
    char metric[32];     /* "acc", "acc_norm", "perplexity" */
    char subtask[96];    /* "" for the task as a whole */
    double value, stderr_;
    int n;
} lb_mc_metric;

typedef struct {
    lb_mc_metric *m;
    int n;
    double seconds;
    long long tokens;    /* tokens the requests hold */
} lb_mc_report;

void lb_mc_report_free(lb_mc_report *r);

typedef struct {
    bool bos;            /* put BOS before every context */
    int max_tokens;      /* tokens per forward pass (<= 0: 2048) */
    bool show_progress;
} lb_mc_options;

/* Scores every item and fills the report (task-level figures first, then per subtask). */
int lb_mc_evaluate(lb_engine *e, const lb_mc_task *t, const lb_mc_options *o, lb_mc_report *r,
                   lb_error *err);

/* Mean and sample standard error of the mean of x[0..n). */
void lb_mc_mean_stderr(const double *x, int n, double *mean, double *se);

#endif
