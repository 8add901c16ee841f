/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_audit.h"
#include "ngx_oauth_buf.h"
#include "ngx_oauth_json.h"


/*
 * oauth_audit_log: one JSON object a line, written with one write() on a
 * file opened with O_APPEND, so that lines of several workers never mix.
 * Only names, codes and times go in: never a token, secret or key.
 */


static void ngx_http_oauth_audit_field(ngx_oauth_buf_t *b, const char *name,
    const u_char *value, size_t len, ngx_uint_t comma);


void
ngx_http_oauth_audit(ngx_http_oauth_main_conf_t *omcf, ngx_log_t *log,
    const char *event, ngx_oauth_str_t *owner, ngx_str_t *provider,
    ngx_oauth_str_t *account, const char *result, const char *error,
    ngx_str_t *remote_addr)
{
    u_char           tbuf[sizeof("1970-01-01T00:00:00Z")];
    ssize_t          n;
    ngx_tm_t         tm;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    if (omcf->audit_log == NULL) {
        return;
    }

    ngx_gmtime(ngx_time(), &tm);

    ngx_sprintf(tbuf, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    ngx_oauth_buf_add_byte(&b, '{');

    ngx_http_oauth_audit_field(&b, "time", tbuf, sizeof(tbuf) - 1, 0);
    ngx_http_oauth_audit_field(&b, "event", (u_char *) event,
                               ngx_strlen(event), 1);
    ngx_http_oauth_audit_field(&b, "owner", owner ? owner->data : NULL,
                               owner ? owner->len : 0, 1);
    ngx_http_oauth_audit_field(&b, "provider",
                               provider ? provider->data : NULL,
                               provider ? provider->len : 0, 1);
    ngx_http_oauth_audit_field(&b, "account", account ? account->data : NULL,
                               account ? account->len : 0, 1);
    ngx_http_oauth_audit_field(&b, "result", (u_char *) result,
                               result ? ngx_strlen(result) : 0, 1);
    ngx_http_oauth_audit_field(&b, "error", (u_char *) error,
                               error ? ngx_strlen(error) : 0, 1);
    ngx_http_oauth_audit_field(&b, "remote_addr",
                               remote_addr ? remote_addr->data : NULL,
                               remote_addr ? remote_addr->len : 0, 1);

    ngx_oauth_buf_add_cstr(&b, "}\n");

    if (b.failed) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "oauth: audit line for \"%s\" lost: no memory", event);
        goto done;
    }

    n = ngx_write_fd(omcf->audit_log->fd, b.data, b.len);

    if (n != (ssize_t) b.len) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "oauth: audit line for \"%s\" not written", event);
    }

done:

    ngx_oauth_buf_free(&b);
}


static void
ngx_http_oauth_audit_field(ngx_oauth_buf_t *b, const char *name,
    const u_char *value, size_t len, ngx_uint_t comma)
{
    if (comma) {
        ngx_oauth_buf_add_byte(b, ',');
    }

    ngx_oauth_buf_add_byte(b, '"');
    ngx_oauth_buf_add_cstr(b, name);
    ngx_oauth_buf_add_cstr(b, "\":");

    if (value == NULL) {
        ngx_oauth_buf_add_cstr(b, "null");
        return;
    }

    /* a value that is not UTF-8 is not logged as something else */

    if (ngx_oauth_json_add_string(b, value, len) != NGX_OAUTH_OK) {
        ngx_oauth_buf_add_cstr(b, "\"?\"");
    }
}
