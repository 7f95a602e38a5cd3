/* The pipeline's YAML config (parsed from memory). The file is named as if it sat in a
 * directory beside a link to the shared data, so the relative model, calibration and dataset
 * paths of real configs (../shared/...) resolve and the checks after them run too. */
#include "fuzz.h"
#include "pipeline/config.h"

#include <string.h>

static char cfg_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char shared[512], link[512], sub[512];
    if (!realpath(fuzz_shared(), shared)) {
        fprintf(stderr, "fuzz_config: no shared data at %s\n", fuzz_shared());
        abort();
    }
    snprintf(link, sizeof link, "%s/shared", fuzz_dir());
    snprintf(sub, sizeof sub, "%s/configs", fuzz_dir());
    unlink(link);
    if (symlink(shared, link) != 0 || (mkdir(sub, 0700) != 0 && access(sub, W_OK) != 0))
        abort();
    snprintf(cfg_path, sizeof cfg_path, "%s/fuzz.yaml", sub);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lb_pl_config cfg;
    lb_error err;
    int prc = lb_pl_config_parse(cfg_path, (const char *)data, size, &cfg, &err);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "config: %s\n", prc ? err.msg : "accepted");
    if (prc == 0) {
        /* what the pipeline reads of an accepted config must be there */
        if (!cfg.model || cfg.n_methods < 0 || (cfg.n_methods && !cfg.methods)) abort();
        for (int i = 0; i < cfg.n_methods; i++)
            if (!cfg.methods[i].name || !cfg.methods[i].method) abort();
        lb_pl_config_free(&cfg);
    }
    return 0;
}
