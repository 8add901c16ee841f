/*
 * Copyright (C) ngx_oauth_module authors
 */


/*
 * Unit tests of core/ngx_oauth_refresh.c: what a token endpoint answer
 * means for the grant (RFC 6749 sections 5.1 and 5.2).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ngx_oauth_refresh.h"


typedef struct {
    unsigned             status;
    const char          *body;
    ngx_oauth_answer_e   verdict;
    const char          *error;
    unsigned             down;
} test_case_t;


static const test_case_t  test_cases[] = {

    /* 5.1: tokens */
    { 200, "{\"access_token\":\"at\",\"token_type\":\"Bearer\","
           "\"expires_in\":3600,\"refresh_token\":\"rt\"}",
      NGX_OAUTH_ANSWER_OK, NULL, 0 },
    { 201, "{\"access_token\":\"at\"}", NGX_OAUTH_ANSWER_OK, NULL, 0 },
    { 200, "{\"access_token\":\"at\",\"token_type\":\"BEARER\"}",
      NGX_OAUTH_ANSWER_OK, NULL, 0 },

    /* the provider's own name for a bearer token (the cases pass "bot") */
    { 200, "{\"access_token\":\"at\",\"token_type\":\"bot\"}",
      NGX_OAUTH_ANSWER_OK, NULL, 0 },

    /* tokens the module cannot send as bearer tokens */
    { 200, "{\"access_token\":\"at\",\"token_type\":\"mac\"}",
      NGX_OAUTH_ANSWER_FATAL, "unsupported_token_type", 0 },
    { 200, "{\"access_token\":\"at\",\"token_type\":\"DPoP\"}",
      NGX_OAUTH_ANSWER_FATAL, "unsupported_token_type", 0 },
    { 200, "{\"access_token\":\"at\",\"token_type\":\"bearerx\"}",
      NGX_OAUTH_ANSWER_FATAL, "unsupported_token_type", 0 },

    /* 5.2: every code is a refusal, whatever the status */
    { 400, "{\"error\":\"invalid_grant\"}",
      NGX_OAUTH_ANSWER_FATAL, "invalid_grant", 0 },
    { 401, "{\"error\":\"invalid_client\"}",
      NGX_OAUTH_ANSWER_FATAL, "invalid_client", 0 },
    { 400, "{\"error\":\"unauthorized_client\"}",
      NGX_OAUTH_ANSWER_FATAL, "unauthorized_client", 0 },
    { 400, "{\"error\":\"unsupported_grant_type\"}",
      NGX_OAUTH_ANSWER_FATAL, "unsupported_grant_type", 0 },
    { 400, "{\"error\":\"invalid_scope\",\"error_description\":\"x\"}",
      NGX_OAUTH_ANSWER_FATAL, "invalid_scope", 0 },
    { 400, "{\"error\":\"invalid_request\"}",
      NGX_OAUTH_ANSWER_FATAL, "invalid_request", 0 },
    { 200, "{\"ok\":false,\"error\":\"invalid_grant\"}",
      NGX_OAUTH_ANSWER_FATAL, "invalid_grant", 0 },

    /* not a 5.2 code, or a near miss: no verdict on the grant */
    { 400, "{\"error\":\"temporarily_unavailable\"}",
      NGX_OAUTH_ANSWER_RETRY, "provider_error", 0 },
    { 400, "{\"error\":\"invalid_grant \"}",
      NGX_OAUTH_ANSWER_RETRY, "provider_error", 0 },
    { 400, "{\"error\":\"INVALID_GRANT\"}",
      NGX_OAUTH_ANSWER_RETRY, "provider_error", 0 },
    { 200, "{\"error\":\"temporarily_unavailable\"}",
      NGX_OAUTH_ANSWER_RETRY, "provider_error", 0 },
    { 403, "{\"error\":\"access_denied\",\"access_token\":\"at\"}",
      NGX_OAUTH_ANSWER_RETRY, "provider_error", 0 },
    { 400, "{\"error\":\"invalid_gran\"}",
      NGX_OAUTH_ANSWER_RETRY, "provider_error", 0 },

    /* the provider is down, or says so */
    { 0, "", NGX_OAUTH_ANSWER_RETRY, "provider_unavailable", 1 },
    { 500, "{\"error\":\"invalid_grant\"}",
      NGX_OAUTH_ANSWER_RETRY, "provider_unavailable", 1 },
    { 502, "<html>bad gateway</html>",
      NGX_OAUTH_ANSWER_RETRY, "provider_unavailable", 1 },
    { 503, "", NGX_OAUTH_ANSWER_RETRY, "provider_unavailable", 1 },
    { 504, "{\"access_token\":\"at\"}",
      NGX_OAUTH_ANSWER_RETRY, "provider_unavailable", 1 },
    { 429, "{\"error\":\"slow_down\"}",
      NGX_OAUTH_ANSWER_RETRY, "provider_unavailable", 1 },

    /* not an OAuth answer */
    { 200, "<html><body>login</body></html>",
      NGX_OAUTH_ANSWER_RETRY, "invalid_response", 0 },
    { 200, "", NGX_OAUTH_ANSWER_RETRY, "invalid_response", 0 },
    { 200, "{}", NGX_OAUTH_ANSWER_RETRY, "invalid_response", 0 },
    { 200, "{\"access_token\":\"\"}",
      NGX_OAUTH_ANSWER_RETRY, "invalid_response", 0 },
    { 404, "not found", NGX_OAUTH_ANSWER_RETRY, "invalid_response", 0 },

    /* tokens, but with a status that does not say success */
    { 400, "{\"access_token\":\"at\"}",
      NGX_OAUTH_ANSWER_RETRY, "invalid_response", 0 },
    { 302, "{\"access_token\":\"at\"}",
      NGX_OAUTH_ANSWER_RETRY, "invalid_response", 0 },
    { 100, "{\"access_token\":\"at\"}",
      NGX_OAUTH_ANSWER_RETRY, "invalid_response", 0 }
};


