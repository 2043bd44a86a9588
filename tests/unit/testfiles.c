/* testfiles.c -- what the data-driven unit tests share: reading a file whole, and Criterion's parameter
 * lists built from a directory's entries. */
#include "testfiles.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"

char *testfiles_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char chunk[8192];
    size_t n;

    if (!f)
        return NULL;
    buf_init(&b);
    buf_append(&b, "", 0);   /* an empty file is "" too */
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    if (len)
        *len = b.len;
    return buf_steal(&b);
}

char *testfiles_cr_strdup(const char *s)
{
    char *p = cr_malloc(strlen(s) + 1);

    strcpy(p, s);
    return p;
}

int testfiles_by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}
