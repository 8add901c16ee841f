/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_oauth_catalog.h"
#include "ngx_oauth_json.h"
#include "ngx_oauth_pattern.h"
#include "ngx_oauth_store.h"


/* the built-in catalog and one of the site's: a few documents at most */
#define NGX_OAUTH_CATALOG_DOCS  8


struct ngx_oauth_catalog_s {
    size_t                      nentries;
    ngx_oauth_catalog_entry_t  *entries;
    size_t                      ndocs;
    void                       *docs[NGX_OAUTH_CATALOG_DOCS];
};


typedef int (*ngx_oauth_catalog_key_pt)(ngx_oauth_catalog_entry_t *e,
    json_t *v, size_t off, const char **why);


typedef struct {
    const char                 *key;
    ngx_oauth_catalog_key_pt    handler;
    size_t                      offset;
    size_t                      count;     /* arrays: offset of the count */
} ngx_oauth_catalog_key_t;


static int ngx_oauth_catalog_entry(ngx_oauth_catalog_entry_t *e,
    const char *name, json_t *obj, char *err, size_t errlen);
static void ngx_oauth_catalog_entry_free(ngx_oauth_catalog_entry_t *e);
static int ngx_oauth_catalog_merge(ngx_oauth_catalog_t *cat,
    ngx_oauth_catalog_entry_t *add, size_t n);
static int ngx_oauth_catalog_kind(ngx_oauth_catalog_entry_t *e, json_t *v,
    size_t off, const char **why);
static int ngx_oauth_catalog_token_auth(ngx_oauth_catalog_entry_t *e,
    json_t *v, size_t off, const char **why);
static int ngx_oauth_catalog_bool(ngx_oauth_catalog_entry_t *e, json_t *v,
    size_t off, const char **why);
static int ngx_oauth_catalog_header(ngx_oauth_catalog_entry_t *e,
    json_t *v, size_t off, const char **why);
static int ngx_oauth_catalog_strings(ngx_oauth_catalog_entry_t *e,
    json_t *v, size_t off, const char **why);
static int ngx_oauth_catalog_pairs(ngx_oauth_catalog_entry_t *e, json_t *v,
    size_t off, const char **why);
static int ngx_oauth_catalog_params(ngx_oauth_catalog_entry_t *e,
    json_t *v, size_t off, const char **why);
static int ngx_oauth_catalog_keeps(ngx_oauth_catalog_entry_t *e, json_t *v,
    size_t off, const char **why);
static int ngx_oauth_catalog_kept(ngx_oauth_catalog_entry_t *e, json_t *v,
    size_t off, const char **why);
static int ngx_oauth_catalog_lines(ngx_oauth_catalog_entry_t *e,
    json_t *v, size_t off, const char **why);
static int ngx_oauth_catalog_string(json_t *v, int nonempty,
    ngx_oauth_str_t *s);
static int ngx_oauth_catalog_only(json_t *o, const char **keys);


const char  *ngx_oauth_catalog_strs[NGX_OAUTH_CATALOG_NSTRS + 1] = {
    "display_name", "client_id", "client_secret", "redirect_uri",
    "authorization_url", "token_url", "revocation_url", "userinfo_url",
    "issuer", "account_id", "account_name", "api_base_url",
    "scope_separator", "code_param", "client_id_param", "user_agent",
    "token_path", "exchange_url", "refresh_url", "revocation_method",
    "revocation_auth", "revocation_body", "callback_hmac", "aws_region",
    "aws_service", "token_grant", "token_body", "token_encoding", NULL
};


#define ngx_oauth_catalog_off(member)                                        \
    offsetof(ngx_oauth_catalog_entry_t, member)

