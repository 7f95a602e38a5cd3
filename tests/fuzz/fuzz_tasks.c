/* Every dataset and task loader, through the entry points the commands use (lb_task_load
 * picks the loader from the task name and the file, lb_dataset_* read perplexity and
 * calibration text). Input: one byte choosing the loader, one byte choosing the few-shot
 * count, then the file. Loaders that read two files (PIQA's labels beside valid.jsonl,
 * MMLU's dev/ beside test/) take the second after a line "=====". */
#include "fuzz.h"
#include "eval/dataset.h"
#include "eval/tasks/tasks.h"

#include <string.h>

enum { HELLASWAG_TXT, HELLASWAG_JSONL, PIQA, ARC_EASY, ARC_CHALLENGE, COPA, BOOLQ, WINOGRANDE,
       LAMBADA, MMLU, TQA_MC1, TQA_MC2, TEXT, JSONL_TEXT, JSONL_DOCS, N_LOADERS };

static const char *const task_of[] = {
    [HELLASWAG_TXT] = "hellaswag", [HELLASWAG_JSONL] = "hellaswag", [PIQA] = "piqa",
    [ARC_EASY] = "arc_easy", [ARC_CHALLENGE] = "arc_challenge", [COPA] = "copa",
    [BOOLQ] = "boolq", [WINOGRANDE] = "winogrande", [LAMBADA] = "lambada", [MMLU] = "mmlu",
    [TQA_MC1] = "truthfulqa_mc1", [TQA_MC2] = "truthfulqa_mc2"};

static void sub(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", fuzz_dir(), name);
}

/* What the scorer relies on in every accepted item. */
static void check_task(const lb_mc_task *t)
{
    if (t->n_items <= 0) abort();
    for (int i = 0; i < t->n_items; i++) {
        const lb_mc_item *it = &t->items[i];
        if (it->n_choices < 1 || it->n_choices > LB_MC_MAX_CHOICES || it->gold < 0 ||
            it->gold >= it->n_choices || (!it->context && !it->contexts) || !it->conts) {
            fprintf(stderr, "item %d: %d choices, gold %d\n", i, it->n_choices, it->gold);
            abort();
        }
        for (int c = 0; c < it->n_choices; c++)
            if (!it->conts[c] || (it->contexts && !it->contexts[c])) abort();
        if (it->subtask >= t->n_subtasks) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int which = data[0] % N_LOADERS, shots = data[1] % 7 - 1;
    const char *body = (const char *)data + 2;
    size_t n = size - 2, n2 = 0;
    const char *second = NULL;
    static const char sep[] = "\n=====\n";
    for (size_t i = 0; i + sizeof sep - 1 <= n; i++)
        if (memcmp(body + i, sep, sizeof sep - 1) == 0) {
            second = body + i + sizeof sep - 1;
            n2 = n - i - (sizeof sep - 1);
            n = i;
            break;
        }
    char path[512], extra[512];
    lb_error err = {{0}};
    if (which >= TEXT) {
        sub(path, sizeof path, which == TEXT ? "text.txt" : "docs.jsonl");
        fuzz_write(path, body, n);
        if (which == JSONL_DOCS) {
            char **docs = NULL;
            size_t n_docs = 0;
            if (lb_dataset_jsonl_docs(path, &docs, &n_docs, &err) == 0)
                lb_dataset_free_docs(docs, n_docs);
        } else {
            char *text = NULL;
            size_t len = 0;
            if (lb_dataset_load_text(path, NULL, &text, &len, &err) == 0) {
                if (!text || strlen(text) > len) abort();
                free(text);
            }
        }
        return 0;
    }
    switch (which) {
    case HELLASWAG_TXT: sub(path, sizeof path, "hellaswag.txt"); break;
    case TQA_MC1: case TQA_MC2: sub(path, sizeof path, "mc_task.json"); break;
    case MMLU: {
        sub(path, sizeof path, "mmlu");
        mkdir(path, 0700);
        sub(extra, sizeof extra, "mmlu/test");
        mkdir(extra, 0700);
        sub(extra, sizeof extra, "mmlu/dev");
        mkdir(extra, 0700);
        sub(extra, sizeof extra, "mmlu/test/fuzz_test.csv");
        fuzz_write(extra, body, n);
        sub(extra, sizeof extra, "mmlu/dev/fuzz_dev.csv");
        fuzz_write(extra, second ? second : "", n2);
        break;
    }
    default: sub(path, sizeof path, "valid.jsonl"); break;
    }
    if (which != MMLU) fuzz_write(path, body, n);
    if (which == PIQA) {
        sub(extra, sizeof extra, "valid-labels.lst");
        fuzz_write(extra, second ? second : "", n2);
    }
    lb_task_options o = {.shots = shots, .seed = data[1]};
    lb_mc_task *t = NULL;
    if (lb_task_load(task_of[which], path, NULL, &o, &t, &err) == 0) {
        check_task(t);
        lb_mc_task_free(t);
    } else if (t || !err.msg[0]) {
        abort();
    }
    return 0;
}
