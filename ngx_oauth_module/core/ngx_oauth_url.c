/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "ngx_oauth_url.h"
#include "ngx_oauth_template.h"


#define NGX_OAUTH_RT_PATH      0x01    /* no space, even encoded */
#define NGX_OAUTH_RT_RELATIVE  0x02    /* "/" then not "/", no scheme */
#define NGX_OAUTH_RT_LEVELS    4

/* ngx_oauth_url_unescape(): a NUL byte, raw or "%00", is an error */
#define NGX_OAUTH_URL_NO_NUL   0x100

/* ngx_oauth_query_next() */
#define NGX_OAUTH_QUERY_END    0
#define NGX_OAUTH_QUERY_PARAM  1
#define NGX_OAUTH_QUERY_EMPTY  2       /* between "&&" */

#define ngx_oauth_url_is_alpha(c)                                            \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define ngx_oauth_url_is_digit(c)  ((c) >= '0' && (c) <= '9')
#define ngx_oauth_url_is_alnum(c)                                            \
    (ngx_oauth_url_is_alpha(c) || ngx_oauth_url_is_digit(c))
#define ngx_oauth_url_is_ctl(c)    ((c) < 0x20 || (c) == 0x7f)
#define ngx_oauth_url_lower(c)                                               \
    (((c) >= 'A' && (c) <= 'Z') ? ((c) | 0x20) : (c))


/*
 * What may not stand raw in a URL, and what to say: NULL for a class the
 * caller lets through
 */
typedef struct {
    const char      *ctl;           /* a control character or a space */
    const char      *non_ascii;
    const char      *backslash;
    const char      *quote;         /* '"', '<', '>' or '`' */
} ngx_oauth_url_raw_t;


typedef struct {
    ngx_oauth_str_t  scheme;
    ngx_oauth_str_t  host;      /* with the brackets of an IP-literal */
    ngx_oauth_str_t  rest;      /* path, query and fragment */
    unsigned         port;      /* 0 when absent */
    unsigned         ip_literal:1;
} ngx_oauth_url_parts_t;


static int ngx_oauth_url_hex(unsigned char c);
static int ngx_oauth_url_unescape(const unsigned char *src, size_t len,
    unsigned flags, unsigned char *dst, size_t *dst_len);
static int ngx_oauth_url_name_equal(const unsigned char *raw, size_t len,
    const unsigned char *name, size_t name_len);
static int ngx_oauth_url_unescape_char(const unsigned char *src, size_t len,
    size_t *i, unsigned flags);
static int ngx_oauth_query_next(const unsigned char **pos,
    const unsigned char *end, ngx_oauth_str_t *name, ngx_oauth_str_t *value);
static int ngx_oauth_url_split(const unsigned char *url, size_t len,
    unsigned flags, ngx_oauth_url_parts_t *u, const char **reason);
static int ngx_oauth_url_check_raw(const unsigned char *url, size_t len,
    const ngx_oauth_url_raw_t *raw, const char **reason);
static const char *ngx_oauth_url_raw_reason(unsigned char c,
    const ngx_oauth_url_raw_t *raw);
static int ngx_oauth_url_split_host(const unsigned char *auth,
    const unsigned char *aend, unsigned flags, ngx_oauth_url_parts_t *u,
    const unsigned char **colon, const char **reason);
static int ngx_oauth_url_split_port(const unsigned char *colon,
    const unsigned char *aend, unsigned *port, const char **reason);
static int ngx_oauth_url_check_host(const ngx_oauth_str_t *host,
    unsigned flags, const char **reason);
static int ngx_oauth_url_scheme_is(const ngx_oauth_str_t *scheme,
    const char *name);
static int ngx_oauth_url_make_origin(const ngx_oauth_url_parts_t *u,
    char *origin, size_t *origin_len, const char **reason);
static int ngx_oauth_return_to_allowed(const ngx_oauth_url_parts_t *u,
    const ngx_oauth_str_t *origins, size_t norigins, const char **reason);
static int ngx_oauth_return_to_rest(const unsigned char *p, size_t len,
    unsigned how, const char **reason);
static int ngx_oauth_return_to_levels(const unsigned char *p, size_t len,
    unsigned how, const char **reason);