static const ngx_oauth_catalog_key_t  ngx_oauth_catalog_keys[] = {

    { "kind", ngx_oauth_catalog_kind, 0, 0 },
    { "token_auth", ngx_oauth_catalog_token_auth,
      ngx_oauth_catalog_off(token_auth), 0 },
    { "refresh_token_auth", ngx_oauth_catalog_token_auth,
      ngx_oauth_catalog_off(refresh_token_auth), 0 },
    { "pkce", ngx_oauth_catalog_bool, ngx_oauth_catalog_off(pkce), 0 },
    { "refresh", ngx_oauth_catalog_bool, ngx_oauth_catalog_off(refresh), 0 },
    { "token_header", ngx_oauth_catalog_header, 0, 0 },

    { "scope", ngx_oauth_catalog_strings, ngx_oauth_catalog_off(scopes),
      ngx_oauth_catalog_off(nscopes) },

    { "keep_callback_params", ngx_oauth_catalog_kept, 0, 0 },

    { "token_types", ngx_oauth_catalog_strings,
      ngx_oauth_catalog_off(token_types),
      ngx_oauth_catalog_off(ntoken_types) },

    { "requires", ngx_oauth_catalog_strings,
      ngx_oauth_catalog_off(requires), ngx_oauth_catalog_off(nrequires) },

    { "scope_required", ngx_oauth_catalog_strings,
      ngx_oauth_catalog_off(scope_required),
      ngx_oauth_catalog_off(nscope_required) },

    { "token_headers", ngx_oauth_catalog_pairs,
      ngx_oauth_catalog_off(token_headers),
      ngx_oauth_catalog_off(ntoken_headers) },

    { "api_headers", ngx_oauth_catalog_pairs,
      ngx_oauth_catalog_off(api_headers),
      ngx_oauth_catalog_off(napi_headers) },

    { "lookups", ngx_oauth_catalog_lines, 0, 0 },

    { "authorization_params", ngx_oauth_catalog_pairs,
      ngx_oauth_catalog_off(authorization_params),
      ngx_oauth_catalog_off(nauthorization_params) },

    { "token_params", ngx_oauth_catalog_pairs,
      ngx_oauth_catalog_off(token_params),
      ngx_oauth_catalog_off(ntoken_params) },

    { "connection_params", ngx_oauth_catalog_params, 0, 0 },
    { "keep_token_fields", ngx_oauth_catalog_keeps, 0, 0 },

    { NULL, NULL, 0, 0 }
};


int
ngx_oauth_catalog_load(ngx_oauth_catalog_t **cat, const unsigned char *text,
    size_t len, char *err, size_t errlen)
{
    int                         rc;
    void                       *doc;
    size_t                      i, n;
    json_t                     *root, *v;
    const char                 *name;
    ngx_oauth_catalog_t        *c;
    ngx_oauth_catalog_entry_t  *add;

    c = *cat;
    add = NULL;
    n = 0;

    if (c != NULL && c->ndocs == NGX_OAUTH_CATALOG_DOCS) {
        snprintf(err, errlen, "too many catalogs");
        return NGX_OAUTH_TOO_LARGE;
    }

    rc = ngx_oauth_json_parse(text, len, &doc);
    if (rc != NGX_OAUTH_OK) {
        snprintf(err, errlen, "not a valid JSON document");
        return rc;
    }

    root = doc;

    if (!json_is_object(root)) {
        snprintf(err, errlen, "not a JSON object of presets");
        rc = NGX_OAUTH_INVALID;
        goto failed;
    }

    add = calloc(json_object_size(root) + 1,
                 sizeof(ngx_oauth_catalog_entry_t));
    if (add == NULL) {
        rc = NGX_OAUTH_NOMEM;
        goto failed;
    }

    json_object_foreach(root, name, v) {
        rc = ngx_oauth_catalog_entry(&add[n], name, v, err, errlen);
        if (rc != NGX_OAUTH_OK) {
            ngx_oauth_catalog_entry_free(&add[n]);
            goto failed;
        }

        n++;
    }

    if (c == NULL) {
        c = calloc(1, sizeof(ngx_oauth_catalog_t));
        if (c == NULL) {
            rc = NGX_OAUTH_NOMEM;
            goto failed;
        }
    }

    rc = ngx_oauth_catalog_merge(c, add, n);
    if (rc != NGX_OAUTH_OK) {
        if (*cat == NULL) {
            free(c);
        }

        goto failed;
    }

    free(add);

    c->docs[c->ndocs++] = doc;
    *cat = c;

    return NGX_OAUTH_OK;

failed:

    for (i = 0; i < n; i++) {
        ngx_oauth_catalog_entry_free(&add[i]);
    }

    free(add);
    ngx_oauth_json_free(doc);

    if (rc == NGX_OAUTH_NOMEM) {
        snprintf(err, errlen, "out of memory");
    }

    return rc;
}


