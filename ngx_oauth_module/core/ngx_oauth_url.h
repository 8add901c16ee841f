/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_URL_H_INCLUDED_
#define _NGX_OAUTH_URL_H_INCLUDED_


#include "ngx_oauth_core.h"
#include "ngx_oauth_buf.h"


#define NGX_OAUTH_RETURN_TO_MAX  4096
#define NGX_OAUTH_URL_MAX        8192

/* "https://" + a 253-char host + ":65535" + NUL, rounded up */
#define NGX_OAUTH_ORIGIN_MAX     288

/* ngx_oauth_url_decode(): "+" means a space (form values, query strings) */
#define NGX_OAUTH_URL_FORM       0x01

/* ngx_oauth_url_check_endpoint(): "{NAME}" placeholders may appear */
#define NGX_OAUTH_URL_TEMPLATE   0x02


/* a query parameter, decoded; return non-OK to stop the walk with that rc */
typedef int (*ngx_oauth_query_handler_pt)(void *data,
    const ngx_oauth_str_t *name, const ngx_oauth_str_t *value);


/*
 * Percent-decodes src into dst (dst may be src: decoding never grows; dst
 * needs len bytes).  NGX_OAUTH_INVALID for a "%" not followed by two hex
 * digits and for a NUL byte, raw or "%00".  With NGX_OAUTH_URL_FORM "+"
 * decodes to a space.
 */
int ngx_oauth_url_decode(const unsigned char *src, size_t len,
    unsigned flags, unsigned char *dst, size_t *dst_len);

/*
 * Looks parameter NAME up in a raw query string (no leading "?"; pairs
 * separated by "&"; names and values form-decoded before use).  *count
 * always gets the number of occurrences, so that callers refuse duplicated
 * security parameters (state, code, iss, shop).  The first occurrence is
 * decoded into dst, NUL-terminated, and value points at it.
 * Returns NGX_OAUTH_NOT_FOUND (count 0), NGX_OAUTH_INVALID (malformed
 * escape or NUL), NGX_OAUTH_TOO_LARGE (the value needs size bytes or more:
 * size doubles as the length cap), or NGX_OAUTH_OK.
 */
int ngx_oauth_query_get(const unsigned char *query, size_t len,
    const unsigned char *name, size_t name_len, unsigned char *dst,
    size_t size, ngx_oauth_str_t *value, size_t *count);

/*
 * Calls handler for every parameter in order, decoded (the strings live
 * until the handler returns).  Empty segments ("a=1&&b=2") are skipped, a
 * segment without "=" has an empty value.  NGX_OAUTH_INVALID when any
 * name or value is malformed, before any further handler call.
 */
int ngx_oauth_query_foreach(const unsigned char *query, size_t len,
    ngx_oauth_query_handler_pt handler, void *data);

/*
 * Expands "{NAME}" placeholders of a URL template into out, each value
 * url-escaped (RFC 3986).  NGX_OAUTH_NOT_FOUND for a name not in vars,
 * reported in *missing (which points into tpl); NGX_OAUTH_INVALID for an
 * unbalanced brace or a name outside [A-Za-z0-9_.-].  On any error out is
 * left as it was.  The result still needs ngx_oauth_url_check_endpoint().
 */
int ngx_oauth_url_expand(ngx_oauth_buf_t *out, const unsigned char *tpl,
    size_t len, const ngx_oauth_pair_t *vars, size_t nvars,
    ngx_oauth_str_t *missing);

/*
 * Copies url into out with params (form-escaped) added to its query: "?"
 * or "&" as needed, and before any "#fragment".
 */
int ngx_oauth_url_append_params(ngx_oauth_buf_t *out,
    const unsigned char *url, size_t len, const ngx_oauth_pair_t *params,
    size_t n);

/*
 * A URL the module will send requests (and maybe credentials) to:
 * "https://host[:port]/..." or "http://" with a loopback host (127.0.0.0/8
 * in dotted decimal, [::1], localhost).  Refused, with a static reason
 * string: another scheme, userinfo, a missing or percent-encoded host, a
 * bad port, a fragment, whitespace, control or non-ASCII characters, a
 * backslash, malformed percent-encoding, braces unless
 * NGX_OAUTH_URL_TEMPLATE.
 */
int ngx_oauth_url_check_endpoint(const unsigned char *url, size_t len,
    unsigned flags, const char **reason);

/*
 * The one rule for where credentials may travel: scheme "https"
 * (any case), or "http" with a loopback host (see below).  For a URL
 * already split, as libcurl returns the parts after normalizing them;
 * ngx_oauth_url_check_endpoint() applies it too.  NGX_OAUTH_OK, or
 * NGX_OAUTH_INVALID with a static reason.
 */
int ngx_oauth_url_check_transport(const unsigned char *scheme, size_t slen,
    const unsigned char *host, size_t hlen, const char **reason);

/*
 * 1 for a loopback host: "localhost" (any case), 127.0.0.0/8 in dotted
 * decimal without leading zeros, or "[::1]" (no other spelling of it).
 */
int ngx_oauth_url_is_loopback(const unsigned char *host, size_t len);

/*
 * The origin of an absolute http(s) URL, "scheme://host[:port]": scheme and
 * host lower-cased, the default port left out.  origin must hold
 * NGX_OAUTH_ORIGIN_MAX bytes; it is NUL-terminated, *origin_len excludes
 * the NUL.  Refused (NGX_OAUTH_INVALID and a reason): other schemes,
 * userinfo, IP-literal, percent-encoded or non-ASCII hosts, bad ports.
 * Also validates the origins of oauth_allowed_origins at config time.
 */
int ngx_oauth_url_origin(const unsigned char *url, size_t len, char *origin,
    size_t *origin_len, const char **reason);

/*
 * Decides whether return_to (already decoded once from the query) may be
 * redirected to.  Accepted: a same-origin path ("/" then anything but "/"
 * or "\"), or an absolute http(s) URL whose origin equals one of origins
 * (each normalized as ngx_oauth_url_origin() does; invalid ones never
 * match).  Refused anywhere: control characters, spaces, backslashes,
 * non-ASCII bytes, '"', '<', '>', '`', malformed percent-encoding, more
 * than NGX_OAUTH_RETURN_TO_MAX bytes.  The value is then percent-decoded
 * again (up to 4 levels) and each level is checked too: no control
 * character or backslash, no space in the path; a relative path must
 * still start with a single "/" (after any leading "./" and "../"
 * segments), not followed by a non-ASCII byte, and its first segment has
 * no ":" ("/javascript:", "/https:").
 * NGX_OAUTH_OK, or NGX_OAUTH_INVALID with a static reason string.
 */
int ngx_oauth_return_to_check(const unsigned char *url, size_t len,
    const ngx_oauth_str_t *origins, size_t norigins, const char **reason);


#endif /* _NGX_OAUTH_URL_H_INCLUDED_ */
