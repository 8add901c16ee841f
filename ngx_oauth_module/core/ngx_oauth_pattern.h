/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_PATTERN_H_INCLUDED_
#define _NGX_OAUTH_PATTERN_H_INCLUDED_


#include "ngx_oauth_core.h"


/*
 * POSIX extended regular expressions, for connection_param pattern= and
 * the like.  A value matches only when the whole of it does (anchored
 * whatever the pattern says), and never when it holds a control
 * character (below 0x20, or DEL) or a NUL byte, whatever the pattern
 * says: POSIX "." matches a newline.
 */

typedef struct ngx_oauth_pattern_s  ngx_oauth_pattern_t;


/*
 * Compiles pattern once, at config time: *pat is malloc()ed, released by
 * ngx_oauth_pattern_free().  NGX_OAUTH_INVALID with the regerror() text
 * in err when it does not compile; NGX_OAUTH_NOMEM.
 */
int ngx_oauth_pattern_compile(ngx_oauth_pattern_t **pat, const char *pattern,
    char *err, size_t errlen);

/*
 * NGX_OAUTH_OK when the whole value matches; NGX_OAUTH_INVALID when it
 * does not, or holds a control character or NUL; NGX_OAUTH_NOMEM.
 * Values under 256 bytes take no allocation.
 */
int ngx_oauth_pattern_exec(const ngx_oauth_pattern_t *pat,
    const unsigned char *value, size_t len);

void ngx_oauth_pattern_free(ngx_oauth_pattern_t *pat);

/* compiles and frees: a check at config time */
int ngx_oauth_pattern_check(const char *pattern, char *err, size_t errlen);

/*
 * Compiles, matches and frees, for one-off use; code that matches a
 * pattern more than once compiles it once instead.  NGX_OAUTH_ERROR
 * when the pattern does not compile.
 */
int ngx_oauth_pattern_match(const char *pattern, const unsigned char *value,
    size_t len);


#endif /* _NGX_OAUTH_PATTERN_H_INCLUDED_ */
