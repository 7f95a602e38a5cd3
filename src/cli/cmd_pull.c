/* lowbit pull: downloads a model repository from the Hugging Face hub (or a mirror given by
 * --endpoint / HF_ENDPOINT) into a local directory, resuming interrupted files and checking
 * every LFS file's SHA-256. stdout gets one line per file; stderr gets the progress bar (on a
 * terminal or with --progress) and, on failure, one line saying why. */
#include "cli/args.h"
#include "cli/commands.h"
#include "core/file.h"
#include "io/hub.h"

#include <curl/curl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    bool bar;        /* draw the progress bar on stderr */
    bool quiet;
    bool drawn;      /* a bar is on the screen and must be cleared before other output */
} pull_ui;

static void human_bytes(double x, char *buf, size_t cap)
{
    if (x >= 1e9)
        snprintf(buf, cap, "%.2f GB", x / 1e9);
    else if (x >= 1e6)
        snprintf(buf, cap, "%.1f MB", x / 1e6);
    else if (x >= 1e3)
        snprintf(buf, cap, "%.1f kB", x / 1e3);
    else
        snprintf(buf, cap, "%.0f B", x);
}

static void human_time(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 359999)
        snprintf(buf, cap, "--:--");
    else if (s >= 3600)
        snprintf(buf, cap, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
    else
        snprintf(buf, cap, "%d:%02d", (int)s / 60, (int)s % 60);
}

static void clear_bar(pull_ui *ui)
{
    if (ui->drawn) {
        fprintf(stderr, "\r%*s\r", 100, "");
        fflush(stderr);
        ui->drawn = false;
    }
}

static void on_progress(const lb_hub_progress *p, void *user)
{
    pull_ui *ui = user;
    if (!ui->bar)
        return;
    if (p->finished) {
        clear_bar(ui);
        return;
    }
    double rate = p->elapsed_s > 0 ? (double)p->transferred / p->elapsed_s : 0;
    char done[16], total[16], speed[16], eta[16];
    human_bytes((double)p->done, done, sizeof done);
    human_bytes(rate, speed, sizeof speed);
    /* Names longer than the column keep their end, where the distinguishing part is. */
    size_t len = strlen(p->name);
    const char *name = len > 24 ? p->name + len - 24 : p->name;
    if (p->total > 0) {
        double frac = (double)p->done / (double)p->total;
        if (frac > 1)
            frac = 1;
        char bar[26];
        int fill = (int)(frac * 24);
        for (int i = 0; i < 24; i++)
            bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[24] = '\0';
        human_bytes((double)p->total, total, sizeof total);
        human_time(rate > 0 ? (double)(p->total - (int64_t)p->done) / rate : -1, eta, sizeof eta);
        fprintf(stderr, "\r%-24s %3d%% [%s] %9s / %-9s %9s/s ETA %s ", name, (int)(frac * 100),
                bar, done, total, speed, eta);
    } else {
        fprintf(stderr, "\r%-24s %9s %9s/s ", name, done, speed);
    }
    fflush(stderr);
    ui->drawn = true;
}

static void on_notice(const char *line, void *user)
{
    pull_ui *ui = user;
    clear_bar(ui);
    if (!ui->quiet) {
        printf("  %s\n", line);
        fflush(stdout);
    }
}

/* --include may be repeated, which the option table cannot hold: the globs are taken out of
 * argv here, and the rest goes to the table parser. Values of other options are skipped so
 * that e.g. "--token --include" keeps its meaning. */
static int take_includes(const lb_opt *opts, int n_opts, int argc, char **argv, char **rest,
                         int *n_rest, const char **globs, int *n_globs)
{
    *n_rest = 0;
    *n_globs = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i > 0 && strcmp(a, "--include") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option '--include' needs a value (GLOB)\n", argv[0]);
                return -1;
            }
            globs[(*n_globs)++] = argv[++i];
            continue;
        }
        if (i > 0 && strncmp(a, "--include=", 10) == 0) {
            globs[(*n_globs)++] = a + 10;
            continue;
        }
        rest[(*n_rest)++] = argv[i];
        if (i == 0 || a[0] != '-' || strchr(a, '='))
            continue;
        for (int k = 0; k < n_opts; k++) {
            const lb_opt *o = &opts[k];
            bool match = a[1] == '-' ? strcmp(a + 2, o->name) == 0
                                     : (o->short_name && a[1] == o->short_name && !a[2]);
            if (match && o->kind != OPT_FLAG && i + 1 < argc) {
                rest[(*n_rest)++] = argv[++i];
                break;
            }
        }
    }
    return 0;
}

static bool selected(const char *path, const char **globs, int n_globs)
{
    if (n_globs == 0)
        return lb_hub_default_file(path);
    for (int i = 0; i < n_globs; i++)
        if (fnmatch(globs[i], path, 0) == 0)
            return true;
    return false;
}

