
/*
 * Copyright (C) ngx_oauth_module authors
 */


#include "ngx_oauth_core.h"


/*
 * The messages are short, lowercase and fixed: they go into logs and API
 * error bodies, so they must never carry data from the request or the store.
 */

const char *
ngx_oauth_strerror(int rc)
{
    switch (rc) {

    case NGX_OAUTH_OK:
        return "ok";

    case NGX_OAUTH_ERROR:
        return "internal error";

    case NGX_OAUTH_NOT_FOUND:
        return "not found";

    case NGX_OAUTH_INVALID:
        return "invalid input";

    case NGX_OAUTH_DENIED:
        return "authentication failed";

    case NGX_OAUTH_UNKNOWN_KEY:
        return "unknown key id";

    case NGX_OAUTH_FULL:
        return "store is full";

    case NGX_OAUTH_BUSY:
        return "busy";

    case NGX_OAUTH_CONFLICT:
        return "conflict";

    case NGX_OAUTH_NOMEM:
        return "out of memory";

    case NGX_OAUTH_TOO_LARGE:
        return "too large";

    case NGX_OAUTH_UNSUPPORTED:
        return "unsupported";

    default:
        return "unknown error";
    }
}
