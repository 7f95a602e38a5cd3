/* Placeholders for loaders being written; each is replaced by its real file. */
#include "io/loaders.h"