/* One line saying why nothing was selected, with the names that could have been. */
static void explain_empty(const char *repo, const lb_hub_listing *l, int n_globs)
{
    char names[400] = "";
    int gguf = 0;
    size_t used = 0;
    for (int i = 0; i < l->n_files; i++) {
        const char *p = l->files[i].path;
        bool is_gguf = fnmatch("*.gguf", p, 0) == 0;
        gguf += is_gguf;
        if ((n_globs || is_gguf) && used + strlen(p) + 8 < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "",
                                     p);
    }
    if (n_globs)
        fprintf(stderr, "pull: no file of %s matches --include (its %d files: %s)\n", repo,
                l->n_files, names);
    else if (gguf)
        fprintf(stderr, "pull: %s holds no config or safetensors files; choose among its GGUF "
                "files with --include, e.g. --include '*Q4_0.gguf' (%s)\n", repo, names);
    else
        fprintf(stderr, "pull: %s holds none of the files a model needs (config.json, "
                "tokenizer files, *.safetensors); choose files with --include GLOB\n", repo);
}

int cmd_pull(int argc, char **argv)
{
    const char *revision = "main", *dir = NULL, *endpoint = NULL, *token = NULL;
    const char *include_help = NULL;
    int retries = 3, timeout = 60;
    bool progress = false, quiet = false, dry_run = false;
    const lb_opt opts[] = {
        {"revision", 'r', OPT_STRING, &revision, "REV", "branch, tag or commit (default main)"},
        {"include", 0, OPT_STRING, &include_help, "GLOB",
         "download the files matching GLOB (repeatable) instead of the default set"},
        {"dir", 'd', OPT_STRING, &dir, "DIR", "destination (default models/ORG/NAME)"},
        {"endpoint", 0, OPT_STRING, &endpoint, "URL",
         "hub address (default $HF_ENDPOINT or " LB_HUB_DEFAULT_ENDPOINT ")"},
        {"token", 0, OPT_STRING, &token, "TOKEN",
         "access token for private or gated repositories (default $HF_TOKEN)"},
        {"retries", 0, OPT_INT, &retries, "N",
         "resume a file up to N times after a dropped or stalled connection (default 3)"},
        {"timeout", 0, OPT_INT, &timeout, "S",
         "give up on a connection after S seconds without data (default 60)"},
        {"progress", 0, OPT_FLAG, &progress, NULL, "draw the progress bar even when not on a terminal"},
        {"dry-run", 'n', OPT_FLAG, &dry_run, NULL, "list the files that would be downloaded"},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no per-file lines on stdout"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const lb_cmd_spec spec = {
        "lowbit pull ORG/NAME [--revision REV] [--include GLOB]... [--dir DIR]",
        "Downloads a model from the Hugging Face hub. Without --include it fetches what a\n"
        "model needs: config.json, generation_config.json, tokenizer.json, tokenizer_config.json,\n"
        "tokenizer.model, vocab.json, merges.txt, model.safetensors.index.json and *.safetensors\n"
        "at the top of the repository (GGUF repositories hold many quantizations: name the one\n"
        "you want with --include '*Q8_0.gguf'). Files are written as FILE.part and renamed when\n"
        "complete; an interrupted download resumes where it stopped; LFS files are checked\n"
        "against the hub's SHA-256; files already complete are left alone.",
        opts, n_opts, 1, 1};

    char **rest = malloc(sizeof *rest * (size_t)(argc + 1));
    const char **globs = malloc(sizeof *globs * (size_t)(argc + 1));
    int n_rest, n_globs;
    const char *positional[1];
    int rc = take_includes(opts, n_opts, argc, argv, rest, &n_rest, globs, &n_globs);
    if (rc == 0)
        rc = lb_args_parse(&spec, n_rest, rest, positional, NULL);
    free(rest);
    if (rc) {
        free(globs);
        return rc > 0 ? 0 : 1;
    }
    const char *repo = positional[0];
    lb_error err;
    int status = 1;
    char *default_dir = NULL;
    lb_hub_listing listing = {0};
    bool curl_ready = false;

    if (lb_hub_check_repo(repo, &err)) {
        fprintf(stderr, "pull: %s\n", err.msg);
        goto done;
    }
    if (retries < 0 || retries > 100) {
        fprintf(stderr, "pull: --retries expects 0 to 100, got %d\n", retries);
        goto done;
    }
    if (timeout < 1 || timeout > 3600) {
        fprintf(stderr, "pull: --timeout expects 1 to 3600 seconds, got %d\n", timeout);
        goto done;
    }
    if (!revision[0]) {
        fprintf(stderr, "pull: --revision must not be empty\n");
        goto done;
    }
    if (!endpoint)
        endpoint = getenv("HF_ENDPOINT");
    if (!endpoint || !endpoint[0])
        endpoint = LB_HUB_DEFAULT_ENDPOINT;
    if (!token)
        token = getenv("HF_TOKEN");
    if (!token)
        token = getenv("HUGGING_FACE_HUB_TOKEN");
    if (!dir) {
        default_dir = lb_path_join("models", repo);
        dir = default_dir;
    }
    if (lb_file_exists(dir)) {
        fprintf(stderr, "pull: cannot write into %s: it is a file, not a directory\n", dir);
        goto done;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "pull: cannot initialise libcurl\n");
        goto done;
    }
    curl_ready = true;

    pull_ui ui = {.bar = progress || isatty(2), .quiet = quiet};
    lb_hub_opts ho = {.endpoint = endpoint, .token = token, .user_agent = "lowbit/" LOWBIT_VERSION,
                      .connect_timeout_s = timeout < 30 ? timeout : 30,
                      .stall_timeout_s = timeout, .retries = retries,
                      .progress = on_progress, .notice = on_notice, .user = &ui};
    if (lb_hub_list(&ho, repo, revision, &listing, &err)) {
        fprintf(stderr, "pull: %s\n", err.msg);
        goto done;
    }
    int n_sel = 0;
    int64_t sel_bytes = 0;
    bool sizes_known = true;
    for (int i = 0; i < listing.n_files; i++) {
        if (!selected(listing.files[i].path, globs, n_globs))
            continue;
        n_sel++;
        if (listing.files[i].size < 0)
            sizes_known = false;
        else
            sel_bytes += listing.files[i].size;
    }
    if (n_sel == 0) {
        explain_empty(repo, &listing, n_globs);
        goto done;
    }
    /* Resolve by commit, so every file comes from the same snapshot even if the branch moves. */
    const char *rev = listing.commit ? listing.commit : revision;
    char size_text[32];
    human_bytes((double)sel_bytes, size_text, sizeof size_text);
    if (!quiet) {
        printf("%s %s (revision %s%s%.12s) into %s: %d of %d files%s%s\n",
               dry_run ? "would pull" : "pulling", repo, revision,
               listing.commit ? ", commit " : "", listing.commit ? listing.commit : "", dir,
               n_sel, listing.n_files, sizes_known ? ", " : "", sizes_known ? size_text : "");
        fflush(stdout);
    }
    if (dry_run) {
        for (int i = 0; i < listing.n_files; i++) {
            const lb_hub_file *f = &listing.files[i];
            if (!selected(f->path, globs, n_globs))
                continue;
            char sz[32] = "size unknown";
            if (f->size >= 0)
                human_bytes((double)f->size, sz, sizeof sz);
            printf("  %s  %s%s\n", f->path, sz, f->sha256[0] ? "  (LFS, sha256 known)" : "");
        }
        status = 0;
        goto done;
    }

    int n_new = 0, n_fresh = 0;
    uint64_t received = 0;
    double seconds = 0;
    for (int i = 0; i < listing.n_files; i++) {
        const lb_hub_file *f = &listing.files[i];
        if (!selected(f->path, globs, n_globs))
            continue;
        lb_hub_result r;
        if (lb_hub_fetch_file(&ho, repo, rev, f, dir, &r, &err)) {
            clear_bar(&ui);
            fprintf(stderr, "pull: %s\n", err.msg);
            goto done;
        }
        received += r.transferred;
        seconds += r.seconds;
        char sz[32];
        human_bytes((double)r.size, sz, sizeof sz);
        if (r.up_to_date) {
            n_fresh++;
            if (!quiet)
                printf("  %s: up to date (%s%s)\n", f->path, sz,
                       r.verified ? ", sha256 verified" : "");
        } else {
            n_new++;
            if (!quiet) {
                char rate[32], kept[32];
                human_bytes(r.seconds > 0 ? (double)r.transferred / r.seconds : 0, rate,
                            sizeof rate);
                human_bytes((double)r.resumed_from, kept, sizeof kept);
                printf("  %s: %s downloaded in %.1f s (%s/s)%s%s%s%s\n", f->path, sz, r.seconds,
                       rate, r.resumed_from ? ", resumed at " : "", r.resumed_from ? kept : "",
                       r.verified ? ", sha256 verified" : "",
                       r.attempts > 1 ? ", after retries" : "");
            }
        }
        fflush(stdout);
    }
    if (!quiet) {
        char got[32];
        human_bytes((double)received, got, sizeof got);
        printf("done: %d file%s in %s (%d downloaded, %d up to date), %s received in %.1f s\n",
               n_sel, n_sel == 1 ? "" : "s", dir, n_new, n_fresh, got, seconds);
    }
    status = 0;
done:
    lb_hub_listing_free(&listing);
    if (curl_ready)
        curl_global_cleanup();
    free(default_dir);
    free(globs);
    return status;
}
