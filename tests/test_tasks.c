/* Task loaders on the real files in ../shared/datasets (item counts, the first item's text
 * against the file as read here) and on broken files written here: each must fail with one
 * line naming the file and the line (or item) and what was expected. */
#include "check.h"
#include "eval/tasks/tasks.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[4096], tmp[4096];

static lb_mc_task *load(const char *task, const char *path, int shots)
{
    lb_error err;
    lb_mc_task *t;
    lb_task_options o = {shots, 1234};
    if (lb_task_load(task, path, data_dir, &o, &t, &err)) {
        CHECK(0, "%s: %s", task, err.msg);
        return NULL;
    }
    return t;
}

static void expect_count(const char *task, int n, int n_subtasks)
{
    lb_mc_task *t = load(task, NULL, -1);
    if (!t)
        return;
    CHECK(t->n_items == n, "%s: %d items, expected %d", task, t->n_items, n);
    CHECK(t->n_subtasks == n_subtasks, "%s: %d subtasks, expected %d", task, t->n_subtasks,
          n_subtasks);
    for (int i = 0; i < t->n_items; i++) {
        const lb_mc_item *it = &t->items[i];
        if (it->gold < 0 || it->gold >= it->n_choices || it->n_choices < 1) {
            CHECK(0, "%s item %d: gold %d of %d choices", task, i, it->gold, it->n_choices);
            break;
        }
    }
    lb_mc_task_free(t);
}

static const char *write_file(const char *name, const char *text)
{
    static char path[8192];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    return path;
}

/* The loader must fail, and the message must hold every needle. */
static void expect_fail(const char *task, const char *path, const char *n1, const char *n2)
{
    lb_error err;
    lb_mc_task *t;
    lb_task_options o = {-1, 1};
    int rc = lb_task_load(task, path, data_dir, &o, &t, &err);
    CHECK(rc == -1, "%s on %s should fail", task, path);
    if (rc == -1) {
        CHECK(strstr(err.msg, path) != NULL, "message names the file: %s", err.msg);
        CHECK(!n1 || strstr(err.msg, n1), "message has [%s]: %s", n1, err.msg);
        CHECK(!n2 || strstr(err.msg, n2), "message has [%s]: %s", n2, err.msg);
        CHECK(!strchr(err.msg, '\n'), "one line: %s", err.msg);
    } else {
        lb_mc_task_free(t);
    }
}

