/* Text datasets: shortcut resolution (--data-dir, $LOWBIT_DATA_DIR, default), plain files as
 * llama.cpp reads them (one trailing newline dropped), C4's jsonl joined by spaces, and the
 * errors for missing, empty and malformed files (naming the file and the line). */
#include "check.h"
#include "eval/dataset.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whole file by stdio, independent of lb_read_file. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = 0;
    *len = got;
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static void expect_error(const char *path, const char *needle1, const char *needle2)
{
    char *text = (char *)"untouched";
    size_t len = 7;
    lb_error err = {{0}};
    int rc = lb_dataset_load_text(path, NULL, &text, &len, &err);
    CHECK(rc == -1, "%s: expected failure", path);
    CHECK(text == NULL && len == 0, "%s: outputs cleared on failure", path);
    CHECK(strstr(err.msg, needle1) != NULL, "[%s] names [%s]", err.msg, needle1);
    if (needle2)
        CHECK(strstr(err.msg, needle2) != NULL, "[%s] says [%s]", err.msg, needle2);
    CHECK(strchr(err.msg, '\n') == NULL, "one line: [%s]", err.msg);
}

int main(void)
{
    const char *shared = test_env("LOWBIT_SHARED");
    char dir[1024], path[2048];
    snprintf(dir, sizeof dir, "%s/datasets", shared);

    /* Resolution order: explicit dir, then the environment, then ../shared/datasets. */
    char *p = lb_dataset_resolve("wikitext2", "/data");
    CHECK(strcmp(p, "/data/wikitext2/wiki.test.raw") == 0, "%s", p);
    free(p);
    unsetenv("LOWBIT_DATA_DIR");
    p = lb_dataset_resolve("c4", NULL);
    CHECK(strcmp(p, "../shared/datasets/c4/c4_validation_2k.jsonl") == 0, "%s", p);
    free(p);
    setenv("LOWBIT_DATA_DIR", "/env", 1);
    p = lb_dataset_resolve("tinystories", NULL);
    CHECK(strcmp(p, "/env/tinystories/validation_head.txt") == 0, "%s", p);
    free(p);
    p = lb_dataset_resolve("tinystories", "/flag");
    CHECK(strcmp(p, "/flag/tinystories/validation_head.txt") == 0, "%s", p);
    free(p);
    p = lb_dataset_resolve("some/file.txt", "/flag");
    CHECK(strcmp(p, "some/file.txt") == 0, "a path is kept as given: %s", p);
    free(p);

    /* A plain file through the environment's directory: the file's bytes minus its final
     * newline. */
    setenv("LOWBIT_DATA_DIR", dir, 1);
    char *text;
    size_t len, ref_len;
    lb_error err;
    snprintf(path, sizeof path, "%s/wikitext2/wiki.test.raw", dir);
    char *ref = slurp(path, &ref_len);
    CHECK(ref && ref_len > 1000000, "wiki.test.raw readable");
    CHECK(lb_dataset_load_text("wikitext2", NULL, &text, &len, &err) == 0, "%s", err.msg);
    if (ref && text) {
        size_t want = ref[ref_len - 1] == '\n' ? ref_len - 1 : ref_len;
        CHECK(len == want, "length %zu, expected %zu", len, want);
        CHECK(memcmp(text, ref, want) == 0 && text[len] == 0, "same bytes, NUL-terminated");
    }
    free(text);
    free(ref);
    unsetenv("LOWBIT_DATA_DIR");

    /* C4: 2,000 documents, one per line, joined with single spaces. */
    snprintf(path, sizeof path, "%s/c4/c4_validation_2k.jsonl", dir);
    char **docs;
    size_t n_docs;
    CHECK(lb_dataset_jsonl_docs(path, &docs, &n_docs, &err) == 0, "%s", err.msg);
    CHECK(n_docs == 2000, "%zu documents", n_docs);
    size_t total = 0;
    for (size_t i = 0; i < n_docs; i++)
        total += strlen(docs[i]);
    CHECK(n_docs && strncmp(docs[0], "We offer valet parking as well as street and private lot.\n"
                            "Our catering", 70) == 0, "first document decoded: %.40s", docs[0]);
    CHECK(lb_dataset_load_text("c4", dir, &text, &len, &err) == 0, "%s", err.msg);
    CHECK(len == total + n_docs - 1, "joined length %zu, expected %zu", len, total + n_docs - 1);
    if (n_docs >= 2 && text) {
        size_t l0 = strlen(docs[0]);
        CHECK(text[l0] == ' ' && strncmp(text + l0 + 1, docs[1], strlen(docs[1])) == 0,
              "second document after one space");
    }
    free(text);
    lb_dataset_free_docs(docs, n_docs);

    /* Errors. */
    char tmp[] = "/tmp/lowbit-dataset-XXXXXX";
    const char *scratch = mkdtemp(tmp);
    CHECK(scratch != NULL, "scratch directory");
    char f[1200];
    snprintf(f, sizeof f, "%s/missing.txt", scratch);
    expect_error(f, "missing.txt", "no such file");
    expect_error("wikitext2", "wikitext2/wiki.test.raw", "--data-dir");
    snprintf(f, sizeof f, "%s/empty.txt", scratch);
    write_file(f, "");
    expect_error(f, "empty.txt", "empty");
    snprintf(f, sizeof f, "%s/newline.txt", scratch);
    write_file(f, "\n");
    expect_error(f, "newline.txt", "empty");
    snprintf(f, sizeof f, "%s/empty.jsonl", scratch);
    write_file(f, "\n  \n");
    expect_error(f, "empty.jsonl", "no documents");
    snprintf(f, sizeof f, "%s/bad.jsonl", scratch);
    write_file(f, "{\"text\": \"one\"}\n\n{\"text\": \"two\"\n");
    expect_error(f, "bad.jsonl: line 3", NULL);
    write_file(f, "{\"text\": \"one\"}\n{\"title\": \"two\"}\n");
    expect_error(f, "bad.jsonl: line 2", "no \"text\" field");
    write_file(f, "{\"text\": 5}\n");
    expect_error(f, "bad.jsonl: line 1", "not a string");
    write_file(f, "[\"text\"]\n");
    expect_error(f, "bad.jsonl: line 1", "JSON object");
    expect_error(scratch, scratch, "directory");

    /* A good small jsonl: blank and CRLF lines are fine, documents joined by one space. */
    snprintf(f, sizeof f, "%s/good.jsonl", scratch);
    write_file(f, "{\"text\": \"a b\"}\r\n\n{\"text\": \"c\\nd\", \"url\": \"x\"}\n");
    CHECK(lb_dataset_load_text(f, NULL, &text, &len, &err) == 0, "%s", err.msg);
    CHECK(text && len == 7 && strcmp(text, "a b c\nd") == 0, "[%s]", text ? text : "");
    free(text);

    const char *names[] = {"missing.txt", "empty.txt", "newline.txt", "empty.jsonl", "bad.jsonl",
                           "good.jsonl"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(f, sizeof f, "%s/%s", scratch, names[i]);
        unlink(f);
    }
    rmdir(scratch);
    return check_finish("test_dataset");
}
