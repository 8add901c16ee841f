/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_JSON_H_INCLUDED_
#define _NGX_OAUTH_JSON_H_INCLUDED_


#include "ngx_oauth_core.h"
#include "ngx_oauth_buf.h"


#define NGX_OAUTH_JSON_MAX_SIZE    (1024 * 1024)
#define NGX_OAUTH_JSON_MAX_DEPTH   64

/* expires_in above ten years is not a lifetime, it is a broken provider */
#define NGX_OAUTH_EXPIRES_IN_MAX   (10LL * 366 * 24 * 3600)

/* a credential longer than this is refused rather than stored */
#define NGX_OAUTH_TOKEN_MAX        16384


/*
 * A parsed token endpoint response.  The strings point into the parsed
 * document (root) and are NUL-terminated; absent ones (or JSON null) have
 * len 0 and data NULL.  ngx_oauth_token_free() wipes them.
 */
typedef struct {
    ngx_oauth_str_t   access_token;
    ngx_oauth_str_t   refresh_token;
    ngx_oauth_str_t   token_type;
    ngx_oauth_str_t   scope;
    ngx_oauth_str_t   id_token;
    ngx_oauth_str_t   error;
    ngx_oauth_str_t   error_description;
    long long         expires_in;         /* -1 when absent */
    void             *root;
    void             *fields;             /* in root: the token's object */
} ngx_oauth_token_t;


/*
 * Makes jansson wipe every block it frees (documents, keys, the lexer's
 * copies of string values).  Process-wide; ngx_oauth_json_parse() calls it,
 * calling it earlier (at module init) covers every other jansson user too.
 */
void ngx_oauth_json_init(void);

/*
 * Parses a JSON text: NGX_OAUTH_TOO_LARGE above NGX_OAUTH_JSON_MAX_SIZE,
 * NGX_OAUTH_INVALID when it is not JSON, nests deeper than
 * NGX_OAUTH_JSON_MAX_DEPTH, has duplicate keys, invalid UTF-8, "\u0000"
 * or numbers out of range.  *root is a json_t * to hand back to
 * ngx_oauth_json_free().
 */
int ngx_oauth_json_parse(const unsigned char *text, size_t len, void **root);
void ngx_oauth_json_free(void *root);

/*
 * Parses a token endpoint response (RFC 6749 5.1 and 5.2):
 * - an object with a string "error": NGX_OAUTH_OK with .error set (and
 *   maybe .error_description), whatever else it holds (Slack's "ok":false);
 * - otherwise "access_token" must be a non-empty string of visible ASCII
 *   (no space, CR, LF), at most NGX_OAUTH_TOKEN_MAX bytes; so must
 *   refresh_token, id_token and token_type when present;
 * - "expires_in": a number or a string of digits (some providers), from 0
 *   to NGX_OAUTH_EXPIRES_IN_MAX; a fraction is dropped;
 * - "scope": a string, or an array of strings joined with spaces.
 * Anything else, or a body that is not a JSON object: NGX_OAUTH_INVALID
 * (TOO_LARGE for a huge body), and nothing to free.  On NGX_OAUTH_OK the
 * caller calls ngx_oauth_token_free().
 */
int ngx_oauth_token_parse(const unsigned char *body, size_t len,
    ngx_oauth_token_t *t);

/*
 * The same, with the token fields read from the object at a dotted path
 * of objects (Slack's user token under "authed_user"); with path NULL, a
 * response wrapped in "data" ({"data":[{...}]} or {"data":{...}}) is read
 * inside the wrapper.  t->fields is that object (an error is read at the
 * top level); dotted lookups may try it after root.
 */
int ngx_oauth_token_parse_at(const unsigned char *body, size_t len,
    const unsigned char *path, size_t path_len, ngx_oauth_token_t *t);
void ngx_oauth_token_free(ngx_oauth_token_t *t);

/*
 * Whether a parsed token is one the module may send as a bearer token:
 * no token_type, "bearer" in any case, or one of also[0..n) (a provider's
 * own names for its bearer tokens), compared without case.
 * NGX_OAUTH_UNSUPPORTED otherwise.
 */
int ngx_oauth_token_type_check(const ngx_oauth_token_t *t,
    const ngx_oauth_str_t *also, size_t n);

/*
 * Looks a dotted path up in a parsed document: "sub", "user.id",
 * "data.0.id" (a numeric segment indexes an array; on an object it is a
 * key).  A string is returned as it is; an integer, a real or a boolean as
 * its decimal text ("42", "1.5", "true").  NGX_OAUTH_NOT_FOUND when a
 * segment is missing or the value is an object, an array or null;
 * NGX_OAUTH_INVALID for an empty path or segment.  On NGX_OAUTH_OK
 * value->data is a malloc()ed NUL-terminated copy: release it with
 * ngx_oauth_json_str_free().
 */
int ngx_oauth_json_get(void *root, const unsigned char *path,
    size_t path_len, ngx_oauth_str_t *value);

/* wipes and frees a string returned by ngx_oauth_json_get() */
void ngx_oauth_json_str_free(ngx_oauth_str_t *s);

/*
 * Adds p as a quoted JSON string that is also safe inside an HTML
 * <script> element: '"' and '\' escaped, control characters, DEL, '<',
 * '>', '&', '\'' and U+2028/U+2029 as \uXXXX.  Invalid UTF-8 is refused
 * (NGX_OAUTH_INVALID, the buffer untouched, failed not set): replacing it
 * would hand on a value other than the one given.
 */
int ngx_oauth_json_add_string(ngx_oauth_buf_t *b, const void *p, size_t len);

/*
 * A form body ("a=1&b=2", as token requests are built) written into out
 * as a JSON object of strings, {"a":"1","b":"2"}, in the form's order:
 * for token endpoints that take JSON only (Notion, Atlassian).
 * NGX_OAUTH_INVALID for a malformed form or a value that is not UTF-8.
 */
int ngx_oauth_json_from_form(ngx_oauth_buf_t *out, const unsigned char *form,
    size_t len);

/* 1 when p is well-formed UTF-8: no overlong forms, surrogates, > U+10FFFF */
int ngx_oauth_utf8_valid(const unsigned char *p, size_t len);


#endif /* _NGX_OAUTH_JSON_H_INCLUDED_ */