static int ngx_oauth_return_to_check_level(const unsigned char *p,
    size_t len, unsigned how, const char **reason);


static const ngx_oauth_url_raw_t  ngx_oauth_url_raw_endpoint = {
    "control character or space in URL",
    "non-ASCII character in URL",
    "backslash in URL",
    "invalid character in URL"
};


static const ngx_oauth_url_raw_t  ngx_oauth_url_raw_origin = {
    "control, space, backslash or non-ASCII character",
    "control, space, backslash or non-ASCII character",
    "control, space, backslash or non-ASCII character",
    NULL
};


/*
 * Browsers drop tabs and newlines inside URLs and read "\" as "/",
 * which turns "/\evil" or "/\t/evil" into "//evil": none of them may
 * appear, and neither may what cannot stand raw in a Location header.
 */

static const ngx_oauth_url_raw_t  ngx_oauth_url_raw_return_to = {
    "control character or space in return_to",
    "non-ASCII character in return_to",
    "backslash in return_to",
    "invalid character in return_to"
};


int
ngx_oauth_url_decode(const unsigned char *src, size_t len, unsigned flags,
    unsigned char *dst, size_t *dst_len)
{
    /* a NUL would cut the value short wherever it is used as a C string */

    return ngx_oauth_url_unescape(src, len, flags | NGX_OAUTH_URL_NO_NUL,
                                  dst, dst_len);
}


int
ngx_oauth_query_get(const unsigned char *query, size_t len,
    const unsigned char *name, size_t name_len, unsigned char *dst,
    size_t size, ngx_oauth_str_t *value, size_t *count)
{
    int                   rc;
    size_t                n, dlen;
    ngx_oauth_str_t       pn, pv, first;
    const unsigned char  *p, *end;

    n = 0;
    first.len = 0;
    first.data = NULL;

    value->len = 0;
    value->data = dst;

    if (size) {
        dst[0] = '\0';
    }

    /* nginx leaves r->args.data NULL when there is no query */

    if (len == 0) {
        *count = 0;
        return NGX_OAUTH_NOT_FOUND;
    }

    /* every occurrence is counted: a duplicate must not go unnoticed */

    p = query;
    end = query + len;

    while (ngx_oauth_query_next(&p, end, &pn, &pv) != NGX_OAUTH_QUERY_END) {
        if (ngx_oauth_url_name_equal(pn.data, pn.len, name, name_len)) {
            if (n == 0) {
                first = pv;
            }

            n++;
        }
    }

    *count = n;

    if (n == 0) {
        return NGX_OAUTH_NOT_FOUND;
    }

    /* measured before it is written: size is also the caller's cap */

    rc = ngx_oauth_url_unescape(first.data, first.len,
                                NGX_OAUTH_URL_FORM|NGX_OAUTH_URL_NO_NUL,
                                NULL, &dlen);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    if (dlen >= size) {
        return NGX_OAUTH_TOO_LARGE;
    }

    (void) ngx_oauth_url_unescape(first.data, first.len, NGX_OAUTH_URL_FORM,
                                  dst, &dlen);

    dst[dlen] = '\0';
    value->len = dlen;

    return NGX_OAUTH_OK;
}


