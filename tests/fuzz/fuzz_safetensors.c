/* The safetensors header: length prefix, JSON table, dtypes, shapes and offsets. */
#include "fuzz.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_file(data, size, ".safetensors");
    safetensors_file *f = NULL;
    lb_error err;
    if (safetensors_open(path, &f, &err) == 0)
        safetensors_close(f);
    return 0;
}
