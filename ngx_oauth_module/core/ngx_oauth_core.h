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


/*
 * Results of core functions.  The failures lie below -100 so that none
 * can pass for one of nginx's own codes (NGX_ERROR -1 ... NGX_ABORT -6)
 * when glue hands a result on; NGX_OAUTH_OK is 0 like NGX_OK.  Callbacks
 * that return "1, 0 or a negative code" keep working: all are negative.
 */
typedef enum {
    NGX_OAUTH_OK = 0,
    NGX_OAUTH_ERROR = -101,      /* system or library failure */
    NGX_OAUTH_NOT_FOUND = -102,
    NGX_OAUTH_INVALID = -103,    /* malformed input */
    NGX_OAUTH_DENIED = -104,     /* authentication tag did not verify */
    NGX_OAUTH_UNKNOWN_KEY = -105, /* sealed under a key id not in the ring */
    NGX_OAUTH_FULL = -106,       /* the store map is full */
    NGX_OAUTH_BUSY = -107,       /* lease held by someone else */
    NGX_OAUTH_CONFLICT = -108,   /* record changed since it was read */
    NGX_OAUTH_NOMEM = -109,
    NGX_OAUTH_TOO_LARGE = -110,
    NGX_OAUTH_UNSUPPORTED = -111 /* well-formed, not one we can use */
} ngx_oauth_rc_t;


typedef struct {
    size_t          len;
    unsigned char  *data;
} ngx_oauth_str_t;


/* a name and a value: query and form parameters, stored params, vars */
typedef struct {
    ngx_oauth_str_t  name;
    ngx_oauth_str_t  value;
} ngx_oauth_pair_t;


#define ngx_oauth_string(s)  { sizeof(s) - 1, (unsigned char *) s }
#define ngx_oauth_null_string  { 0, NULL }


const char *ngx_oauth_strerror(int rc);


#endif /* _NGX_OAUTH_CORE_H_INCLUDED_ */