int
ngx_oauth_query_foreach(const unsigned char *query, size_t len,
    ngx_oauth_query_handler_pt handler, void *data)
{
    int                   rc;
    unsigned char        *scratch;
    ngx_oauth_str_t       pn, pv, name, value;
    const unsigned char  *p, *end;

    if (len == 0) {
        return NGX_OAUTH_OK;
    }

    /* all first: no handler runs when any parameter is malformed */

    p = query;
    end = query + len;

    while (ngx_oauth_query_next(&p, end, &pn, &pv) != NGX_OAUTH_QUERY_END) {
        if (ngx_oauth_url_unescape(pn.data, pn.len, NGX_OAUTH_URL_NO_NUL,
                                   NULL, NULL)
            != NGX_OAUTH_OK
            || ngx_oauth_url_unescape(pv.data, pv.len, NGX_OAUTH_URL_NO_NUL,
                                      NULL, NULL)
               != NGX_OAUTH_OK)
        {
            return NGX_OAUTH_INVALID;
        }
    }

    /* names and values are decoded into one scratch, each NUL-terminated */

    scratch = malloc(len + 2);
    if (scratch == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    rc = NGX_OAUTH_OK;
    p = query;

    for ( ;; ) {
        rc = ngx_oauth_query_next(&p, end, &pn, &pv);

        if (rc == NGX_OAUTH_QUERY_END) {
            rc = NGX_OAUTH_OK;
            break;
        }

        if (rc == NGX_OAUTH_QUERY_EMPTY) {
            continue;
        }

        name.data = scratch;
        rc = ngx_oauth_url_decode(pn.data, pn.len, NGX_OAUTH_URL_FORM,
                                  name.data, &name.len);
        if (rc != NGX_OAUTH_OK) {
            goto exit;
        }

        name.data[name.len] = '\0';

        value.data = name.data + name.len + 1;
        rc = ngx_oauth_url_decode(pv.data, pv.len, NGX_OAUTH_URL_FORM,
                                  value.data, &value.len);
        if (rc != NGX_OAUTH_OK) {
            goto exit;
        }

        value.data[value.len] = '\0';

        rc = handler(data, &name, &value);
        if (rc != NGX_OAUTH_OK) {
            goto exit;
        }
    }

exit:

    OPENSSL_cleanse(scratch, len + 2);
    free(scratch);

    return rc;
}


int
ngx_oauth_url_expand(ngx_oauth_buf_t *out, const unsigned char *tpl,
    size_t len, const ngx_oauth_pair_t *vars, size_t nvars,
    ngx_oauth_str_t *missing)
{
    return ngx_oauth_template_expand(out, tpl, len, vars, nvars,
                                     NGX_OAUTH_TPL_URL, missing);
}


int
ngx_oauth_url_append_params(ngx_oauth_buf_t *out, const unsigned char *url,
    size_t len, const ngx_oauth_pair_t *params, size_t n)
{
    size_t                i, base;
    const unsigned char  *hash, *q;

    hash = len ? memchr(url, '#', len) : NULL;
    base = hash ? (size_t) (hash - url) : len;

    (void) ngx_oauth_buf_add(out, url, base);

    if (n) {
        q = base ? memchr(url, '?', base) : NULL;

        if (q == NULL) {
            (void) ngx_oauth_buf_add_byte(out, '?');

        } else if (url[base - 1] != '&' && q != url + base - 1) {
            (void) ngx_oauth_buf_add_byte(out, '&');
        }
    }

    for (i = 0; i < n; i++) {
        if (i) {
            (void) ngx_oauth_buf_add_byte(out, '&');
        }

        (void) ngx_oauth_buf_add_form_escaped(out, params[i].name.data,
                                              params[i].name.len);
        (void) ngx_oauth_buf_add_byte(out, '=');
        (void) ngx_oauth_buf_add_form_escaped(out, params[i].value.data,
                                              params[i].value.len);
    }

    if (hash != NULL) {
        (void) ngx_oauth_buf_add(out, hash, len - base);
    }

    return out->failed ? NGX_OAUTH_NOMEM : NGX_OAUTH_OK;
}


int
ngx_oauth_url_check_endpoint(const unsigned char *url, size_t len,
    unsigned flags, const char **reason)
{
    int                    rc;
    size_t                 i;
    const char            *r;
    unsigned char          c;
    ngx_oauth_url_parts_t  u;

    if (len == 0) {
        *reason = "empty URL";
        return NGX_OAUTH_INVALID;
    }

    if (len > NGX_OAUTH_URL_MAX) {
        *reason = "URL too long";
        return NGX_OAUTH_INVALID;
    }

    for (i = 0; i < len; i++) {
        c = url[i];

        r = ngx_oauth_url_raw_reason(c, &ngx_oauth_url_raw_endpoint);

        if (r != NULL) {
            *reason = r;
            return NGX_OAUTH_INVALID;
        }

        switch (c) {

        case '#':
            *reason = "fragment in URL";
            return NGX_OAUTH_INVALID;

        case '^':
        case '|':
            *reason = "invalid character in URL";
            return NGX_OAUTH_INVALID;

        case '{':
        case '}':
            if (!(flags & NGX_OAUTH_URL_TEMPLATE)) {
                *reason = "invalid character in URL";
                return NGX_OAUTH_INVALID;
            }

            break;

        case '%':
            if (i + 2 >= len
                || ngx_oauth_url_hex(url[i + 1]) < 0
                || ngx_oauth_url_hex(url[i + 2]) < 0)
            {
                *reason = "malformed percent-encoding in URL";
                return NGX_OAUTH_INVALID;
            }

            break;

        default:
            break;
        }
    }

    rc = ngx_oauth_url_split(url, len, flags, &u, reason);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    return ngx_oauth_url_check_transport(u.scheme.data, u.scheme.len,
                                         u.host.data, u.host.len, reason);
}


int
ngx_oauth_url_origin(const unsigned char *url, size_t len, char *origin,
    size_t *origin_len, const char **reason)
{
    int                    rc;
    ngx_oauth_url_parts_t  u;

    if (len > NGX_OAUTH_URL_MAX) {
        *reason = "URL too long";
        return NGX_OAUTH_INVALID;
    }

    rc = ngx_oauth_url_check_raw(url, len, &ngx_oauth_url_raw_origin,
                                 reason);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    rc = ngx_oauth_url_split(url, len, 0, &u, reason);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    return ngx_oauth_url_make_origin(&u, origin, origin_len, reason);
}


int
ngx_oauth_return_to_check(const unsigned char *url, size_t len,
    const ngx_oauth_str_t *origins, size_t norigins, const char **reason)
{
    int                    rc;
    ngx_oauth_url_parts_t  u;

    if (len == 0) {
        *reason = "empty return_to";
        return NGX_OAUTH_INVALID;
    }

    if (len > NGX_OAUTH_RETURN_TO_MAX) {
        *reason = "return_to too long";
        return NGX_OAUTH_INVALID;
    }

    rc = ngx_oauth_url_check_raw(url, len, &ngx_oauth_url_raw_return_to,
                                 reason);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    if (url[0] == '/') {
        return ngx_oauth_return_to_rest(url, len,
                                        NGX_OAUTH_RT_PATH
                                        |NGX_OAUTH_RT_RELATIVE,
                                        reason);
    }

    /* an absolute URL: no "//host" shortcut, a scheme and an allowed origin */

    rc = ngx_oauth_url_split(url, len, 0, &u, reason);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    rc = ngx_oauth_return_to_allowed(&u, origins, norigins, reason);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    return ngx_oauth_return_to_rest(u.rest.data, u.rest.len,
                                    NGX_OAUTH_RT_PATH, reason);
}


static int
ngx_oauth_return_to_allowed(const ngx_oauth_url_parts_t *u,
    const ngx_oauth_str_t *origins, size_t norigins, const char **reason)
{
    int          rc;
    char         origin[NGX_OAUTH_ORIGIN_MAX];
    char         allowed[NGX_OAUTH_ORIGIN_MAX];
    size_t       i, olen, alen;
    const char  *r;

    rc = ngx_oauth_url_make_origin(u, origin, &olen, reason);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    for (i = 0; i < norigins; i++) {
        if (ngx_oauth_url_origin(origins[i].data, origins[i].len, allowed,
                                 &alen, &r)
            != NGX_OAUTH_OK)
        {
            continue;
        }

        if (alen == olen && memcmp(allowed, origin, olen) == 0) {
            return NGX_OAUTH_OK;
        }
    }

    *reason = "return_to origin not allowed";

    return NGX_OAUTH_INVALID;
}


/* the path (checked as how says), then the query and fragment */

static int
ngx_oauth_return_to_rest(const unsigned char *p, size_t len, unsigned how,
    const char **reason)
{
    int     rc;
    size_t  plen;

    for (plen = 0; plen < len; plen++) {
        if (p[plen] == '?' || p[plen] == '#') {
            break;
        }
    }

    rc = ngx_oauth_return_to_levels(p, plen, how, reason);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    return ngx_oauth_return_to_levels(p + plen, len - plen, 0, reason);
}


static int
ngx_oauth_url_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * Decodes, or with dst NULL only validates.  Unlike the public decoder it
 * lets a NUL through: the return_to checks want to see and refuse it.
 */

static int
ngx_oauth_url_unescape(const unsigned char *src, size_t len, unsigned flags,
    unsigned char *dst, size_t *dst_len)
{
    int     c;
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; /* void */) {
        c = ngx_oauth_url_unescape_char(src, len, &i, flags);

        if (c < 0 || (c == '\0' && (flags & NGX_OAUTH_URL_NO_NUL))) {
            return NGX_OAUTH_INVALID;
        }

        if (dst != NULL) {
            dst[n] = (unsigned char) c;
        }

        n++;
    }

    if (dst_len != NULL) {
        *dst_len = n;
    }

    return NGX_OAUTH_OK;
}


