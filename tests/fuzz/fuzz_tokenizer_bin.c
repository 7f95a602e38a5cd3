/* llama2.c tokenizer.bin, at the vocabulary size of the file the seed came from. */
#include "fuzz.h"
#include "tokenizer/loaders.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks a vocabulary size the rest of the file must satisfy. */
    static const int sizes[] = {512, 32000, 1, 3};
    int vocab = size ? sizes[data[0] % 4] : 512;
    const char *path = fuzz_input_file(size ? data + 1 : data, size ? size - 1 : 0, ".tok");
    lb_tokenizer *t = NULL;
    lb_error err;
    if (tok_load_llama2c(path, vocab, &t, &err) == 0)
        tok_free(t);
    return 0;
}
