/* Chooses a loader by looking at the path: a directory is a Hugging Face checkpoint, a file
 * starting with "GGUF" is GGUF, anything else is tried as a llama2.c checkpoint. */
#include "core/file.h"
#include "io/loaders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Norm weights and biases, one row each, are read by every forward pass. In the mapped file
 * they sit between the large matrices, so each read maps the page around it, or a whole 2 MiB
 * when the kernel keeps that part of the file in a huge page. Read from the file into the
 * heap once, they cost their own few KiB and leave the mapped pages alone. */
static void own_vectors(lb_model *m)
{
    for (int i = 0; i < m->n_tensors; i++) {
        lb_tensor *t = &m->tensors[i];
        if (t->n_dims != 1 || !t->data || t->nbytes == 0)
            continue;
        for (int k = 0; k < m->n_maps; k++)
            if (lb_mapping_holds(&m->maps[k], t->data, t->nbytes)) {
                void *copy = lb_malloc(t->nbytes);
                if (lb_mapping_read(&m->maps[k], t->data, copy, t->nbytes))
                    memcpy(copy, t->data, t->nbytes);
                lb_model_own(m, copy);
                t->data = copy;
                break;
            }
    }
}

static int load(const char *path, const lb_load_options *opts, lb_model **out, lb_error *err)
{
    *out = NULL;
    if (lb_is_dir(path))
        return lb_load_hf_dir(path, out, err);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return lb_fail(err, "%s: cannot open model file", path);
    char magic[4] = {0};
    size_t n = fread(magic, 1, 4, fp);
    fclose(fp);
    if (n == 4 && memcmp(magic, "GGUF", 4) == 0)
        return lb_load_gguf(path, out, err);
    const char *dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".gguf") == 0)
        return lb_fail(err, "%s: offset 0: not a GGUF file (magic is not \"GGUF\")", path);
    if (dot && strcmp(dot, ".safetensors") == 0) {
        char *dir = lb_path_dir(path);
        int rc = lb_load_hf_dir(dir, out, err);
        free(dir);
        return rc;
    }
    return lb_load_llama2c(path, opts ? opts->tokenizer_path : NULL, out, err);
}

int lb_model_load(const char *path, const lb_load_options *opts, lb_model **out, lb_error *err)
{
    if (load(path, opts, out, err))
        return -1;
    lb_model_repack(*out);
    own_vectors(*out);
    return 0;
}