/*
 * The byte at src[*i], decoded ("%XX", and "+" with NGX_OAUTH_URL_FORM),
 * and *i moved past it; -1 for a malformed escape.
 */

static int
ngx_oauth_url_unescape_char(const unsigned char *src, size_t len, size_t *i,
    unsigned flags)
{
    int            hi, lo;
    unsigned char  c;

    c = src[*i];

    if (c == '%') {
        if (len < 3 || *i > len - 3) {
            return -1;
        }

        hi = ngx_oauth_url_hex(src[*i + 1]);
        lo = ngx_oauth_url_hex(src[*i + 2]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        *i += 3;

        return hi << 4 | lo;
    }

    *i += 1;

    return (c == '+' && (flags & NGX_OAUTH_URL_FORM)) ? ' ' : c;
}


/* compares a raw (form-encoded) parameter name with a decoded one */

static int
ngx_oauth_url_name_equal(const unsigned char *raw, size_t len,
    const unsigned char *name, size_t name_len)
{
    int     c;
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; /* void */) {
        c = ngx_oauth_url_unescape_char(raw, len, &i, NGX_OAUTH_URL_FORM);

        if (c < 0 || n == name_len || name[n] != c) {
            return 0;
        }

        n++;
    }

    return n == name_len;
}


/*
 * The next "&"-separated parameter at *pos, split at its first "=" (no
 * "=": an empty value), and *pos moved past it.
 */

