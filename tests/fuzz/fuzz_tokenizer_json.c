/* Hugging Face tokenizer.json, then a short encode and decode with whatever loaded. */
#include "fuzz.h"
#include "tokenizer/loaders.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_file(data, size, ".json");
    lb_tokenizer *t = NULL;
    lb_error err;
    if (tok_load_hf_json(path, &t, &err) == 0) {
        static const char text[] = "Hello world, 123 héllo\n\t<s> ünïcödé 🙂";
        int *ids = NULL, n = 0;
        if (tok_encode(t, text, sizeof text - 1, true, &ids, &n, &err) == 0) {
            free(tok_decode(t, ids, n));
            free(ids);
        }
        tok_free(t);
    }
    return 0;
}
