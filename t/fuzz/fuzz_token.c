/*
 * Copyright (C) ngx_oauth_module authors
 *
 * libFuzzer target: the token endpoint's answer, as the provider sends it.
 * Besides "no crash", it checks what ngx_oauth_token_parse() promises about
 * what it accepts: credentials are visible ASCII of a bounded length, the
 * lifetime is in range, and an error answer names its error.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_oauth_json.h"


#define ngx_oauth_fuzz_assert(c)  do { if (!(c)) abort(); } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
ngx_oauth_fuzz_credential(const ngx_oauth_str_t *s, int required)
{
    size_t  i;

    if (s->data == NULL) {
        ngx_oauth_fuzz_assert(!required && s->len == 0);
        return;
    }

    ngx_oauth_fuzz_assert(s->len > 0 && s->len <= NGX_OAUTH_TOKEN_MAX);
    ngx_oauth_fuzz_assert(s->data[s->len] == '\0');

    /* these values go into header lines: no space, CR, LF or NUL */

    for (i = 0; i < s->len; i++) {
        ngx_oauth_fuzz_assert(s->data[i] > 0x20 && s->data[i] < 0x7f);
    }
}


static void
ngx_oauth_fuzz_text(const ngx_oauth_str_t *s)
{
    if (s->data == NULL) {
        ngx_oauth_fuzz_assert(s->len == 0);
        return;
    }

    ngx_oauth_fuzz_assert(s->data[s->len] == '\0');
    ngx_oauth_fuzz_assert(memchr(s->data, '\0', s->len) == NULL);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_oauth_token_t  t;

    memset(&t, 0xa5, sizeof(t));

    if (ngx_oauth_token_parse(data, size, &t) != NGX_OAUTH_OK) {
        return 0;
    }

    ngx_oauth_fuzz_assert(t.root != NULL);

    if (t.error.data != NULL) {
        /* an error answer (RFC 6749 5.2): its words are shown nowhere */
        ngx_oauth_fuzz_assert(t.error.len > 0);
        ngx_oauth_fuzz_text(&t.error);
        ngx_oauth_fuzz_text(&t.error_description);
        ngx_oauth_token_free(&t);
        return 0;
    }

    ngx_oauth_fuzz_credential(&t.access_token, 1);
    ngx_oauth_fuzz_credential(&t.refresh_token, 0);
    ngx_oauth_fuzz_credential(&t.id_token, 0);
    ngx_oauth_fuzz_credential(&t.token_type, 0);
    ngx_oauth_fuzz_text(&t.scope);

    ngx_oauth_fuzz_assert(t.expires_in == -1
                          || (t.expires_in >= 0
                              && t.expires_in <= NGX_OAUTH_EXPIRES_IN_MAX));

    ngx_oauth_token_free(&t);

    return 0;
}