static int
ngx_oauth_query_next(const unsigned char **pos, const unsigned char *end,
    ngx_oauth_str_t *name, ngx_oauth_str_t *value)
{
    const unsigned char  *p, *eq, *amp;

    p = *pos;

    if (p >= end) {
        return NGX_OAUTH_QUERY_END;
    }

    amp = memchr(p, '&', end - p);
    if (amp == NULL) {
        amp = end;
    }

    *pos = (amp < end) ? amp + 1 : end;

    eq = memchr(p, '=', amp - p);

    name->data = (unsigned char *) p;

    if (eq == NULL) {
        name->len = amp - p;
        value->data = (unsigned char *) amp;
        value->len = 0;

    } else {
        name->len = eq - p;
        value->data = (unsigned char *) eq + 1;
        value->len = amp - eq - 1;
    }

    return (amp == p) ? NGX_OAUTH_QUERY_EMPTY : NGX_OAUTH_QUERY_PARAM;
}


/*
 * scheme "://" authority rest.  The authority ends at the first "/", "?"
 * or "#", as in a browser (a "\" never gets this far).
 */

static int
ngx_oauth_url_split(const unsigned char *url, size_t len, unsigned flags,
    ngx_oauth_url_parts_t *u, const char **reason)
{
    int                   rc;
    unsigned char         c;
    const unsigned char  *p, *end, *auth, *aend, *colon;

    if (len == 0 || !ngx_oauth_url_is_alpha(url[0])) {
        *reason = "not a relative path or an absolute URL";
        return NGX_OAUTH_INVALID;
    }

    end = url + len;

    for (p = url + 1; p < end; p++) {
        c = *p;

        if (!ngx_oauth_url_is_alnum(c) && c != '+' && c != '-' && c != '.') {
            break;
        }
    }

    if (p == end || *p != ':') {
        *reason = "not a relative path or an absolute URL";
        return NGX_OAUTH_INVALID;
    }

    u->scheme.data = (unsigned char *) url;
    u->scheme.len = p - url;

    if (end - p < 3 || p[1] != '/' || p[2] != '/') {
        *reason = "no \"//\" after the scheme";
        return NGX_OAUTH_INVALID;
    }

    auth = p + 3;

    for (aend = auth; aend < end; aend++) {
        if (*aend == '/' || *aend == '?' || *aend == '#') {
            break;
        }
    }

    u->rest.data = (unsigned char *) aend;
    u->rest.len = end - aend;
    u->port = 0;
    u->ip_literal = 0;

    if (memchr(auth, '@', aend - auth) != NULL) {
        *reason = "userinfo in URL";
        return NGX_OAUTH_INVALID;
    }

    if (auth == aend) {
        *reason = "no host in URL";
        return NGX_OAUTH_INVALID;
    }

    rc = ngx_oauth_url_split_host(auth, aend, flags, u, &colon, reason);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    if (colon == NULL || colon == aend) {
        return NGX_OAUTH_OK;
    }

    return ngx_oauth_url_split_port(colon, aend, &u->port, reason);
}


