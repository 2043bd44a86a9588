/* apierr.c -- setting a dialect-neutral API error. */
#include "apierr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void apierr_set(struct apierr *e, enum apierr_kind kind, int status, const char *fmt, ...)
{
    va_list ap;

    e->kind = kind;
    e->status = status;
    e->param[0] = '\0';
    e->code = NULL;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
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
