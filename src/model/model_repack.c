/* Load-time packing of a model's GGUF Q8_0 / Q4_0 linear weights into the kernels' sixteen-
 * row layout (tensor/repack.h). The packed copy replaces the file's bytes for every matrix
 * multiply, so the pages of the mapped file it came from are handed back to the kernel: the
 * model's resident memory stays one copy of the weights. (The token embedding, read a row at a
 * time, keeps reading the mapped file; when it is also the output head, the pages of the rows
 * it reads come back on demand.) */
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
        uintptr_t lo = (uintptr_t)m->maps[i].data, hi = lo + m->maps[i].size;
        if (m->maps[i].data && (uintptr_t)p >= lo && (uintptr_t)p + n <= hi) {
            madvise((void *)start, end - start, MADV_DONTNEED);
            return;
        }
    }
}

static void pack(lb_model *m, lb_tensor *t)
{
    if (!t || t->packed || !lb_repack_supported(t))
        return;
    lb_packed *p = lb_repack(t);
    lb_model_own(m, p);
    t->packed = p;
    if (t != m->tok_embd)
        release_pages(m, t->data, lb_row_bytes(t->type, t->ne[0]) * (size_t)t->ne[1]);
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