/*
 * The host of the authority auth..aend: a name or an IP-literal in
 * brackets; *colon is where a port would start (NULL or aend: none).
 */

static int
ngx_oauth_url_split_host(const unsigned char *auth,
    const unsigned char *aend, unsigned flags, ngx_oauth_url_parts_t *u,
    const unsigned char **colon, const char **reason)
{
    size_t                i, hlen;
    unsigned char         c;
    const unsigned char  *p;

    if (*auth != '[') {
        *colon = memchr(auth, ':', aend - auth);
        hlen = (*colon ? *colon : aend) - auth;

        u->host.data = (unsigned char *) auth;
        u->host.len = hlen;

        if (ngx_oauth_url_check_host(&u->host, flags, reason)
            != NGX_OAUTH_OK)
        {
            return NGX_OAUTH_INVALID;
        }

        return NGX_OAUTH_OK;
    }

    p = memchr(auth, ']', aend - auth);
    if (p == NULL) {
        *reason = "unterminated IP-literal host";
        return NGX_OAUTH_INVALID;
    }

    hlen = p + 1 - auth;

    for (i = 1; i < hlen - 1; i++) {
        c = auth[i];

        if (ngx_oauth_url_hex(c) < 0 && c != ':' && c != '.') {
            *reason = "invalid IP-literal host";
            return NGX_OAUTH_INVALID;
        }
    }

    *colon = auth + hlen;

    if (hlen < 4 || memchr(auth, ':', hlen) == NULL
        || (*colon != aend && **colon != ':'))
    {
        *reason = "invalid IP-literal host";
        return NGX_OAUTH_INVALID;
    }

    u->ip_literal = 1;
    u->host.data = (unsigned char *) auth;
    u->host.len = hlen;

    return NGX_OAUTH_OK;
}


/* a port: 1 to 5 digits, 1..65535; "host:" is refused, not defaulted */

static int
ngx_oauth_url_split_port(const unsigned char *colon,
    const unsigned char *aend, unsigned *port, const char **reason)
{
    unsigned              n;
    const unsigned char  *p;

    n = 0;

    for (p = colon + 1; p < aend; p++) {
        if (!ngx_oauth_url_is_digit(*p) || p - colon > 5) {
            *reason = "invalid port in URL";
            return NGX_OAUTH_INVALID;
        }

        n = n * 10 + (*p - '0');
    }

    if (p == colon + 1 || n == 0 || n > 65535) {
        *reason = "invalid port in URL";
        return NGX_OAUTH_INVALID;
    }

    *port = n;

    return NGX_OAUTH_OK;
}


/* the first byte that may not stand raw in url, as raw says */

static int
ngx_oauth_url_check_raw(const unsigned char *url, size_t len,
    const ngx_oauth_url_raw_t *raw, const char **reason)
{
    size_t       i;
    const char  *r;

    for (i = 0; i < len; i++) {
        r = ngx_oauth_url_raw_reason(url[i], raw);

        if (r != NULL) {
            *reason = r;
            return NGX_OAUTH_INVALID;
        }
    }

    return NGX_OAUTH_OK;
}


/* why c may not stand raw in a URL, as raw says; NULL if it may */

static const char *
ngx_oauth_url_raw_reason(unsigned char c, const ngx_oauth_url_raw_t *raw)
{
    if (ngx_oauth_url_is_ctl(c) || c == ' ') {
        return raw->ctl;
    }

    if (c >= 0x80) {
        return raw->non_ascii;
    }

    if (c == '\\') {
        return raw->backslash;
    }

    if (c == '"' || c == '<' || c == '>' || c == '`') {
        return raw->quote;
    }

    return NULL;
}


