/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_oauth_pattern.h"


/* values this short are matched from a copy on the stack */
#define NGX_OAUTH_PATTERN_STACK  256


struct ngx_oauth_pattern_s {
    regex_t  re;
};


int
ngx_oauth_pattern_compile(ngx_oauth_pattern_t **pat, const char *pattern,
    char *err, size_t errlen)
{
    int                   rc;
    ngx_oauth_pattern_t  *p;

    *pat = NULL;

    p = malloc(sizeof(ngx_oauth_pattern_t));
    if (p == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    /*
     * Not REG_NOSUB: the match span is what proves the whole value
     * matched.  Wrapping the pattern in "^(...)$" is not enough, since a
     * stray ")" in it is an ordinary character on its own but would close
     * the wrapper's group.
     */

    rc = regcomp(&p->re, pattern, REG_EXTENDED);
    if (rc != 0) {
        if (errlen) {
            (void) regerror(rc, &p->re, err, errlen);
        }

        free(p);
        return NGX_OAUTH_INVALID;
    }

    *pat = p;

    return NGX_OAUTH_OK;
}


int
ngx_oauth_pattern_exec(const ngx_oauth_pattern_t *pat,
    const unsigned char *value, size_t len)
{
    int          rc;
    char        *s, small[NGX_OAUTH_PATTERN_STACK];
    size_t       i;
    regmatch_t   m;

    /* refused whatever the pattern: these end up in URLs and headers */

    for (i = 0; i < len; i++) {
        if (value[i] < 0x20 || value[i] == 0x7f) {
            return NGX_OAUTH_INVALID;
        }
    }

    if (len < sizeof(small)) {
        s = small;

    } else {
        s = malloc(len + 1);
        if (s == NULL) {
            return NGX_OAUTH_NOMEM;
        }
    }

    if (len) {
        memcpy(s, value, len);
    }

    s[len] = '\0';

    /*
     * POSIX matching is leftmost-longest, so when the whole value can
     * match, the span found is the whole value.
     */

    if (regexec(&pat->re, s, 1, &m, 0) == 0
        && m.rm_so == 0 && (size_t) m.rm_eo == len)
    {
        rc = NGX_OAUTH_OK;

    } else {
        rc = NGX_OAUTH_INVALID;
    }

    if (s != small) {
        free(s);
    }

    return rc;
}


void
ngx_oauth_pattern_free(ngx_oauth_pattern_t *pat)
{
    if (pat == NULL) {
        return;
    }

    regfree(&pat->re);
    free(pat);
}


int
ngx_oauth_pattern_check(const char *pattern, char *err, size_t errlen)
{
    int                   rc;
    ngx_oauth_pattern_t  *pat;

    rc = ngx_oauth_pattern_compile(&pat, pattern, err, errlen);

    ngx_oauth_pattern_free(pat);

    return rc;
}


int
ngx_oauth_pattern_match(const char *pattern, const unsigned char *value,
    size_t len)
{
    int                   rc;
    ngx_oauth_pattern_t  *pat;

    rc = ngx_oauth_pattern_compile(&pat, pattern, NULL, 0);
    if (rc != NGX_OAUTH_OK) {
        return (rc == NGX_OAUTH_NOMEM) ? rc : NGX_OAUTH_ERROR;
    }

    rc = ngx_oauth_pattern_exec(pat, value, len);

    ngx_oauth_pattern_free(pat);

    return rc;
}
