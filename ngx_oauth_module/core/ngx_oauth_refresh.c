/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <string.h>

#include "ngx_oauth_refresh.h"


static ngx_oauth_answer_e ngx_oauth_refresh_verdict(
    ngx_oauth_answer_t *answer, ngx_oauth_answer_e verdict,
    const char *error);
static const char *ngx_oauth_refresh_refusal(const ngx_oauth_str_t *error);


/*
 * The RFC 6749 section 5.2 codes: the provider says this grant, or this
 * client, will not do; the user has to connect again.
 */
static const char  *ngx_oauth_refresh_refusals[] = {
    "invalid_grant",
    "invalid_request",
    "invalid_client",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope"
};


ngx_oauth_answer_e
ngx_oauth_refresh_classify(unsigned status, const unsigned char *body,
    size_t len, const ngx_oauth_str_t *types, size_t ntypes,
    ngx_oauth_token_t *token, ngx_oauth_answer_t *answer)
{
    const char  *code;

    memset(token, 0, sizeof(ngx_oauth_token_t));

    answer->down = (status == 0 || status >= 500 || status == 429);

    if (answer->down) {
        return ngx_oauth_refresh_verdict(answer, NGX_OAUTH_ANSWER_RETRY,
                                         "provider_unavailable");
    }

    /*
     * Not an OAuth answer (an HTML page from a firewall, a 404 from a
     * wrong URL): nothing says the grant is gone, so it is tried again.
     */

    if (ngx_oauth_token_parse(body, len, token) != NGX_OAUTH_OK) {
        memset(token, 0, sizeof(ngx_oauth_token_t));
        return ngx_oauth_refresh_verdict(answer, NGX_OAUTH_ANSWER_RETRY,
                                         "invalid_response");
    }

    if (token->error.len) {
        code = ngx_oauth_refresh_refusal(&token->error);
        ngx_oauth_token_free(token);

        if (code == NULL) {
            /* an error RFC 6749 section 5.2 does not define: no refusal */
            return ngx_oauth_refresh_verdict(answer, NGX_OAUTH_ANSWER_RETRY,
                                             "provider_error");
        }

        return ngx_oauth_refresh_verdict(answer, NGX_OAUTH_ANSWER_FATAL,
                                         code);
    }

    if (status < 200 || status >= 300) {
        ngx_oauth_token_free(token);
        return ngx_oauth_refresh_verdict(answer, NGX_OAUTH_ANSWER_RETRY,
                                         "invalid_response");
    }

    /* tokens of a type the module cannot send: asking again won't do */

    if (ngx_oauth_token_type_check(token, types, ntypes) != NGX_OAUTH_OK) {
        ngx_oauth_token_free(token);
        return ngx_oauth_refresh_verdict(answer, NGX_OAUTH_ANSWER_FATAL,
                                         "unsupported_token_type");
    }

    return ngx_oauth_refresh_verdict(answer, NGX_OAUTH_ANSWER_OK, NULL);
}


static ngx_oauth_answer_e
ngx_oauth_refresh_verdict(ngx_oauth_answer_t *answer,
    ngx_oauth_answer_e verdict, const char *error)
{
    answer->verdict = verdict;
    answer->error = error;

    return verdict;
}


/* the static copy of a refusal code, so that no provider text goes on */

static const char *
ngx_oauth_refresh_refusal(const ngx_oauth_str_t *error)
{
    size_t  i;

    for (i = 0;
         i < sizeof(ngx_oauth_refresh_refusals) / sizeof(char *);
         i++)
    {
        if (error->len == strlen(ngx_oauth_refresh_refusals[i])
            && memcmp(error->data, ngx_oauth_refresh_refusals[i],
                      error->len)
               == 0)
        {
            return ngx_oauth_refresh_refusals[i];
        }
    }

    return NULL;
}
