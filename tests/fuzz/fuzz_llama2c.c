/* A llama2.c checkpoint (the input) with the real tok512.bin beside it. */
#include "fuzz.h"
#include "io/loaders.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char tokenizer[1024];
    if (!tokenizer[0])
        snprintf(tokenizer, sizeof tokenizer, "%s/models/tok512.bin", fuzz_shared());
    const char *path = fuzz_input_file(data, size, ".bin");
    lb_model *m = NULL;
    lb_error err;
    if (lb_load_llama2c(path, tokenizer, &m, &err) == 0)
        lb_model_free(m);
    return 0;
}
