/* config.json for every architecture lowbit reads (parsed from memory, no file). */
#include "fuzz.h"
#include "io/hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hf_config cfg;
    lb_error err;
    hf_config_parse("config.json", (const char *)data, size, &cfg, &err);
    return 0;
}
