/* apierr.c -- setting a dialect-neutral API error. */
#include "apierr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A message cut short by its buffer must not end inside a UTF-8 character. */
static void trim_split_character(char *s, size_t len)
{
    size_t lead = len, need;
    unsigned char c;

    while (lead > 0 && len - lead < 3 && ((unsigned char)s[lead - 1] & 0xc0) == 0x80)
        lead--;
    if (lead == 0)
        return;
    c = (unsigned char)s[lead - 1];
    if (c < 0xc0)
        return;
    need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    if (len - (lead - 1) < need)
        s[lead - 1] = '\0';
}

void apierr_set(struct apierr *e, enum apierr_kind kind, int status, const char *fmt, ...)
{
    va_list ap;
    int n;

    e->kind = kind;
    e->status = status;
    e->param[0] = '\0';
    e->code = NULL;
    e->retry_after = 0;
    va_start(ap, fmt);
    n = vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof e->message)
        trim_split_character(e->message, sizeof e->message - 1);
}

void apierr_field(struct apierr *e, const char *field, const char *fmt, ...)
{
    va_list ap;
    char what[768];

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    apierr_set(e, APIERR_INVALID_REQUEST, 400, "%s: %s", field, what);
    snprintf(e->param, sizeof e->param, "%s", field);
}
