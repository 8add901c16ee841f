/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_BUF_H_INCLUDED_
#define _NGX_OAUTH_BUF_H_INCLUDED_


#include "ngx_oauth_core.h"


/* a buffer never grows beyond this: provider bodies are capped far below */
#define NGX_OAUTH_BUF_MAX  (64 * 1024 * 1024)

#define ngx_oauth_buf_init  { NULL, 0, 0, 0 }


/*
 * A growable byte buffer for request bodies, URLs and JSON responses.
 *
 * Every add returns NGX_OAUTH_OK, or NGX_OAUTH_NOMEM / NGX_OAUTH_TOO_LARGE
 * (NGX_OAUTH_ERROR: a format vsnprintf() refused) and sets "failed"; once
 * failed, adds do nothing and keep failing, so a caller may build a whole
 * body and check b->failed (or the last rc) once.
 * data is kept NUL-terminated (not counted in len) whenever it is not NULL.
 * The buffer may carry secrets: growing wipes the old copy, and
 * ngx_oauth_buf_reset() and ngx_oauth_buf_free() wipe the contents.
 * A zeroed struct (ngx_oauth_buf_init) is an empty buffer.
 */
typedef struct {
    unsigned char  *data;
    size_t          len;
    size_t          cap;
    int             failed;
} ngx_oauth_buf_t;


/* makes room for n more bytes (plus the terminating NUL) */
int ngx_oauth_buf_reserve(ngx_oauth_buf_t *b, size_t n);

int ngx_oauth_buf_add(ngx_oauth_buf_t *b, const void *p, size_t n);
int ngx_oauth_buf_add_cstr(ngx_oauth_buf_t *b, const char *s);
int ngx_oauth_buf_add_str(ngx_oauth_buf_t *b, const ngx_oauth_str_t *s);
int ngx_oauth_buf_add_byte(ngx_oauth_buf_t *b, unsigned char c);

/* printf-style; never use it with a format that comes from input */
int ngx_oauth_buf_add_fmt(ngx_oauth_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * RFC 3986: the unreserved characters (ALPHA DIGIT "-" "." "_" "~") are
 * kept, every other byte becomes %XX (upper-case hex).  For URL query
 * values and path segments.
 */
int ngx_oauth_buf_add_url_escaped(ngx_oauth_buf_t *b, const void *p,
    size_t n);

/*
 * The WHATWG application/x-www-form-urlencoded serializer: ALPHA DIGIT
 * "*" "-" "." "_" kept, space becomes "+", every other byte %XX.  Also
 * the encoding RFC 6749 2.3.1 asks for client_id and client_secret before
 * they are joined with ":" and base64-encoded for HTTP Basic.
 */
int ngx_oauth_buf_add_form_escaped(ngx_oauth_buf_t *b, const void *p,
    size_t n);

/* adds "name=value", both form-escaped, preceded by "&" when len > 0 */
int ngx_oauth_buf_add_form_pair(ngx_oauth_buf_t *b, const void *name,
    size_t name_len, const void *value, size_t value_len);

/* wipes the contents, empties the buffer, clears failed; keeps memory */
void ngx_oauth_buf_reset(ngx_oauth_buf_t *b);

/* wipes and frees the memory; the buffer is empty and usable again */
void ngx_oauth_buf_free(ngx_oauth_buf_t *b);


#endif /* _NGX_OAUTH_BUF_H_INCLUDED_ */