static void
test_classify(void **state)
{
    size_t               i;
    ngx_oauth_token_t    token;
    ngx_oauth_answer_t   answer;
    ngx_oauth_answer_e   verdict;
    const test_case_t   *c;
    ngx_oauth_str_t      bot = ngx_oauth_string("bot");

    for (i = 0; i < sizeof(test_cases) / sizeof(test_cases[0]); i++) {
        c = &test_cases[i];

        memset(&answer, 0xff, sizeof(answer));

        verdict = ngx_oauth_refresh_classify(c->status,
                                             (const unsigned char *) c->body,
                                             strlen(c->body), &bot, 1,
                                             &token, &answer);

        if (verdict != c->verdict || answer.verdict != c->verdict
            || answer.down != c->down
            || (c->error == NULL) != (answer.error == NULL)
            || (c->error && strcmp(c->error, answer.error) != 0))
        {
            fail_msg("case %zu (HTTP %u %s): verdict %d error %s down %u",
                     i, c->status, c->body, (int) verdict,
                     answer.error ? answer.error : "(null)", answer.down);
        }

        if (verdict == NGX_OAUTH_ANSWER_OK) {
            assert_int_equal(token.access_token.len, 2);
            assert_memory_equal(token.access_token.data, "at", 2);
            ngx_oauth_token_free(&token);

        } else {
            /* nothing to free: the caller does not call token_free */
            assert_null(token.root);
            assert_int_equal(token.access_token.len, 0);
        }
    }
}


/* the code is a static copy: no byte of the answer goes on */

static void
test_static_code(void **state)
{
    char                 body[] = "{\"error\":\"invalid_grant\"}";
    ngx_oauth_token_t    token;
    ngx_oauth_answer_t   answer;

    assert_int_equal(ngx_oauth_refresh_classify(400, (unsigned char *) body,
                                                sizeof(body) - 1, NULL, 0,
                                                &token, &answer),
                     NGX_OAUTH_ANSWER_FATAL);

    assert_true(answer.error < body || answer.error >= body + sizeof(body));
    memset(body, 'x', sizeof(body) - 1);
    assert_string_equal(answer.error, "invalid_grant");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_static_code),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
