/* Load-time packing of a model's GGUF Q8_0 / Q4_0 linear weights into the kernels' sixteen-
 * row layout (tensor/repack.h). The packed copy replaces the file's bytes for every matrix
 * multiply, so the pages of the mapped file it came from are handed back to the kernel: the
 * model's resident memory stays one copy of the weights, at load too, a few MiB at a time. (An
 * output head tied to the token embedding is packed as well, and the embedding's rows are
 * then read from the packed copy; an embedding of its own keeps reading the mapped file.) */
#include "model/model.h"
#include "tensor/repack.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* The whole pages of [p, p + n) inside one of the model's read-only maps are dropped: they
 * were never written, so a later read brings the file's bytes back. Memory outside the maps
 * (a loader's own buffers) is left alone. */
static void release_pages(const lb_model *m, const void *p, size_t n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)p + page - 1) / page * page;
    uintptr_t end = ((uintptr_t)p + n) / page * page;
    if (end <= start)
        return;
    for (int i = 0; i < m->n_maps; i++) {
        if (lb_mapping_holds(&m->maps[i], p, n)) {
            madvise((void *)start, end - start, MADV_DONTNEED);
            return;
        }
    }
}

/* Source bytes packed between two hand-backs of pages. */
#define PACK_STEP (2u << 20)

static void pack(lb_model *m, lb_tensor *t)
{
    if (!t || t->packed || !lb_repack_supported(t))
        return;
    lb_packed *p = lb_repack_begin(t);
    lb_model_own(m, p);
    /* A few MiB at a time, each step's pages handed back (from the tensor's start, so that a
     * page across two steps goes with the second): the file's copy and the packed one are
     * never both resident beyond a step. */
    size_t group_src = (size_t)LB_PACK_ROWS * lb_row_bytes(t->type, t->ne[0]);
    int64_t groups = (t->ne[1] + LB_PACK_ROWS - 1) / LB_PACK_ROWS;
    int64_t step = (int64_t)(PACK_STEP / group_src) + 1;
    size_t bytes = lb_row_bytes(t->type, t->ne[0]) * (size_t)t->ne[1];
    for (int64_t g = 0; g < groups; g += step) {
        int64_t g1 = g + step < groups ? g + step : groups;
        lb_repack_groups(p, g, g1);
        size_t done = (size_t)g1 * group_src < bytes ? (size_t)g1 * group_src : bytes;
        release_pages(m, t->data, done);
    }
    t->packed = p;
}

void lb_model_repack(lb_model *m)
{
    for (int l = 0; l < m->cfg.n_layers; l++) {
        lb_layer *L = &m->layers[l];
        lb_tensor *linears[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof linears / sizeof linears[0]; i++)
            pack(m, linears[i]);
    }
    pack(m, m->output);
}
