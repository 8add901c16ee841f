/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_TEMPLATE_H_INCLUDED_
#define _NGX_OAUTH_TEMPLATE_H_INCLUDED_


#include "ngx_oauth_core.h"
#include "ngx_oauth_buf.h"
#include "ngx_oauth_url.h"


/* how a value is written where its placeholder was */
#define NGX_OAUTH_TPL_RAW    0   /* as it is; CR, LF and NUL refused */
#define NGX_OAUTH_TPL_FORM   1   /* application/x-www-form-urlencoded */
#define NGX_OAUTH_TPL_JSON   2   /* inside a JSON string, without quotes */
#define NGX_OAUTH_TPL_URL    3   /* url-escaped; no brace outside "{NAME}" */


/*
 * Expands the "{NAME}" placeholders of a header value or request body
 * template (NAME in [A-Za-z0-9_.-]).  Except in a URL template (_URL,
 * ngx_oauth_url_expand()), a brace not followed by a name and "}" is
 * literal text, so that a JSON body template may be written as it is
 * sent: {"token":"{token}"}.  NGX_OAUTH_NOT_FOUND for a placeholder not
 * in vars (*missing points at its name in tpl), NGX_OAUTH_INVALID for a
 * RAW value with CR, LF or NUL, a JSON value that is not UTF-8 or a stray
 * brace in a URL template; out is left as it was on any error.
 */
int ngx_oauth_template_expand(ngx_oauth_buf_t *out, const unsigned char *tpl,
    size_t len, const ngx_oauth_pair_t *vars, size_t nvars, unsigned mode,
    ngx_oauth_str_t *missing);

/*
 * Calls back for each placeholder name of tpl, in order (for the checks
 * at configuration time); stops with the first non-OK rc, returned.
 */
typedef int (*ngx_oauth_template_name_pt)(void *data,
    const unsigned char *name, size_t len);

int ngx_oauth_template_names(const unsigned char *tpl, size_t len,
    ngx_oauth_template_name_pt handler, void *data);


#endif /* _NGX_OAUTH_TEMPLATE_H_INCLUDED_ */