int
ngx_oauth_catalog_get(const ngx_oauth_catalog_t *cat,
    const unsigned char *name, size_t len,
    const ngx_oauth_catalog_entry_t **entry)
{
    size_t                      i;
    ngx_oauth_catalog_entry_t  *e;

    for (i = 0; cat != NULL && i < cat->nentries; i++) {
        e = &cat->entries[i];

        if (e->name.len == len && memcmp(e->name.data, name, len) == 0) {
            *entry = e;
            return NGX_OAUTH_OK;
        }
    }

    *entry = NULL;

    return NGX_OAUTH_NOT_FOUND;
}


size_t
ngx_oauth_catalog_count(const ngx_oauth_catalog_t *cat)
{
    return cat ? cat->nentries : 0;
}


const ngx_oauth_catalog_entry_t *
ngx_oauth_catalog_at(const ngx_oauth_catalog_t *cat, size_t i)
{
    return (cat && i < cat->nentries) ? &cat->entries[i] : NULL;
}


const ngx_oauth_str_t *
ngx_oauth_catalog_str(const ngx_oauth_catalog_entry_t *entry,
    const char *key)
{
    size_t  i;

    for (i = 0; ngx_oauth_catalog_strs[i]; i++) {
        if (strcmp(ngx_oauth_catalog_strs[i], key) == 0) {
            return entry->strs[i].data ? &entry->strs[i] : NULL;
        }
    }

    return NULL;
}


void
ngx_oauth_catalog_free(ngx_oauth_catalog_t *cat)
{
    size_t  i;

    if (cat == NULL) {
        return;
    }

    for (i = 0; i < cat->nentries; i++) {
        ngx_oauth_catalog_entry_free(&cat->entries[i]);
    }

    for (i = 0; i < cat->ndocs; i++) {
        ngx_oauth_json_free(cat->docs[i]);
    }

    free(cat->entries);
    free(cat);
}


/* every key known, every value of its type: nothing is guessed */

