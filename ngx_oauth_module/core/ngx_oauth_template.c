/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <string.h>

#include "ngx_oauth_template.h"
#include "ngx_oauth_json.h"
#include "ngx_oauth_crypto.h"


static size_t ngx_oauth_template_name(const unsigned char *p,
    const unsigned char *end);
static int ngx_oauth_template_value(ngx_oauth_buf_t *out,
    const ngx_oauth_str_t *v, unsigned mode);


/* the length of "{NAME}" at p (p points at "{"), 0 when it is not one */

static size_t
ngx_oauth_template_name(const unsigned char *p, const unsigned char *end)
{
    unsigned char         c;
    const unsigned char  *q;

    for (q = p + 1; q < end; q++) {
        c = *q;

        if (c == '}') {
            return (q - p > 1) ? (size_t) (q - p + 1) : 0;
        }

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
        {
            return 0;
        }
    }

    return 0;
}


int
ngx_oauth_template_expand(ngx_oauth_buf_t *out, const unsigned char *tpl,
    size_t len, const ngx_oauth_pair_t *vars, size_t nvars, unsigned mode,
    ngx_oauth_str_t *missing)
{
    int                   rc;
    size_t                i, n, start;
    const unsigned char  *p, *end, *q;

    start = out->len;
    p = tpl;
    end = tpl + len;

    while (p < end) {

        /* the text up to the next placeholder */

        n = 0;

        for (q = p; q < end; q++) {
            if (*q == '{') {
                n = ngx_oauth_template_name(q, end);
                if (n != 0) {
                    break;
                }
            }

            /* a URL template has no brace outside a placeholder */

            if (mode == NGX_OAUTH_TPL_URL && (*q == '{' || *q == '}')) {
                rc = NGX_OAUTH_INVALID;
                goto failed;
            }
        }

        rc = ngx_oauth_buf_add(out, p, q - p);
        if (rc != NGX_OAUTH_OK) {
            goto failed;
        }

        if (q == end) {
            break;
        }

        for (i = 0; i < nvars; i++) {
            if (vars[i].name.len == n - 2
                && memcmp(vars[i].name.data, q + 1, n - 2) == 0)
            {
                break;
            }
        }

        if (i == nvars) {
            if (missing) {
                missing->data = (unsigned char *) q + 1;
                missing->len = n - 2;
            }

            rc = NGX_OAUTH_NOT_FOUND;
            goto failed;
        }

        rc = ngx_oauth_template_value(out, &vars[i].value, mode);
        if (rc != NGX_OAUTH_OK) {
            goto failed;
        }

        p = q + n;
    }

    return NGX_OAUTH_OK;

failed:

    /* nothing half-written stays; what was added is wiped */

    if (out->data && out->len > start) {
        ngx_oauth_wipe(out->data + start, out->len - start);
        out->len = start;
        out->data[start] = '\0';
    }

    return rc;
}


static int
ngx_oauth_template_value(ngx_oauth_buf_t *out, const ngx_oauth_str_t *v,
    unsigned mode)
{
    int     rc;
    size_t  start;

    if (mode == NGX_OAUTH_TPL_FORM) {
        return ngx_oauth_buf_add_form_escaped(out, v->data, v->len);
    }

    if (mode == NGX_OAUTH_TPL_URL) {
        return ngx_oauth_buf_add_url_escaped(out, v->data, v->len);
    }

    if (mode == NGX_OAUTH_TPL_JSON) {

        /* the string's own quotes are the template's: drop the added ones */

        start = out->len;

        rc = ngx_oauth_json_add_string(out, v->data, v->len);
        if (rc != NGX_OAUTH_OK) {
            return rc;
        }

        memmove(out->data + start, out->data + start + 1,
                out->len - start - 2);
        out->len -= 2;
        out->data[out->len] = '\0';

        return NGX_OAUTH_OK;
    }

    if (v->len && (memchr(v->data, '\r', v->len) || memchr(v->data, '\n',
                                                          v->len)
                   || memchr(v->data, '\0', v->len)))
    {
        return NGX_OAUTH_INVALID;
    }

    return ngx_oauth_buf_add(out, v->data, v->len);
}


int
ngx_oauth_template_names(const unsigned char *tpl, size_t len,
    ngx_oauth_template_name_pt handler, void *data)
{
    int                   rc;
    size_t                n;
    const unsigned char  *p, *end;

    end = tpl + len;

    for (p = tpl; p < end; p++) {
        if (*p != '{') {
            continue;
        }

        n = ngx_oauth_template_name(p, end);
        if (n == 0) {
            continue;
        }

        rc = handler(data, p + 1, n - 2);
        if (rc != NGX_OAUTH_OK) {
            return rc;
        }

        p += n - 1;
    }

    return NGX_OAUTH_OK;
}
