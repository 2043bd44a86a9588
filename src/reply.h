/* reply.h -- what goes back to the web server: status lines, headers, JSON bodies and errors in the
 * client's dialect, and a stream's events flushed one at a time. */
#ifndef OF_REPLY_H
#define OF_REPLY_H

#include <fcgiapp.h>
#include <stddef.h>

#include "apierr.h"
#include "chat.h"

struct reply {
    FCGX_Stream *out;
    const char *request_id;
    int status;               /* what was sent, for the access log */
    int headers_sent;
    int gone;                 /* a write failed: the client is gone */
};

void reply_init(struct reply *r, FCGX_Stream *out, const char *request_id);
/* Headers, then an empty line. extra is more header lines ending in \r\n, or NULL. */
int reply_headers(struct reply *r, int status, const char *content_type, const char *extra);
int reply_body(struct reply *r, int status, const char *content_type, const char *body, size_t len);
int reply_json(struct reply *r, int status, struct json_object *o);
int reply_error(struct reply *r, const struct dialect *d, const struct apierr *e);
/* A stream's bytes: the first call sends the headers (200, content_type) first. Both return -1 once the
 * client is gone. */
int reply_put(struct reply *r, const char *content_type, const char *bytes, size_t len);
int reply_flush(struct reply *r);

#endif