static int
ngx_oauth_catalog_entry(ngx_oauth_catalog_entry_t *e, const char *name,
    json_t *obj, char *err, size_t errlen)
{
    int                             rc;
    size_t                          i;
    json_t                         *v;
    const char                     *key, *why;
    const ngx_oauth_catalog_key_t  *k;

    memset(e, 0, sizeof(ngx_oauth_catalog_entry_t));
    e->kind = NGX_OAUTH_CATALOG_UNSET;
    e->token_auth = NGX_OAUTH_CATALOG_UNSET;
    e->refresh_token_auth = NGX_OAUTH_CATALOG_UNSET;
    e->pkce = NGX_OAUTH_CATALOG_UNSET;
    e->refresh = NGX_OAUTH_CATALOG_UNSET;
    e->name.data = (unsigned char *) name;
    e->name.len = strlen(name);

    if (e->name.len == 0 || e->name.len > NGX_OAUTH_PROVIDER_MAX) {
        snprintf(err, errlen, "a preset name is empty or too long");
        return NGX_OAUTH_INVALID;
    }

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "preset \"%s\" is not an object", name);
        return NGX_OAUTH_INVALID;
    }

    json_object_foreach(obj, key, v) {
        why = NULL;

        /* for people: the README's preset table (.ci/readme-presets.pl) */

        if ((strcmp(key, "register") == 0 || strcmp(key, "notes") == 0)
            && json_is_string(v))
        {
            continue;
        }

        for (i = 0; ngx_oauth_catalog_strs[i]; i++) {
            if (strcmp(ngx_oauth_catalog_strs[i], key) == 0) {
                break;
            }
        }

        if (ngx_oauth_catalog_strs[i]) {
            rc = json_is_null(v) ? NGX_OAUTH_OK
                                 : ngx_oauth_catalog_string(v, 0, &e->strs[i]);
            why = "must be a string";

        } else {
            for (k = ngx_oauth_catalog_keys; k->key; k++) {
                if (strcmp(k->key, key) == 0) {
                    break;
                }
            }

            if (k->key == NULL) {
                snprintf(err, errlen, "preset \"%s\": unknown key \"%s\"",
                         name, key);
                return NGX_OAUTH_INVALID;
            }

            rc = k->handler(e, v, k->offset, &why);

            if (rc == NGX_OAUTH_OK && k->count) {
                *(size_t *) ((unsigned char *) e + k->count) =
                    (v != NULL && json_is_array(v)) ? json_array_size(v)
                                                    : json_object_size(v);
            }
        }

        if (rc == NGX_OAUTH_NOMEM) {
            return rc;
        }

        if (rc != NGX_OAUTH_OK) {
            snprintf(err, errlen, "preset \"%s\": \"%s\" %s", name, key,
                     why ? why : "is invalid");
            return NGX_OAUTH_INVALID;
        }
    }

    return NGX_OAUTH_OK;
}


static void
ngx_oauth_catalog_entry_free(ngx_oauth_catalog_entry_t *e)
{
    size_t  i;

    free(e->scopes);
    free(e->authorization_params);
    free(e->token_params);
    free(e->connection_params);
    free(e->keep_callback_params);
    free(e->keep_callback_patterns);
    free(e->keep_callback_strips);
    free(e->token_types);
    free(e->keep_token_fields);
    free(e->requires);
    free(e->scope_required);
    free(e->token_headers);
    free(e->api_headers);

    for (i = 0; e->lookups && i < e->nlookups; i++) {
        free(e->lookups[i].args);
    }

    free(e->lookups);
    memset(e, 0, sizeof(ngx_oauth_catalog_entry_t));
}


/* entries of a later catalog replace those of the same name */

