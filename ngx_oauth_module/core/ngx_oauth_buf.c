/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ngx_oauth_buf.h"


#define ngx_oauth_buf_is_alnum(c)                                            \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')              \
     || ((c) >= '0' && (c) <= '9'))


static int ngx_oauth_buf_add_escaped(ngx_oauth_buf_t *b, const void *p,
    size_t n, int form);


static const char  ngx_oauth_buf_hex[] = "0123456789ABCDEF";


int
ngx_oauth_buf_reserve(ngx_oauth_buf_t *b, size_t n)
{
    size_t          need, cap;
    unsigned char  *p;

    if (b->failed) {
        return NGX_OAUTH_NOMEM;
    }

    /* one byte more for the NUL that keeps data usable as a C string */

    if (n > NGX_OAUTH_BUF_MAX || b->len + n > NGX_OAUTH_BUF_MAX) {
        b->failed = 1;
        return NGX_OAUTH_TOO_LARGE;
    }

    need = b->len + n + 1;

    if (need <= b->cap) {
        return NGX_OAUTH_OK;
    }

    cap = b->cap ? b->cap : 64;

    while (cap < need) {
        cap *= 2;
    }

    /*
     * No realloc(): it may leave a copy of a secret behind in freed
     * memory; the old block is wiped before it is released.
     */

    p = malloc(cap);
    if (p == NULL) {
        b->failed = 1;
        return NGX_OAUTH_NOMEM;
    }

    if (b->data != NULL) {
        memcpy(p, b->data, b->len);
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }

    p[b->len] = '\0';

    b->data = p;
    b->cap = cap;

    return NGX_OAUTH_OK;
}


int
ngx_oauth_buf_add(ngx_oauth_buf_t *b, const void *p, size_t n)
{
    int  rc;

    rc = ngx_oauth_buf_reserve(b, n);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    if (n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }

    b->data[b->len] = '\0';

    return NGX_OAUTH_OK;
}


int
ngx_oauth_buf_add_cstr(ngx_oauth_buf_t *b, const char *s)
{
    return ngx_oauth_buf_add(b, s, strlen(s));
}


int
ngx_oauth_buf_add_str(ngx_oauth_buf_t *b, const ngx_oauth_str_t *s)
{
    return ngx_oauth_buf_add(b, s->data, s->len);
}


int
ngx_oauth_buf_add_byte(ngx_oauth_buf_t *b, unsigned char c)
{
    return ngx_oauth_buf_add(b, &c, 1);
}


int
ngx_oauth_buf_add_fmt(ngx_oauth_buf_t *b, const char *fmt, ...)
{
    int      n, rc;
    va_list  args;

    if (b->failed) {
        return NGX_OAUTH_NOMEM;
    }

    va_start(args, fmt);
    n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);

    if (n < 0) {
        b->failed = 1;
        return NGX_OAUTH_ERROR;
    }

    rc = ngx_oauth_buf_reserve(b, (size_t) n);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    va_start(args, fmt);
    n = vsnprintf((char *) b->data + b->len, b->cap - b->len, fmt, args);
    va_end(args);

    if (n < 0) {
        b->data[b->len] = '\0';
        b->failed = 1;
        return NGX_OAUTH_ERROR;
    }

    b->len += n;

    return NGX_OAUTH_OK;
}


int
ngx_oauth_buf_add_url_escaped(ngx_oauth_buf_t *b, const void *p, size_t n)
{
    return ngx_oauth_buf_add_escaped(b, p, n, 0);
}


int
ngx_oauth_buf_add_form_escaped(ngx_oauth_buf_t *b, const void *p, size_t n)
{
    return ngx_oauth_buf_add_escaped(b, p, n, 1);
}


int
ngx_oauth_buf_add_form_pair(ngx_oauth_buf_t *b, const void *name,
    size_t name_len, const void *value, size_t value_len)
{
    if (b->len) {
        (void) ngx_oauth_buf_add_byte(b, '&');
    }

    (void) ngx_oauth_buf_add_form_escaped(b, name, name_len);
    (void) ngx_oauth_buf_add_byte(b, '=');

    return ngx_oauth_buf_add_form_escaped(b, value, value_len);
}


void
ngx_oauth_buf_reset(ngx_oauth_buf_t *b)
{
    if (b->data != NULL) {
        OPENSSL_cleanse(b->data, b->cap);
        b->data[0] = '\0';
    }

    b->len = 0;
    b->failed = 0;
}


void
ngx_oauth_buf_free(ngx_oauth_buf_t *b)
{
    if (b->data != NULL) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }

    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}


static int
ngx_oauth_buf_add_escaped(ngx_oauth_buf_t *b, const void *p, size_t n,
    int form)
{
    int                   rc;
    size_t                i;
    unsigned char        *d, c;
    const unsigned char  *s;

    if (n > NGX_OAUTH_BUF_MAX / 3) {
        b->failed = 1;
        return NGX_OAUTH_TOO_LARGE;
    }

    /* the worst case, every byte escaped, reserved at once */

    rc = ngx_oauth_buf_reserve(b, n * 3);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    s = p;
    d = b->data + b->len;

    for (i = 0; i < n; i++) {
        c = s[i];

        if (ngx_oauth_buf_is_alnum(c) || c == '-' || c == '.' || c == '_') {
            *d++ = c;
            continue;
        }

        if (form) {
            if (c == '*') {
                *d++ = c;
                continue;
            }

            if (c == ' ') {
                *d++ = '+';
                continue;
            }

        } else if (c == '~') {
            *d++ = c;
            continue;
        }

        *d++ = '%';
        *d++ = ngx_oauth_buf_hex[c >> 4];
        *d++ = ngx_oauth_buf_hex[c & 0x0f];
    }

    b->len = d - b->data;
    b->data[b->len] = '\0';

    return NGX_OAUTH_OK;
}
