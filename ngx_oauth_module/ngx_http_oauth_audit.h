/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_AUDIT_H_INCLUDED_
#define _NGX_HTTP_OAUTH_AUDIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/* one JSON line per credential event in oauth_audit_log, if set */
void ngx_http_oauth_audit(ngx_http_oauth_main_conf_t *omcf, ngx_log_t *log,
    const char *event, ngx_oauth_str_t *owner, ngx_str_t *provider,
    ngx_oauth_str_t *account, const char *result, const char *error,
    ngx_str_t *remote_addr);


#endif /* _NGX_HTTP_OAUTH_AUDIT_H_INCLUDED_ */
