/*
 * Copyright (C) ngx_oauth_module authors
 *
 * libFuzzer target: a userinfo (or token) document as the provider sends
 * it, then the account lookups the callback makes in it (account_id and
 * account_name paths, kept fields) and the JSON-in-HTML encoding of what
 * it finds (the popup page).  The first byte picks a path, the rest is
 * the document.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_oauth_json.h"


#define ngx_oauth_fuzz_assert(c)  do { if (!(c)) abort(); } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const char  *ngx_oauth_fuzz_paths[] = {
    "sub", "id", "user.id", "user.name", "data.0.id", "data.0.attributes.id",
    "team.id", "authed_user.id", "instance_url", "a.b.c.d.e.f.g.h", "0",
    "user..id", ".", "",
};


static void
ngx_oauth_fuzz_lookup(void *root, const char *path)
{
    size_t            i;
    ngx_oauth_buf_t   b = ngx_oauth_buf_init;
    ngx_oauth_str_t   v;

    memset(&v, 0xa5, sizeof(v));

    switch (ngx_oauth_json_get(root, (const unsigned char *) path,
                               strlen(path), &v))
    {
    case NGX_OAUTH_OK:
        break;

    case NGX_OAUTH_INVALID:
        /* only an empty path or segment is invalid */
        ngx_oauth_fuzz_assert(path[0] == '\0' || path[0] == '.'
                              || strstr(path, "..") != NULL);
        return;

    default:
        return;
    }

    ngx_oauth_fuzz_assert(v.data != NULL && v.data[v.len] == '\0');

    /* the popup embeds the account as JSON inside <script> */

    if (ngx_oauth_json_add_string(&b, v.data, v.len) == NGX_OAUTH_OK) {
        ngx_oauth_fuzz_assert(!b.failed);
        ngx_oauth_fuzz_assert(ngx_oauth_utf8_valid(v.data, v.len));
        ngx_oauth_fuzz_assert(b.len >= 2 && b.data[0] == '"'
                              && b.data[b.len - 1] == '"');

        for (i = 0; i < b.len; i++) {
            ngx_oauth_fuzz_assert(b.data[i] >= 0x20 && b.data[i] != 0x7f
                                  && b.data[i] != '<' && b.data[i] != '>'
                                  && b.data[i] != '&' && b.data[i] != '\'');
        }

    } else {
        ngx_oauth_fuzz_assert(!ngx_oauth_utf8_valid(v.data, v.len)
                              || b.failed);
    }

    ngx_oauth_buf_free(&b);
    ngx_oauth_json_str_free(&v);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void    *root;
    size_t   npaths;

    if (size == 0) {
        return 0;
    }

    npaths = sizeof(ngx_oauth_fuzz_paths) / sizeof(ngx_oauth_fuzz_paths[0]);

    root = NULL;

    if (ngx_oauth_json_parse(data + 1, size - 1, &root) != NGX_OAUTH_OK) {
        return 0;
    }

    ngx_oauth_fuzz_assert(root != NULL);

    ngx_oauth_fuzz_lookup(root, ngx_oauth_fuzz_paths[data[0] % npaths]);
    ngx_oauth_fuzz_lookup(root, "user.id");
    ngx_oauth_fuzz_lookup(root, "sub");

    ngx_oauth_json_free(root);

    return 0;
}
