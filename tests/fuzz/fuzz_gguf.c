/* The GGUF path end to end: header, metadata, tensor table, config keys, vocabulary, binding. */
#include "fuzz.h"
#include "io/loaders.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_file(data, size, ".gguf");
    lb_model *m = NULL;
    lb_error err;
    if (lb_load_gguf(path, &m, &err) == 0)
        lb_model_free(m);
    return 0;
}
