/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_CORE_H_INCLUDED_
#define _NGX_OAUTH_CORE_H_INCLUDED_


/*
 * The plain-C core: no nginx header may be included below core/.
 * The nginx glue, the ngx-oauth tool, the unit tests and the fuzzers all
 * link the same objects.
 */

#include <stddef.h>
#include <stdint.h>
#include <time.h>


typedef enum {
    NGX_OAUTH_OK = 0,
    NGX_OAUTH_ERROR = -1,        /* system or library failure */
    NGX_OAUTH_NOT_FOUND = -2,
    NGX_OAUTH_INVALID = -3,      /* malformed input */
    NGX_OAUTH_DENIED = -4,       /* authentication tag did not verify */
    NGX_OAUTH_UNKNOWN_KEY = -5,  /* sealed under a key id not in the ring */
    NGX_OAUTH_FULL = -6,         /* the store map is full */
    NGX_OAUTH_BUSY = -7,         /* lease held by someone else */
    NGX_OAUTH_CONFLICT = -8,     /* record changed since it was read */
    NGX_OAUTH_NOMEM = -9,
    NGX_OAUTH_TOO_LARGE = -10
} ngx_oauth_rc_t;


typedef struct {
    size_t          len;
    unsigned char  *data;
} ngx_oauth_str_t;


#define ngx_oauth_string(s)  { sizeof(s) - 1, (unsigned char *) s }
#define ngx_oauth_null_string  { 0, NULL }


const char *ngx_oauth_strerror(int rc);


#endif /* _NGX_OAUTH_CORE_H_INCLUDED_ */
