/* Text datasets for perplexity and calibration: a plain text file, a jsonl file of documents
 * with a "text" field (C4), or a named shortcut for the files in ../shared/datasets.
 *
 *   wikitext2   → wikitext2/wiki.test.raw
 *   c4          → c4/c4_validation_2k.jsonl
 *   tinystories → tinystories/validation_head.txt
 *
 * Shortcuts resolve against data_dir when given, else $LOWBIT_DATA_DIR, else ../shared/datasets
 * relative to the current directory. A plain file is read whole with one trailing newline
 * dropped, as llama.cpp's -f reads it. A jsonl file's documents are joined with a single space
 * in file order, as GPTQ's C4 evaluation joins them (' '.join(valdata['text'])); blank lines
 * are skipped. */
#ifndef LB_DATASET_H
#define LB_DATASET_H

#include "core/error.h"

#include <stddef.h>

/* The file a name stands for (a shortcut or a path as given); malloc'd. */
char *lb_dataset_resolve(const char *name, const char *data_dir);

/* Reads the dataset's text; *text is malloc'd and NUL-terminated. Errors name the file (and the
 * line of a bad jsonl record); an empty text is an error. */
int lb_dataset_load_text(const char *name, const char *data_dir, char **text, size_t *len,
                         lb_error *err);

/* The documents of a jsonl file, each its "text" field, in order; *docs and each entry are
 * malloc'd (free with lb_dataset_free_docs). */
int lb_dataset_jsonl_docs(const char *path, char ***docs, size_t *n_docs, lb_error *err);
void lb_dataset_free_docs(char **docs, size_t n_docs);

#endif