static int
ngx_oauth_catalog_merge(ngx_oauth_catalog_t *cat,
    ngx_oauth_catalog_entry_t *add, size_t n)
{
    size_t                      i, j, total;
    ngx_oauth_catalog_entry_t  *all;

    total = cat->nentries + n;

    all = realloc(cat->entries, (total ? total : 1)
                                * sizeof(ngx_oauth_catalog_entry_t));
    if (all == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    cat->entries = all;

    for (i = 0; i < n; i++) {
        for (j = 0; j < cat->nentries; j++) {
            if (all[j].name.len == add[i].name.len
                && memcmp(all[j].name.data, add[i].name.data,
                          add[i].name.len)
                   == 0)
            {
                break;
            }
        }

        if (j < cat->nentries) {
            ngx_oauth_catalog_entry_free(&all[j]);

        } else {
            cat->nentries++;
        }

        all[j] = add[i];
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_catalog_kind(ngx_oauth_catalog_entry_t *e, json_t *v, size_t off,
    const char **why)
{
    size_t       i;
    const char  *s;

    static const char  *kinds[] = {
        "oauth2", "api_key", "basic", "header", "aws_sigv4"
    };
    static const int    values[] = {
        NGX_OAUTH_KIND_OAUTH2, NGX_OAUTH_KIND_API_KEY, NGX_OAUTH_KIND_BASIC,
        NGX_OAUTH_KIND_HEADER, NGX_OAUTH_KIND_AWS_SIGV4
    };

    *why = "must be \"oauth2\", \"api_key\", \"basic\", \"header\" or "
           "\"aws_sigv4\"";

    s = json_string_value(v);

    for (i = 0; s != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(s, kinds[i]) == 0) {
            e->kind = values[i];
            return NGX_OAUTH_OK;
        }
    }

    return NGX_OAUTH_INVALID;
}


static int
ngx_oauth_catalog_token_auth(ngx_oauth_catalog_entry_t *e, json_t *v,
    size_t off, const char **why)
{
    const char  *s;

    *why = "must be \"basic\" or \"post\"";

    s = json_string_value(v);

    if (s != NULL && strcmp(s, "basic") == 0) {
        *(int *) ((unsigned char *) e + off) = NGX_OAUTH_TOKEN_AUTH_BASIC;
        return NGX_OAUTH_OK;
    }

    if (s != NULL && strcmp(s, "post") == 0) {
        *(int *) ((unsigned char *) e + off) = NGX_OAUTH_TOKEN_AUTH_POST;
        return NGX_OAUTH_OK;
    }

    return NGX_OAUTH_INVALID;
}


static int
ngx_oauth_catalog_bool(ngx_oauth_catalog_entry_t *e, json_t *v, size_t off,
    const char **why)
{
    *why = "must be true or false";

    if (!json_is_boolean(v)) {
        return NGX_OAUTH_INVALID;
    }

    *(int *) ((unsigned char *) e + off) = json_is_true(v);

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_catalog_header(ngx_oauth_catalog_entry_t *e, json_t *v,
    size_t off, const char **why)
{
    static const char  *keys[] = { "name", "prefix", NULL };

    *why = "must be {\"name\": a header name, \"prefix\": a string}";

    if (!json_is_object(v) || !ngx_oauth_catalog_only(v, keys)
        || ngx_oauth_catalog_string(json_object_get(v, "name"), 1,
                                    &e->token_header)
           != NGX_OAUTH_OK)
    {
        return NGX_OAUTH_INVALID;
    }

    if (json_object_get(v, "prefix") != NULL
        && ngx_oauth_catalog_string(json_object_get(v, "prefix"), 0,
                                    &e->token_prefix)
           != NGX_OAUTH_OK)
    {
        return NGX_OAUTH_INVALID;
    }

    e->token_header_set = 1;

    return NGX_OAUTH_OK;
}


/* an array of strings, none empty */

static int
ngx_oauth_catalog_strings(ngx_oauth_catalog_entry_t *e, json_t *v,
    size_t off, const char **why)
{
    size_t            i;
    json_t           *x;
    ngx_oauth_str_t  *a;

    *why = "must be an array of non-empty strings";

    if (!json_is_array(v)) {
        return NGX_OAUTH_INVALID;
    }

    a = calloc(json_array_size(v) + 1, sizeof(ngx_oauth_str_t));
    if (a == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    *(ngx_oauth_str_t **) ((unsigned char *) e + off) = a;

    json_array_foreach(v, i, x) {
        if (ngx_oauth_catalog_string(x, 1, &a[i]) != NGX_OAUTH_OK) {
            return NGX_OAUTH_INVALID;
        }
    }

    return NGX_OAUTH_OK;
}


/*
 * keep_callback_params[]: a name, or {"name": ..., "pattern": ...,
 * "strip_prefix": ...}; the patterns and prefixes go in parallel arrays
 * (len 0: none but the default rule, nothing dropped).
 */

static int
ngx_oauth_catalog_kept(ngx_oauth_catalog_entry_t *e, json_t *v, size_t off,
    const char **why)
{
    size_t            i, n;
    json_t           *o, *x;
    ngx_oauth_str_t  *a, *pat, *strip;

    static const char  *keys[] = { "name", "pattern", "strip_prefix", NULL };

    *why = "must be an array of non-empty strings or of {\"name\", "
           "\"pattern\", \"strip_prefix\"} with a pattern that compiles";

    if (!json_is_array(v)) {
        return NGX_OAUTH_INVALID;
    }

    n = json_array_size(v);

    a = calloc(n + 1, sizeof(ngx_oauth_str_t));
    pat = calloc(n + 1, sizeof(ngx_oauth_str_t));
    strip = calloc(n + 1, sizeof(ngx_oauth_str_t));

    e->keep_callback_params = a;
    e->keep_callback_patterns = pat;
    e->keep_callback_strips = strip;

    if (a == NULL || pat == NULL || strip == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    e->nkeep_callback_params = n;

    json_array_foreach(v, i, o) {
        if (json_is_string(o)) {
            if (ngx_oauth_catalog_string(o, 1, &a[i]) != NGX_OAUTH_OK) {
                return NGX_OAUTH_INVALID;
            }

            continue;
        }

        if (!json_is_object(o) || !ngx_oauth_catalog_only(o, keys)
            || ngx_oauth_catalog_string(json_object_get(o, "name"), 1,
                                        &a[i])
               != NGX_OAUTH_OK)
        {
            return NGX_OAUTH_INVALID;
        }

        x = json_object_get(o, "pattern");

        if (x != NULL
            && (ngx_oauth_catalog_string(x, 1, &pat[i]) != NGX_OAUTH_OK
                || ngx_oauth_pattern_check((char *) pat[i].data, NULL, 0)
                   != NGX_OAUTH_OK))
        {
            return NGX_OAUTH_INVALID;
        }

        x = json_object_get(o, "strip_prefix");

        if (x != NULL
            && ngx_oauth_catalog_string(x, 1, &strip[i]) != NGX_OAUTH_OK)
        {
            return NGX_OAUTH_INVALID;
        }
    }

    return NGX_OAUTH_OK;
}


/* {"NAME": "VALUE", ...} */

static int
ngx_oauth_catalog_pairs(ngx_oauth_catalog_entry_t *e, json_t *v, size_t off,
    const char **why)
{
    size_t             i;
    json_t            *x;
    const char        *key;
    ngx_oauth_pair_t  *a;

    *why = "must be an object of strings";

    if (!json_is_object(v)) {
        return NGX_OAUTH_INVALID;
    }

    a = calloc(json_object_size(v) + 1, sizeof(ngx_oauth_pair_t));
    if (a == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    *(ngx_oauth_pair_t **) ((unsigned char *) e + off) = a;

    i = 0;

    json_object_foreach(v, key, x) {
        if (*key == '\0'
            || ngx_oauth_catalog_string(x, 0, &a[i].value) != NGX_OAUTH_OK)
        {
            return NGX_OAUTH_INVALID;
        }

        a[i].name.data = (unsigned char *) key;
        a[i].name.len = strlen(key);
        i++;
    }

    return NGX_OAUTH_OK;
}


/*
 * lookups[]: lines of a directive given as arrays of its arguments, each
 * a non-empty string; the provider block's setter checks what they say
 */

static int
ngx_oauth_catalog_lines(ngx_oauth_catalog_entry_t *e, json_t *v, size_t off,
    const char **why)
{
    size_t                     i, j, n;
    json_t                    *line, *x;
    ngx_oauth_catalog_line_t  *a;

    *why = "must be an array of arrays of non-empty strings";

    if (!json_is_array(v)) {
        return NGX_OAUTH_INVALID;
    }

    n = json_array_size(v);

    a = calloc(n + 1, sizeof(ngx_oauth_catalog_line_t));
    if (a == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    e->lookups = a;
    e->nlookups = n;

    json_array_foreach(v, i, line) {
        if (!json_is_array(line) || json_array_size(line) == 0) {
            return NGX_OAUTH_INVALID;
        }

        a[i].args = calloc(json_array_size(line) + 1,
                           sizeof(ngx_oauth_str_t));
        if (a[i].args == NULL) {
            return NGX_OAUTH_NOMEM;
        }

        a[i].nargs = json_array_size(line);

        json_array_foreach(line, j, x) {
            if (ngx_oauth_catalog_string(x, 1, &a[i].args[j])
                != NGX_OAUTH_OK)
            {
                return NGX_OAUTH_INVALID;
            }
        }
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_catalog_params(ngx_oauth_catalog_entry_t *e, json_t *v,
    size_t off, const char **why)
{
    size_t                      i;
    json_t                     *o, *x;
    ngx_oauth_catalog_param_t  *a;

    static const char  *keys[] = {
        "name", "pattern", "required", "strip_suffix", NULL
    };

    *why = "must be an array of {\"name\", \"pattern\", \"required\", "
           "\"strip_suffix\"} with a name and a pattern that compiles";

    if (!json_is_array(v)) {
        return NGX_OAUTH_INVALID;
    }

    a = calloc(json_array_size(v) + 1, sizeof(ngx_oauth_catalog_param_t));
    if (a == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    e->connection_params = a;
    e->nconnection_params = json_array_size(v);

    json_array_foreach(v, i, o) {
        if (!json_is_object(o) || !ngx_oauth_catalog_only(o, keys)
            || ngx_oauth_catalog_string(json_object_get(o, "name"), 1,
                                        &a[i].name)
               != NGX_OAUTH_OK)
        {
            return NGX_OAUTH_INVALID;
        }

        x = json_object_get(o, "pattern");

        if (x != NULL
            && (ngx_oauth_catalog_string(x, 1, &a[i].pattern)
                != NGX_OAUTH_OK
                || ngx_oauth_pattern_check((char *) a[i].pattern.data, NULL,
                                           0)
                   != NGX_OAUTH_OK))
        {
            return NGX_OAUTH_INVALID;
        }

        x = json_object_get(o, "strip_suffix");

        if (x != NULL
            && ngx_oauth_catalog_string(x, 1, &a[i].strip_suffix)
               != NGX_OAUTH_OK)
        {
            return NGX_OAUTH_INVALID;
        }

        x = json_object_get(o, "required");

        if (x != NULL && !json_is_boolean(x)) {
            return NGX_OAUTH_INVALID;
        }

        a[i].required = json_is_true(x);
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_catalog_keeps(ngx_oauth_catalog_entry_t *e, json_t *v, size_t off,
    const char **why)
{
    size_t                     i;
    json_t                    *o, *x;
    ngx_oauth_catalog_keep_t  *a;

    static const char  *keys[] = { "path", "as", NULL };

    *why = "must be an array of {\"path\", \"as\"} with a path";

    if (!json_is_array(v)) {
        return NGX_OAUTH_INVALID;
    }

    a = calloc(json_array_size(v) + 1, sizeof(ngx_oauth_catalog_keep_t));
    if (a == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    e->keep_token_fields = a;
    e->nkeep_token_fields = json_array_size(v);

    json_array_foreach(v, i, o) {
        if (!json_is_object(o) || !ngx_oauth_catalog_only(o, keys)
            || ngx_oauth_catalog_string(json_object_get(o, "path"), 1,
                                        &a[i].path)
               != NGX_OAUTH_OK)
        {
            return NGX_OAUTH_INVALID;
        }

        x = json_object_get(o, "as");

        if (x == NULL) {
            a[i].as = a[i].path;

        } else if (ngx_oauth_catalog_string(x, 1, &a[i].as) != NGX_OAUTH_OK) {
            return NGX_OAUTH_INVALID;
        }
    }

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_catalog_string(json_t *v, int nonempty, ngx_oauth_str_t *s)
{
    if (v == NULL || !json_is_string(v)
        || (nonempty && json_string_length(v) == 0))
    {
        return NGX_OAUTH_INVALID;
    }

    s->data = (unsigned char *) json_string_value(v);
    s->len = json_string_length(v);

    return NGX_OAUTH_OK;
}


/* 1 when every key of o is one of keys */

static int
ngx_oauth_catalog_only(json_t *o, const char **keys)
{
    size_t       i;
    json_t      *x;
    const char  *key;

    json_object_foreach(o, key, x) {
        for (i = 0; keys[i]; i++) {
            if (strcmp(keys[i], key) == 0) {
                break;
            }
        }

        if (keys[i] == NULL) {
            return 0;
        }
    }

    return 1;
}
