/* testfiles.h -- what the data-driven unit tests share: reading a file whole, and Criterion's parameter
 * lists built from a directory's entries. */
#ifndef OF_TESTFILES_H
#define OF_TESTFILES_H

#include <dirent.h>
#include <stddef.h>

/* The file's bytes, NUL-terminated, with their count in *len (may be NULL); NULL when it cannot be read.
 * The caller frees them. */
char *testfiles_read(const char *path, size_t *len);
/* A copy in Criterion's memory, which parameters must live in. */
char *testfiles_cr_strdup(const char *s);
/* scandir's order for the parameter lists: by name. */
int testfiles_by_name(const struct dirent **a, const struct dirent **b);

#endif