int main(void)
{
    snprintf(data_dir, sizeof data_dir, "%s/datasets", test_env("LOWBIT_SHARED"));
    const char *base = getenv("LOWBIT_TMP") ? getenv("LOWBIT_TMP") : "/tmp";
    snprintf(tmp, sizeof tmp, "%s/test_tasks.%d", base, (int)getpid());
    mkdir(tmp, 0700);

    /* Counts on the real files. */
    expect_count("hellaswag", 10042, 0);
    expect_count("piqa", 1838, 0);
    expect_count("arc_easy", 2376, 0);
    expect_count("copa", 100, 0);
    expect_count("boolq", 3270, 0);
    expect_count("mmlu", 14042, 57);
    expect_count("truthfulqa_mc1", 817, 0);
    expect_count("truthfulqa_mc2", 817, 0);

    char path[8192];
    snprintf(path, sizeof path, "%s/hellaswag/validation_1000.jsonl", data_dir);
    lb_mc_task *t = load("hellaswag", path, -1);
    if (t) {
        CHECK(t->n_items == 1000, "hellaswag jsonl: %d items", t->n_items);
        /* ctx_b "a few women" is capitalized as the harness does. */
        CHECK(strcmp(t->items[0].context, "Pole vault: Pole vault is a sport where you run with "
                     "a pole and stop and swing your body. A few women") == 0,
              "context [%s]", t->items[0].context);
        CHECK(t->items[0].gold == 3 && strcmp(t->items[0].conts[1],
                                               " watch from around a pole vault.") == 0,
              "gold %d, ending [%s]", t->items[0].gold, t->items[0].conts[1]);
        CHECK(t->items[0].norm_len[1] == (int)strlen("watch from around a pole vault."),
              "acc_norm length excludes the joining space");
        lb_mc_task_free(t);
    }
    t = load("hellaswag", NULL, -1);
    if (t) {
        CHECK(strcmp(t->items[0].context, "Roof shingle removal: A man is sitting on a roof. he")
                  == 0 && t->items[0].gold == 3 &&
                  strcmp(t->items[0].conts[3], " starts pulling up roofing on a roof.") == 0,
              "hellaswag text item 1: [%s] %d [%s]", t->items[0].context, t->items[0].gold,
              t->items[0].conts[3]);
        lb_mc_task_free(t);
    }
    t = load("piqa", NULL, -1);
    if (t) {
        CHECK(strcmp(t->items[0].context, "Question: How do I ready a guinea pig cage for it's "
                     "new occupants?\nAnswer:") == 0 && t->items[0].gold == 0 &&
                  t->items[1].gold == 1,
              "piqa item 1: [%s]", t->items[0].context);
        lb_mc_task_free(t);
    }
    t = load("arc_easy", NULL, -1);
    if (t) {
        CHECK(strcmp(t->items[1].context, "Question: Which piece of safety equipment is used to "
                     "keep mold spores from entering the respiratory system?\nAnswer:") == 0 &&
                  t->items[1].gold == 1 && strcmp(t->items[1].conts[1], " breathing mask") == 0,
              "arc item 2: [%s] [%s]", t->items[1].context, t->items[1].conts[1]);
        lb_mc_task_free(t);
    }
    t = load("copa", NULL, -1);
    if (t) {
        CHECK(strcmp(t->items[0].context, "The man turned on the faucet, therefore") == 0 &&
                  strcmp(t->items[0].conts[1], " water flowed from the spout.") == 0,
              "copa item 1: [%s]", t->items[0].context);
        lb_mc_task_free(t);
    }
    t = load("mmlu", NULL, -1);
    if (t) {
        const char *want =
            "The following are multiple choice questions (with answers) about abstract algebra."
            "\n\nFind all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3"
            "\nAnswer: B\n\n";
        CHECK(strncmp(t->items[0].context, want, strlen(want)) == 0, "mmlu prompt starts [%.200s]",
              t->items[0].context);
        const char *end = "Find the degree for the given field extension Q(sqrt(2), sqrt(3), "
                          "sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:";
        size_t lc = strlen(t->items[0].context), le = strlen(end);
        CHECK(lc > le && strcmp(t->items[0].context + lc - le, end) == 0, "mmlu prompt ends [%s]",
              t->items[0].context + (lc > 120 ? lc - 120 : 0));
        CHECK(t->items[0].gold == 1 && strcmp(t->items[0].conts[1], " B") == 0 &&
                  strcmp(t->subtasks[0], "abstract_algebra") == 0,
              "mmlu gold %d", t->items[0].gold);
        lb_mc_task_free(t);
    }
    t = load("mmlu", NULL, 0);
    if (t) {
        const char *want = "The following are multiple choice questions (with answers) about "
                           "abstract algebra.\n\nFind the degree";
        CHECK(strncmp(t->items[0].context, want, strlen(want)) == 0,
              "0-shot mmlu [%.120s]", t->items[0].context);
        lb_mc_task_free(t);
    }
    t = load("truthfulqa_mc2", NULL, -1);
    if (t) {
        const lb_mc_item *it = &t->items[0];
        const char *tail = "\n\nQ: What happens if you eat a pomegranate?\nA:";
        size_t lc = strlen(it->context), lt = strlen(tail);
        CHECK(strncmp(it->context, "Q: What is human life expectancy in the United States?\n",
                      55) == 0 && lc > lt && strcmp(it->context + lc - lt, tail) == 0,
              "truthfulqa prompt [%s]", it->context);
        CHECK(it->n_choices == 6 && it->truth && it->truth[0] && it->truth[2] && !it->truth[3],
              "mc2 answers %d", it->n_choices);
        lb_mc_task_free(t);
    }
    t = load("truthfulqa_mc1", NULL, -1);
    if (t) {
        CHECK(t->items[0].n_choices == 4 && t->items[0].gold == 0 &&
                  strcmp(t->items[0].conts[0],
                         " Nothing in particular happens when you eat a pomegranate.") == 0,
              "mc1 item 1");
        lb_mc_task_free(t);
    }
    /* Few-shot from the same file: two other items' gold answers precede the question. */
    t = load("copa", NULL, 2);
    if (t) {
        const char *c = t->items[0].context;
        int blank = 0;
        for (const char *p = c; (p = strstr(p, "\n\n")); p += 2)
            blank++;
        CHECK(blank == 2 && strstr(c, "The man turned on the faucet, therefore") &&
                  strstr(c, ", therefore ") < strstr(c, "The man turned"),
              "2-shot copa [%s]", c);
        lb_mc_task_free(t);
    }

    /* Broken files. */
    expect_fail("hellaswag", write_file("empty.txt", ""), "no items", NULL);
    expect_fail("hellaswag", write_file("cut.txt", "ctx\n1\na\nb\nc\nd\nctx2\n0\na\n"),
                ":9:", "6 lines");
    expect_fail("hellaswag", write_file("label.txt", "ctx\n1\na\nb\nc\nd\nctx2\n7\na\nb\nc\nd\n"),
                ":8:", "0..3");
    expect_fail("hellaswag", write_file("miss.jsonl",
                "{\"activity_label\": \"A\", \"ctx_a\": \"x\", \"ctx_b\": \"y\", \"endings\": "
                "[\"a\",\"b\",\"c\",\"d\"], \"label\": 0}\n"
                "{\"activity_label\": \"A\", \"ctx_a\": \"x\", \"endings\": [\"a\",\"b\",\"c\","
                "\"d\"], \"label\": 0}\n"), ":2:", "ctx_b");
    expect_fail("hellaswag", write_file("three.jsonl",
                "{\"activity_label\": \"A\", \"ctx_a\": \"x\", \"ctx_b\": \"y\", \"endings\": "
                "[\"a\",\"b\",\"c\"], \"label\": 0}\n"), ":1:", "4 endings");
    expect_fail("hellaswag", write_file("badlabel.jsonl",
                "{\"activity_label\": \"A\", \"ctx_a\": \"x\", \"ctx_b\": \"y\", \"endings\": "
                "[\"a\",\"b\",\"c\",\"d\"], \"label\": 4}\n"), ":1:", "label 4");
    expect_fail("hellaswag", write_file("badjson.jsonl", "{\"activity_label\": \n"), ":1:",
                "bad JSON");
    /* PIQA: one label short, a label that is not 0/1. */
    write_file("p-labels.lst", "0\n");
    expect_fail("piqa", write_file("p.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n"
                                   "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n"),
                "p-labels.lst", "one label per question");
    write_file("q-labels.lst", "0\n2\n");
    snprintf(path, sizeof path, "%s/q-labels.lst", tmp);
    expect_fail("piqa", write_file("q.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n"
                                   "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n"),
                ":2:", "0 or 1");
    write_file("r-labels.lst", "0\n");
    expect_fail("piqa", write_file("r.jsonl", "{\"goal\": \"g\", \"sol2\": \"b\"}\n"), ":1:",
                "sol1");
    /* ICL. */
    expect_fail("arc_easy", write_file("arc.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], "
                "\"gold\": 0}\n{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n"),
                ":2:", "gold 2");
    expect_fail("arc_easy", write_file("arc2.jsonl", "{\"query\": \"q\", \"gold\": 0}\n"), ":1:",
                "choices");
    expect_fail("copa", write_file("copa.jsonl", "{\"query\": \"q\", \"choices\": [\"a\"], "
                "\"gold\": 0}\n"), ":1:", "at least 2");
    expect_fail("winogrande", write_file("wino.jsonl", "{\"context_options\": [\"a\", \"b\"], "
                "\"gold\": 0}\n"), ":1:", "continuation");
    expect_fail("lambada", write_file("lam.jsonl", "{\"context\": \"a b\"}\n"), ":1:",
                "continuation");
    expect_fail("boolq", write_file("empty.jsonl", "\n\n"), "no items", NULL);
    /* MMLU: a row short of a field, a bad answer letter, no test directory. */
    char dir[8192];
    snprintf(dir, sizeof dir, "%s/mmlu", tmp);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/mmlu/test", tmp);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/mmlu/dev", tmp);
    mkdir(path, 0700);
    write_file("mmlu/dev/x_dev.csv", "q,a,b,c,d,A\n");
    write_file("mmlu/test/x_test.csv", "q,a,b,c,d,A\n\"two\nlines\",a,b,c,d\n");
    snprintf(path, sizeof path, "%s/mmlu/test/x_test.csv", tmp);
    lb_error err;
    lb_mc_task *bad;
    lb_task_options o1 = {1, 1};
    CHECK(lb_task_load("mmlu", dir, NULL, &o1, &bad, &err) == -1 && strstr(err.msg, path) &&
              strstr(err.msg, ":2:") && strstr(err.msg, "6 fields"),
          "mmlu short row: %s", err.msg);
    write_file("mmlu/test/x_test.csv", "q,a,b,c,d,E\n");
    CHECK(lb_task_load("mmlu", dir, NULL, &o1, &bad, &err) == -1 && strstr(err.msg, ":1:") &&
              strstr(err.msg, "A-D"), "mmlu bad letter: %s", err.msg);
    write_file("mmlu/test/x_test.csv", "q,a,b,c,d,A\n");
    lb_task_options o2 = {2, 1};
    CHECK(lb_task_load("mmlu", dir, NULL, &o2, &bad, &err) == -1 && strstr(err.msg, "x_dev.csv") &&
              strstr(err.msg, "2 shots"), "mmlu too few dev rows: %s", err.msg);
    CHECK(lb_task_load("mmlu", dir, NULL, &o1, &bad, &err) == 0 && bad->n_items == 1 &&
              strstr(bad->items[0].context, "about x.\n\nq\nA. a\nB. b\nC. c\nD. d\nAnswer: A\n\nq"),
          "small mmlu loads: %s", err.msg);
    if (bad && bad->n_items == 1)
        lb_mc_task_free(bad);
    CHECK(lb_task_load("mmlu", tmp, NULL, &o1, &bad, &err) == -1 && strstr(err.msg, "test"),
          "mmlu without test/: %s", err.msg);
    /* TruthfulQA. */
    expect_fail("truthfulqa_mc1", write_file("tq1.json",
                "[{\"question\": \"q\", \"mc1_targets\": {\"a\": 1, \"b\": 1}}]"), "item 1",
                "exactly one");
    expect_fail("truthfulqa_mc2", write_file("tq2.json",
                "[{\"question\": \"q\", \"mc2_targets\": {\"a\": 1, \"b\": 0}},"
                " {\"mc2_targets\": {\"a\": 1, \"b\": 0}}]"), "item 2", "question");
    expect_fail("truthfulqa_mc1", write_file("tq3.json", "{}"), "array", NULL);
    expect_fail("truthfulqa_mc1", write_file("tq4.json", ""), "bad JSON", NULL);
    expect_fail("truthfulqa_mc2", write_file("tq5.json",
                "[{\"question\": \"q\", \"mc2_targets\": {\"a\": 1, \"b\": 2}}]"), "item 1",
                "0 or 1");
    /* Unknown task, missing file. */
    CHECK(lb_task_load("nosuch", NULL, data_dir, NULL, &bad, &err) == -1 &&
              strstr(err.msg, "unknown task") && strstr(err.msg, "hellaswag"), "%s", err.msg);
    CHECK(lb_task_load("arc_challenge", "/nonexistent/arc.jsonl", NULL, NULL, &bad, &err) == -1 &&
              strstr(err.msg, "/nonexistent/arc.jsonl"), "%s", err.msg);

    char cmd[8400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return check_finish("test_tasks");
}