static int
ngx_oauth_url_check_host(const ngx_oauth_str_t *host, unsigned flags,
    const char **reason)
{
    size_t         i;
    unsigned char  c, prev;

    if (host->len == 0) {
        *reason = "no host in URL";
        return NGX_OAUTH_INVALID;
    }

    if (host->len > 253) {
        *reason = "host name too long";
        return NGX_OAUTH_INVALID;
    }

    prev = '.';

    for (i = 0; i < host->len; i++) {
        c = host->data[i];

        if (c == '%') {
            *reason = "percent-encoded host";
            return NGX_OAUTH_INVALID;
        }

        if (c == '.' && prev == '.') {
            *reason = "empty label in host";
            return NGX_OAUTH_INVALID;
        }

        if (!ngx_oauth_url_is_alnum(c) && c != '-' && c != '.' && c != '_'
            && !((flags & NGX_OAUTH_URL_TEMPLATE) && (c == '{' || c == '}')))
        {
            *reason = "invalid character in host";
            return NGX_OAUTH_INVALID;
        }

        prev = c;
    }

    return NGX_OAUTH_OK;
}


/*
 * 127.0.0.0/8 only in plain dotted decimal: "127.1" or "0x7f.1" are not
 * (libcurl hands them on normalized to dotted quads anyway); IPv6 only as
 * "[::1]", the one spelling libcurl normalizes to.
 */

int
ngx_oauth_url_is_loopback(const unsigned char *host, size_t len)
{
    size_t                i, digits, dots;
    unsigned              octet;
    unsigned char         c;
    const unsigned char  *p;

    p = host;

    if (len == 9 && strncasecmp((const char *) p, "localhost", 9) == 0) {
        return 1;
    }

    if (len == 5 && memcmp(p, "[::1]", 5) == 0) {
        return 1;
    }

    if (len < 7 || memcmp(p, "127.", 4) != 0) {
        return 0;
    }

    dots = 0;
    digits = 0;
    octet = 0;

    for (i = 0; i <= len; i++) {
        c = (i < len) ? p[i] : '.';

        if (c == '.') {
            if (digits == 0 || octet > 255) {
                return 0;
            }

            dots++;
            digits = 0;
            octet = 0;
            continue;
        }

        if (!ngx_oauth_url_is_digit(c) || digits == 3
            || (digits == 1 && octet == 0))
        {
            return 0;
        }

        octet = octet * 10 + (c - '0');
        digits++;
    }

    return dots == 4;
}


int
ngx_oauth_url_check_transport(const unsigned char *scheme, size_t slen,
    const unsigned char *host, size_t hlen, const char **reason)
{
    ngx_oauth_str_t  s;

    s.len = slen;
    s.data = (unsigned char *) scheme;

    if (ngx_oauth_url_scheme_is(&s, "https")) {
        return NGX_OAUTH_OK;
    }

    if (ngx_oauth_url_scheme_is(&s, "http")) {
        if (ngx_oauth_url_is_loopback(host, hlen)) {
            return NGX_OAUTH_OK;
        }

        *reason = "http:// is only allowed with a loopback host";
        return NGX_OAUTH_INVALID;
    }

    *reason = "scheme is not https";
    return NGX_OAUTH_INVALID;
}


static int
ngx_oauth_url_scheme_is(const ngx_oauth_str_t *scheme, const char *name)
{
    size_t  n;

    n = strlen(name);

    return scheme->len == n
           && strncasecmp((const char *) scheme->data, name, n) == 0;
}


static int
ngx_oauth_url_make_origin(const ngx_oauth_url_parts_t *u, char *origin,
    size_t *origin_len, const char **reason)
{
    int        https;
    char      *d;
    size_t     i;
    unsigned   port;

    if (ngx_oauth_url_scheme_is(&u->scheme, "https")) {
        https = 1;

    } else if (ngx_oauth_url_scheme_is(&u->scheme, "http")) {
        https = 0;

    } else {
        *reason = "scheme is neither https nor http";
        return NGX_OAUTH_INVALID;
    }

    if (u->ip_literal) {
        *reason = "IP-literal host";
        return NGX_OAUTH_INVALID;
    }

    /* the host is at most 253 bytes: the origin always fits */

    d = origin;

    if (https) {
        memcpy(d, "https://", 8);
        d += 8;

    } else {
        memcpy(d, "http://", 7);
        d += 7;
    }

    for (i = 0; i < u->host.len; i++) {
        *d++ = (char) ngx_oauth_url_lower(u->host.data[i]);
    }

    port = u->port;

    if (port != 0 && port != (https ? 443u : 80u)) {
        d += snprintf(d, 7, ":%u", port);
    }

    *d = '\0';
    *origin_len = d - origin;

    return NGX_OAUTH_OK;
}


