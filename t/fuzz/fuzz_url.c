/*
 * Copyright (C) ngx_oauth_module authors
 *
 * libFuzzer target: return_to validation, origins, endpoint checks, query
 * parsing and template expansion on arbitrary bytes.  Besides "no crash",
 * it checks what the validators promise about what they accept.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_oauth_url.h"


#define ngx_oauth_fuzz_assert(c)  do { if (!(c)) abort(); } while (0)


static ngx_oauth_str_t  ngx_oauth_fuzz_origins[] = {
    ngx_oauth_string("https://app.example.com"),
    ngx_oauth_string("http://localhost:3000"),
};


static int
ngx_oauth_fuzz_param(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value)
{
    size_t  *n = data;

    ngx_oauth_fuzz_assert(name->data[name->len] == '\0');
    ngx_oauth_fuzz_assert(value->data[value->len] == '\0');
    ngx_oauth_fuzz_assert(memchr(name->data, '\0', name->len) == NULL);
    ngx_oauth_fuzz_assert(memchr(value->data, '\0', value->len) == NULL);

    (*n)++;

    return NGX_OAUTH_OK;
}


static void
ngx_oauth_fuzz_return_to(const uint8_t *data, size_t size)
{
    char         origin[NGX_OAUTH_ORIGIN_MAX];
    size_t       i, olen;
    const char  *reason;

    reason = NULL;

    if (ngx_oauth_return_to_check(data, size, ngx_oauth_fuzz_origins, 2,
                                  &reason)
        != NGX_OAUTH_OK)
    {
        ngx_oauth_fuzz_assert(reason != NULL);
        return;
    }

    ngx_oauth_fuzz_assert(size > 0 && size <= NGX_OAUTH_RETURN_TO_MAX);

    for (i = 0; i < size; i++) {
        ngx_oauth_fuzz_assert(data[i] > 0x20 && data[i] < 0x7f
                              && data[i] != '\\');
    }

    if (data[0] == '/') {
        /* a relative path: exactly one leading slash */
        ngx_oauth_fuzz_assert(size == 1 || data[1] != '/');
        return;
    }

    /* an absolute URL: its origin is one of the allowed ones */

    ngx_oauth_fuzz_assert(ngx_oauth_url_origin(data, size, origin, &olen,
                                               &reason)
                          == NGX_OAUTH_OK);
    ngx_oauth_fuzz_assert(strcmp(origin, "https://app.example.com") == 0
                          || strcmp(origin, "http://localhost:3000") == 0);
}


static void
ngx_oauth_fuzz_endpoint(const uint8_t *data, size_t size, unsigned flags)
{
    size_t       i;
    const char  *reason;

    if (ngx_oauth_url_check_endpoint(data, size, flags, &reason)
        != NGX_OAUTH_OK)
    {
        return;
    }

    ngx_oauth_fuzz_assert(
        (size > 8 && strncasecmp((const char *) data, "https://", 8) == 0)
        || (size > 7 && strncasecmp((const char *) data, "http://", 7) == 0));

    for (i = 0; i < size; i++) {
        ngx_oauth_fuzz_assert(data[i] > 0x20 && data[i] < 0x7f
                              && data[i] != '\\' && data[i] != '#');
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char              origin[NGX_OAUTH_ORIGIN_MAX];
    size_t            n, count, olen, half;
    unsigned char    *dst;
    unsigned char     small[64];
    ngx_oauth_buf_t   b = ngx_oauth_buf_init;
    ngx_oauth_str_t   v, missing;
    ngx_oauth_pair_t  var;
    const char       *reason;

    ngx_oauth_fuzz_return_to(data, size);

    ngx_oauth_fuzz_endpoint(data, size, 0);
    ngx_oauth_fuzz_endpoint(data, size, NGX_OAUTH_URL_TEMPLATE);

    if (ngx_oauth_url_origin(data, size, origin, &olen, &reason)
        == NGX_OAUTH_OK)
    {
        ngx_oauth_fuzz_assert(olen == strlen(origin));
        ngx_oauth_fuzz_assert(olen < NGX_OAUTH_ORIGIN_MAX);
    }

    /* decoding */

    dst = malloc(size + 1);
    if (dst == NULL) {
        return 0;
    }

    if (ngx_oauth_url_decode(data, size, NGX_OAUTH_URL_FORM, dst, &n)
        == NGX_OAUTH_OK)
    {
        ngx_oauth_fuzz_assert(n <= size);
        ngx_oauth_fuzz_assert(n == 0 || memchr(dst, '\0', n) == NULL);
    }

    /* queries */

    if (ngx_oauth_query_get(data, size, (const unsigned char *) "state", 5,
                            small, sizeof(small), &v, &count)
        == NGX_OAUTH_OK)
    {
        ngx_oauth_fuzz_assert(count >= 1);
        ngx_oauth_fuzz_assert(v.len < sizeof(small));
        ngx_oauth_fuzz_assert(v.data[v.len] == '\0');

    } else {
        ngx_oauth_fuzz_assert(v.len == 0);
    }

    if (ngx_oauth_query_get(data, size, (const unsigned char *) "", 0, dst,
                            size + 1, &v, &count)
        == NGX_OAUTH_OK)
    {
        ngx_oauth_fuzz_assert(v.len <= size);
    }

    n = 0;
    (void) ngx_oauth_query_foreach(data, size, ngx_oauth_fuzz_param, &n);

    free(dst);

    /* templates: the input as a template, then split as template + value */

    var.name.data = (unsigned char *) "shop";
    var.name.len = 4;
    var.value.data = (unsigned char *) "x.myshopify.com";
    var.value.len = 15;

    (void) ngx_oauth_url_expand(&b, data, size, &var, 1, &missing);
    ngx_oauth_fuzz_assert(!b.failed);

    half = size / 2;
    var.value.data = (unsigned char *) data + half;
    var.value.len = size - half;

    ngx_oauth_buf_reset(&b);

    if (ngx_oauth_url_expand(&b, data, half, &var, 1, &missing)
        == NGX_OAUTH_OK)
    {
        ngx_oauth_fuzz_endpoint(b.data, b.len, 0);
    }

    ngx_oauth_buf_reset(&b);

    var.name.data = (unsigned char *) "oauth_error";
    var.name.len = 11;
    (void) ngx_oauth_url_append_params(&b, data, half, &var, 1);

    ngx_oauth_buf_free(&b);

    return 0;
}
