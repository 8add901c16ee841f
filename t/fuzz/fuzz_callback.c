/*
 * Copyright (C) ngx_oauth_module authors
 *
 * libFuzzer target: the callback's query string as the browser (and so
 * anyone) sends it.  It reads state, code, iss, error and a kept callback
 * parameter the way the callback does, and checks what reaches the flow:
 * single, decoded, NUL-free values within their caps, and kept values that
 * passed the kept-value pattern (no control character, no URL syntax).
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_oauth_url.h"


#define ngx_oauth_fuzz_assert(c)  do { if (!(c)) abort(); } while (0)

/* the pattern the callback applies to keep_callback_param values */
#define NGX_OAUTH_FUZZ_KEPT  "^[A-Za-z0-9._~:-]{1,256}$"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
ngx_oauth_fuzz_param(const uint8_t *data, size_t size, const char *name,
    size_t cap, int kept)
{
    int              rc;
    size_t           i, count;
    unsigned char    buf[1024];
    ngx_oauth_str_t  v;

    rc = ngx_oauth_query_get(data, size, (const unsigned char *) name,
                             strlen(name), buf, cap, &v, &count);

    if (rc == NGX_OAUTH_NOT_FOUND) {
        ngx_oauth_fuzz_assert(count == 0);
        return;
    }

    if (rc != NGX_OAUTH_OK) {
        return;
    }

    ngx_oauth_fuzz_assert(count >= 1);
    ngx_oauth_fuzz_assert(v.len < cap);
    ngx_oauth_fuzz_assert(v.data[v.len] == '\0');
    ngx_oauth_fuzz_assert(memchr(v.data, '\0', v.len) == NULL);

    if (!kept || count != 1) {
        return;
    }

    if (ngx_oauth_pattern_match(NGX_OAUTH_FUZZ_KEPT, v.data, v.len)
        != NGX_OAUTH_OK)
    {
        return;
    }

    /* a kept value may end up in a URL path or a header */

    ngx_oauth_fuzz_assert(v.len >= 1 && v.len <= 256);

    for (i = 0; i < v.len; i++) {
        ngx_oauth_fuzz_assert(v.data[i] > 0x20 && v.data[i] < 0x7f
                              && v.data[i] != '/' && v.data[i] != '@'
                              && v.data[i] != '?' && v.data[i] != '#'
                              && v.data[i] != '%');
    }
}


static int
ngx_oauth_fuzz_each(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value)
{
    ngx_oauth_fuzz_assert(name->data[name->len] == '\0');
    ngx_oauth_fuzz_assert(value->data[value->len] == '\0');
    ngx_oauth_fuzz_assert(memchr(name->data, '\0', name->len) == NULL);
    ngx_oauth_fuzz_assert(memchr(value->data, '\0', value->len) == NULL);

    (*(size_t *) data)++;

    return NGX_OAUTH_OK;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t  n;

    /* the caps the callback uses: state and iss small, code larger */

    ngx_oauth_fuzz_param(data, size, "state", 64, 0);
    ngx_oauth_fuzz_param(data, size, "code", 1024, 0);
    ngx_oauth_fuzz_param(data, size, "iss", 512, 0);
    ngx_oauth_fuzz_param(data, size, "error", 256, 0);
    ngx_oauth_fuzz_param(data, size, "shop", 512, 1);
    ngx_oauth_fuzz_param(data, size, "realmId", 512, 1);

    n = 0;
    (void) ngx_oauth_query_foreach(data, size, ngx_oauth_fuzz_each, &n);

    return 0;
}