/*
 * Checks a part of return_to as it is and then as a server or a browser
 * might see it after decoding it once more, up to NGX_OAUTH_RT_LEVELS
 * times ("/%252f%252fevil" is "//evil" two decodings away).
 */

static int
ngx_oauth_return_to_levels(const unsigned char *p, size_t len, unsigned how,
    const char **reason)
{
    int            rc, level;
    size_t         n;
    unsigned char  buf[NGX_OAUTH_RETURN_TO_MAX];

    if (len > sizeof(buf)) {
        *reason = "return_to too long";
        return NGX_OAUTH_INVALID;
    }

    memcpy(buf, p, len);
    n = len;

    for (level = 0; /* void */; level++) {
        rc = ngx_oauth_return_to_check_level(buf, n, how, reason);
        if (rc != NGX_OAUTH_OK) {
            return rc;
        }

        if (memchr(buf, '%', n) == NULL) {
            return NGX_OAUTH_OK;
        }

        if (level == NGX_OAUTH_RT_LEVELS) {
            *reason = "too many levels of percent-encoding in return_to";
            return NGX_OAUTH_INVALID;
        }

        if (ngx_oauth_url_unescape(buf, n, 0, buf, &n) != NGX_OAUTH_OK) {
            if (level == 0) {
                *reason = "malformed percent-encoding in return_to";
                return NGX_OAUTH_INVALID;
            }

            /* deeper down a "%" is a literal character ("/100%25") */
            return NGX_OAUTH_OK;
        }
    }
}


static int
ngx_oauth_return_to_check_level(const unsigned char *p, size_t len,
    unsigned how, const char **reason)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (ngx_oauth_url_is_ctl(c)) {
            *reason = "encoded control character in return_to";
            return NGX_OAUTH_INVALID;
        }

        if (c == '\\') {
            *reason = "encoded backslash in return_to";
            return NGX_OAUTH_INVALID;
        }

        /*
         * A space cannot move the origin once past the path, and
         * "?q=a%20b" is an ordinary return URL: spaces are refused in
         * the path only.
         */

        if (c == ' ' && (how & NGX_OAUTH_RT_PATH)) {
            *reason = "encoded space in return_to path";
            return NGX_OAUTH_INVALID;
        }
    }

    if (!(how & NGX_OAUTH_RT_RELATIVE)) {
        return NGX_OAUTH_OK;
    }

    if (len == 0 || p[0] != '/') {
        *reason = "return_to is not a path";
        return NGX_OAUTH_INVALID;
    }

    /*
     * Leading "." and ".." segments go away when the path is resolved:
     * "/.//evil" becomes "//evil", so they are looked through.
     */

    for (i = 0; /* void */; /* void */) {
        if (len - i >= 3 && p[i + 1] == '.' && p[i + 2] == '/') {
            i += 2;

        } else if (len - i >= 4 && p[i + 1] == '.' && p[i + 2] == '.'
                   && p[i + 3] == '/')
        {
            i += 3;

        } else {
            break;
        }
    }

    p += i;
    len -= i;

    if (len > 1 && p[1] == '/') {
        *reason = "return_to starts with \"//\"";
        return NGX_OAUTH_INVALID;
    }

    /* look-alike separators and spaces ("/%E3%80%B1", "/%C2%A0") */

    if (len > 1 && p[1] >= 0x80) {
        *reason = "non-ASCII character at the start of return_to";
        return NGX_OAUTH_INVALID;
    }

    /* "/https:..." or "/javascript:...": nothing a path needs, refused */

    for (i = 1; i < len && p[i] != '/'; i++) {
        if (p[i] == ':') {
            *reason = "scheme-like first segment in return_to";
            return NGX_OAUTH_INVALID;
        }
    }

    return NGX_OAUTH_OK;
}
