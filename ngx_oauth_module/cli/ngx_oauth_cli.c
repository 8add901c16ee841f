/*
 * Copyright (C) ngx_oauth_module authors
 */


/*
 * ngx-oauth: the operator's tool for the store that nginx uses.  It is
 * built on the plain-C core only, opens the store the way every worker
 * does (LMDB takes care of the concurrency), keeps its transactions short
 * and never prints a token, a secret or a key (keygen's own line apart).
 */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ngx_oauth_core.h"
#include "ngx_oauth_buf.h"
#include "ngx_oauth_crypto.h"
#include "ngx_oauth_json.h"
#include "ngx_oauth_seal.h"
#include "ngx_oauth_store.h"
#include "ngx_oauth_cli.h"


#define NGX_OAUTH_CLI_VERSION       "0.1.0"

/* what a command needs or accepts */
#define NGX_OAUTH_CLI_STORE         0x01
#define NGX_OAUTH_CLI_KEYS          0x02
#define NGX_OAUTH_CLI_FILTERS       0x04

#define NGX_OAUTH_CLI_ARGS_MAX      2
#define NGX_OAUTH_CLI_RETRIES       5
#define NGX_OAUTH_CLI_ERR_LEN       512
#define NGX_OAUTH_CLI_TIME_LEN      sizeof("1970-01-01T00:00:00Z")

#define NGX_OAUTH_CLI_LINE_LEN                                               \
    (NGX_OAUTH_KID_MAX + 1 + ngx_oauth_base64_encoded_len(NGX_OAUTH_KEY_LEN) \
     + 2)


typedef struct {
    const char               *store_path;
    const char               *key_file;
    const char               *shared;        /* the fleet's PostgreSQL */
    const char               *password_file;
    const char               *owner;
    const char               *provider;
    const char               *command;
    const char               *args[NGX_OAUTH_CLI_ARGS_MAX];
    size_t                    nargs;
    unsigned                  json;
    unsigned                  filters;       /* a list option was given */
    unsigned                  help;
    unsigned                  version;

    ngx_oauth_store_t        *store;
    ngx_oauth_keyring_t       keyring;

    /* stdout: built while a transaction is open, written after it */
    ngx_oauth_buf_t           out;

    /* rotate: connections to re-seal, an array of ngx_oauth_cli_target_t */
    ngx_oauth_buf_t           targets;

    size_t                    conns;
    size_t                    values;
    size_t                    done;          /* opened, or re-sealed */
    size_t                    current;       /* already under the active key */
    size_t                    failed;
    int                       error;         /* stops an iteration */

    /* the PKCE verifiers of flows under way */
    size_t                    flows;
    size_t                    flows_done;
    size_t                    flows_failed;
    unsigned char            *resealed;      /* owned while a flow is put */
} ngx_oauth_cli_t;


typedef int (*ngx_oauth_cli_handler_pt)(ngx_oauth_cli_t *cli);


typedef struct {
    const char               *name;
    ngx_oauth_cli_handler_pt  handler;
    unsigned                  needs;
    size_t                    min_args;
    size_t                    max_args;
} ngx_oauth_cli_command_t;


typedef struct {
    const char               *name;
    size_t                    offset;        /* of a const char * */
    unsigned                  filter;
} ngx_oauth_cli_option_t;


/* what rotate did to one connection's values */
typedef struct {
    size_t                    done;
    size_t                    current;
    size_t                    failed;
} ngx_oauth_cli_count_t;


/* a connection rotate will re-seal, copied out of the read transaction */
typedef struct {
    ngx_oauth_str_t           owner;
    ngx_oauth_str_t           provider;
    ngx_oauth_str_t           account;
    unsigned char            *mem;
} ngx_oauth_cli_target_t;


static int ngx_oauth_cli_options(ngx_oauth_cli_t *cli, int argc,
    char **argv);
static int ngx_oauth_cli_option(ngx_oauth_cli_t *cli, int argc, char **argv,
    int *i);
static int ngx_oauth_cli_run(ngx_oauth_cli_t *cli);
static int ngx_oauth_cli_open(ngx_oauth_cli_t *cli, unsigned needs);
static int ngx_oauth_cli_keygen(ngx_oauth_cli_t *cli);
static int ngx_oauth_cli_kid_valid(const char *kid);
static int ngx_oauth_cli_list(ngx_oauth_cli_t *cli);
static int ngx_oauth_cli_list_conn(const ngx_oauth_conn_t *conn,
    void *data);
static void ngx_oauth_cli_list_row(ngx_oauth_buf_t *b,
    const ngx_oauth_conn_t *conn, time_t now);
static void ngx_oauth_cli_list_object(ngx_oauth_buf_t *b,
    const ngx_oauth_conn_t *conn, time_t now);
static int ngx_oauth_cli_check(ngx_oauth_cli_t *cli);
static int ngx_oauth_cli_check_conn(const ngx_oauth_conn_t *conn,
    void *data);
static int ngx_oauth_cli_check_flow(const ngx_oauth_flow_t *flow,
    void *data);
static int ngx_oauth_cli_rotate(ngx_oauth_cli_t *cli);
static int ngx_oauth_cli_rotate_flow(ngx_oauth_flow_t *flow, void *data);
static int ngx_oauth_cli_rotate_scan(const ngx_oauth_conn_t *conn,
    void *data);
static int ngx_oauth_cli_rotate_conn(ngx_oauth_cli_t *cli,
    const ngx_oauth_cli_target_t *t);
static int ngx_oauth_cli_reseal_conn(ngx_oauth_cli_t *cli,
    ngx_oauth_conn_t *conn, ngx_oauth_conn_t *rec, ngx_oauth_str_t *sealed,
    ngx_oauth_buf_t *report, ngx_oauth_cli_count_t *n);
static int ngx_oauth_cli_reseal(ngx_oauth_cli_t *cli,
    const ngx_oauth_conn_t *conn, ngx_oauth_sealed_e f,
    ngx_oauth_str_t *out);
static int ngx_oauth_cli_purge(ngx_oauth_cli_t *cli);
static int ngx_oauth_cli_backup(ngx_oauth_cli_t *cli);
static int ngx_oauth_cli_events(ngx_oauth_cli_t *cli);
static int ngx_oauth_cli_events_row(const ngx_oauth_outbox_rec_t *rec,
    void *data);
static int ngx_oauth_cli_each(ngx_oauth_cli_t *cli,
    ngx_oauth_conn_iter_pt iter);
static int ngx_oauth_cli_open_value(ngx_oauth_cli_t *cli,
    const ngx_oauth_conn_t *conn, ngx_oauth_sealed_e f,
    unsigned char **plain, size_t *plen);
static int ngx_oauth_cli_is_active(ngx_oauth_cli_t *cli,
    const ngx_oauth_str_t *sealed);
static void ngx_oauth_cli_failure(ngx_oauth_buf_t *b,
    const ngx_oauth_conn_t *conn, const char *field, int rc,
    const ngx_oauth_str_t *sealed);
static void ngx_oauth_cli_add_who(ngx_oauth_buf_t *b,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);
static void ngx_oauth_cli_add_keys(ngx_oauth_buf_t *b,
    const ngx_oauth_conn_t *conn, int json);
static void ngx_oauth_cli_add_text(ngx_oauth_buf_t *b, const void *p,
    size_t len);
static void ngx_oauth_cli_add_json(ngx_oauth_buf_t *b, const void *p,
    size_t len);
static void ngx_oauth_cli_add_time(ngx_oauth_buf_t *b, time_t t, int json);
static int ngx_oauth_cli_flush(ngx_oauth_cli_t *cli);
static void ngx_oauth_cli_usage(FILE *f);
static void ngx_oauth_cli_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));


static const ngx_oauth_cli_command_t  ngx_oauth_cli_commands[] = {

    { "keygen", ngx_oauth_cli_keygen, 0, 0, 1 },

    { "list", ngx_oauth_cli_list,
      NGX_OAUTH_CLI_STORE|NGX_OAUTH_CLI_FILTERS, 0, 0 },

    { "check", ngx_oauth_cli_check,
      NGX_OAUTH_CLI_STORE|NGX_OAUTH_CLI_KEYS, 0, 0 },

    { "rotate", ngx_oauth_cli_rotate,
      NGX_OAUTH_CLI_STORE|NGX_OAUTH_CLI_KEYS, 0, 0 },

    { "purge", ngx_oauth_cli_purge, NGX_OAUTH_CLI_STORE, 0, 0 },

    { "backup", ngx_oauth_cli_backup, NGX_OAUTH_CLI_STORE, 1, 1 },

    { "events", ngx_oauth_cli_events,
      NGX_OAUTH_CLI_STORE|NGX_OAUTH_CLI_FILTERS, 0, 0 },

    { NULL, NULL, 0, 0, 0 }
};


static const ngx_oauth_cli_option_t  ngx_oauth_cli_value_options[] = {
    { "--store", offsetof(ngx_oauth_cli_t, store_path), 0 },
    { "--key-file", offsetof(ngx_oauth_cli_t, key_file), 0 },
    { "--shared", offsetof(ngx_oauth_cli_t, shared), 0 },
    { "--password-file", offsetof(ngx_oauth_cli_t, password_file), 0 },
    { "--owner", offsetof(ngx_oauth_cli_t, owner), 1 },
    { "--provider", offsetof(ngx_oauth_cli_t, provider), 1 },
    { NULL, 0, 0 }
};


int
main(int argc, char **argv)
{
    int              rc;
    struct rlimit    rlim;
    ngx_oauth_cli_t  cli;

    /* a backup, or a lock file this creates, is for its owner only */
    (void) umask(077);

    /* keys and tokens pass through memory: no core file may keep them */
    rlim.rlim_cur = 0;
    rlim.rlim_max = 0;
    (void) setrlimit(RLIMIT_CORE, &rlim);

    memset(&cli, 0, sizeof(ngx_oauth_cli_t));

    rc = ngx_oauth_cli_options(&cli, argc, argv);
    if (rc != NGX_OAUTH_CLI_OK) {
        goto exit;
    }

    if (cli.help) {
        ngx_oauth_cli_usage(stdout);
        goto exit;
    }

    if (cli.version) {
        printf("ngx-oauth " NGX_OAUTH_CLI_VERSION "\n");
        goto exit;
    }

    rc = ngx_oauth_cli_run(&cli);

exit:

    if (cli.store != NULL) {
        ngx_oauth_store_close(cli.store);
    }

    ngx_oauth_keyring_wipe(&cli.keyring);
    ngx_oauth_buf_free(&cli.out);
    ngx_oauth_buf_free(&cli.targets);

    if (fflush(stdout) == EOF && rc == NGX_OAUTH_CLI_OK) {
        ngx_oauth_cli_error("write to stdout failed: %s", strerror(errno));
        rc = NGX_OAUTH_CLI_ERROR;
    }

    return rc;
}


static int
ngx_oauth_cli_options(ngx_oauth_cli_t *cli, int argc, char **argv)
{
    int    i, rc, only_args;
    char  *arg;

    only_args = 0;

    /* options may come before or after the command, as with git */

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (only_args || arg[0] != '-' || arg[1] == '\0') {

            if (cli->command == NULL) {
                cli->command = arg;

            } else {
                if (cli->nargs < NGX_OAUTH_CLI_ARGS_MAX) {
                    cli->args[cli->nargs] = arg;
                }

                /* counted beyond the array: "too many" is reported later */
                cli->nargs++;
            }

            continue;
        }

        if (strcmp(arg, "--") == 0) {
            only_args = 1;
            continue;
        }

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            cli->help = 1;
            continue;
        }

        if (strcmp(arg, "--version") == 0) {
            cli->version = 1;
            continue;
        }

        if (strcmp(arg, "--json") == 0) {
            cli->json = 1;
            cli->filters = 1;
            continue;
        }

        rc = ngx_oauth_cli_option(cli, argc, argv, &i);
        if (rc != NGX_OAUTH_CLI_OK) {
            return rc;
        }
    }

    return NGX_OAUTH_CLI_OK;
}


/* "--name value" or "--name=value" */

static int
ngx_oauth_cli_option(ngx_oauth_cli_t *cli, int argc, char **argv, int *i)
{
    char                          *arg, *value;
    size_t                         len;
    const char                   **slot;
    const ngx_oauth_cli_option_t  *opt;

    arg = argv[*i];

    value = strchr(arg, '=');
    len = (value != NULL) ? (size_t) (value - arg) : strlen(arg);

    for (opt = ngx_oauth_cli_value_options; opt->name != NULL; opt++) {
        if (strlen(opt->name) == len && strncmp(opt->name, arg, len) == 0) {
            break;
        }
    }

    if (opt->name == NULL) {
        ngx_oauth_cli_error("unknown option \"%.*s\", see ngx-oauth --help",
                            (int) len, arg);
        return NGX_OAUTH_CLI_ERROR;
    }

    if (value != NULL) {
        value++;

    } else if (*i + 1 < argc) {
        value = argv[++*i];

    } else {
        ngx_oauth_cli_error("option \"%s\" needs a value", opt->name);
        return NGX_OAUTH_CLI_ERROR;
    }

    if (value[0] == '\0') {
        ngx_oauth_cli_error("option \"%s\" needs a value", opt->name);
        return NGX_OAUTH_CLI_ERROR;
    }

    slot = (const char **) ((unsigned char *) cli + opt->offset);

    if (*slot != NULL) {
        ngx_oauth_cli_error("option \"%s\" is duplicate", opt->name);
        return NGX_OAUTH_CLI_ERROR;
    }

    *slot = value;

    if (opt->filter) {
        cli->filters = 1;
    }

    return NGX_OAUTH_CLI_OK;
}


static int
ngx_oauth_cli_run(ngx_oauth_cli_t *cli)
{
    int                             rc;
    ngx_oauth_cli_shared_conf_t     sc;
    const ngx_oauth_cli_command_t  *cmd;

    if (cli->command == NULL) {
        ngx_oauth_cli_error("no command, see ngx-oauth --help");
        return NGX_OAUTH_CLI_ERROR;
    }

    /* the fleet's PostgreSQL instead of a store file */

    if (cli->shared != NULL || cli->password_file != NULL) {
        if (cli->shared == NULL || cli->store_path != NULL || cli->filters) {
            ngx_oauth_cli_error("--shared URL goes without --store, "
                                "--owner, --provider and --json; "
                                "--password-file with --shared only");
            return NGX_OAUTH_CLI_ERROR;
        }

        sc.url = cli->shared;
        sc.password_file = cli->password_file;
        sc.key_file = cli->key_file;
        sc.command = cli->command;
        sc.arg = cli->nargs ? cli->args[0] : NULL;
        sc.nargs = cli->nargs;

        return ngx_oauth_cli_shared(&sc);
    }

    for (cmd = ngx_oauth_cli_commands; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, cli->command) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        ngx_oauth_cli_error("unknown command \"%s\", see ngx-oauth --help",
                            cli->command);
        return NGX_OAUTH_CLI_ERROR;
    }

    if (cli->nargs < cmd->min_args || cli->nargs > cmd->max_args) {
        ngx_oauth_cli_error("%s: wrong number of arguments, see "
                            "ngx-oauth --help", cmd->name);
        return NGX_OAUTH_CLI_ERROR;
    }

    if (cli->filters && !(cmd->needs & NGX_OAUTH_CLI_FILTERS)) {
        ngx_oauth_cli_error("%s: --owner, --provider and --json go with "
                            "list only", cmd->name);
        return NGX_OAUTH_CLI_ERROR;
    }

    if ((cmd->needs & NGX_OAUTH_CLI_STORE) && cli->store_path == NULL) {
        ngx_oauth_cli_error("%s needs --store PATH", cmd->name);
        return NGX_OAUTH_CLI_ERROR;
    }

    if ((cmd->needs & NGX_OAUTH_CLI_KEYS) && cli->key_file == NULL) {
        ngx_oauth_cli_error("%s needs --key-file FILE", cmd->name);
        return NGX_OAUTH_CLI_ERROR;
    }

    rc = ngx_oauth_cli_open(cli, cmd->needs);
    if (rc != NGX_OAUTH_CLI_OK) {
        return rc;
    }

    rc = cmd->handler(cli);

    /* what was gathered is written even when the command failed late */

    if (ngx_oauth_cli_flush(cli) != NGX_OAUTH_CLI_OK
        && rc == NGX_OAUTH_CLI_OK)
    {
        rc = NGX_OAUTH_CLI_ERROR;
    }

    return rc;
}


static int
ngx_oauth_cli_open(ngx_oauth_cli_t *cli, unsigned needs)
{
    int                     rc;
    struct stat             sb;
    ngx_oauth_store_conf_t  conf;
    char                    err[NGX_OAUTH_CLI_ERR_LEN];

    if (needs & NGX_OAUTH_CLI_KEYS) {
        rc = ngx_oauth_keyring_load(&cli->keyring, cli->key_file, err,
                                    sizeof(err));
        if (rc != NGX_OAUTH_OK) {
            ngx_oauth_cli_error("%s", err);
            return NGX_OAUTH_CLI_UNAVAILABLE;
        }
    }

    if (!(needs & NGX_OAUTH_CLI_STORE)) {
        return NGX_OAUTH_CLI_OK;
    }

    /* the store would create a missing file: a typo must not look empty */

    if (stat(cli->store_path, &sb) == -1) {
        ngx_oauth_cli_error("cannot open store \"%s\": %s", cli->store_path,
                            strerror(errno));
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    if (!S_ISREG(sb.st_mode)) {
        ngx_oauth_cli_error("store \"%s\" is not a regular file",
                            cli->store_path);
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    /*
     * max_size 0 keeps the map size recorded in the file, the one nginx
     * chose; sync on: a rotation must survive a crash
     */

    memset(&conf, 0, sizeof(ngx_oauth_store_conf_t));
    conf.path = cli->store_path;
    conf.sync = 1;

    rc = ngx_oauth_store_open(&cli->store, &conf, NULL, err, sizeof(err));
    if (rc != NGX_OAUTH_OK) {
        ngx_oauth_cli_error("%s", err);
        return NGX_OAUTH_CLI_UNAVAILABLE;
    }

    return NGX_OAUTH_CLI_OK;
}


static int
ngx_oauth_cli_keygen(ngx_oauth_cli_t *cli)
{
    int                  rc;
    size_t               len;
    time_t               now;
    struct tm            tm;
    ngx_oauth_keyring_t  kr;
    char                 kid[NGX_OAUTH_KID_MAX + 1];
    unsigned char        key[NGX_OAUTH_KEY_LEN];
    char                 line[NGX_OAUTH_CLI_LINE_LEN];
    char                 err[NGX_OAUTH_CLI_ERR_LEN];

    memset(&kr, 0, sizeof(ngx_oauth_keyring_t));

    if (cli->nargs) {
        if (!ngx_oauth_cli_kid_valid(cli->args[0])) {
            ngx_oauth_cli_error("keygen: a key id is 1 to %d characters "
                                "of A-Z a-z 0-9 . _ -", NGX_OAUTH_KID_MAX);
            return NGX_OAUTH_CLI_ERROR;
        }

        len = strlen(cli->args[0]);
        memcpy(kid, cli->args[0], len + 1);

    } else {
        now = time(NULL);

        if (gmtime_r(&now, &tm) == NULL
            || strftime(kid, sizeof(kid), "k%Y%m%d", &tm) == 0)
        {
            ngx_oauth_cli_error("keygen: no current date for the key id");
            return NGX_OAUTH_CLI_ERROR;
        }

        len = strlen(kid);
    }

    rc = NGX_OAUTH_CLI_ERROR;

    if (ngx_oauth_random(key, sizeof(key)) != NGX_OAUTH_OK) {
        ngx_oauth_cli_error("keygen: the random generator failed");
        goto exit;
    }

    memcpy(line, kid, len);
    line[len++] = ':';
    len += ngx_oauth_base64_encode(key, sizeof(key), line + len);
    line[len++] = '\n';

    /* the line must be one that nginx and this tool accept */

    if (ngx_oauth_keyring_parse(&kr, (unsigned char *) line, len, err,
                                sizeof(err))
        != NGX_OAUTH_OK)
    {
        ngx_oauth_cli_error("keygen: generated line refused: %s", err);
        goto exit;
    }

    if (ngx_oauth_buf_add(&cli->out, line, len) != NGX_OAUTH_OK) {
        ngx_oauth_cli_error("keygen: out of memory");
        goto exit;
    }

    rc = NGX_OAUTH_CLI_OK;

exit:

    ngx_oauth_wipe(key, sizeof(key));
    ngx_oauth_wipe(line, sizeof(line));
    ngx_oauth_keyring_wipe(&kr);

    return rc;
}


/* the key id charset of the keyring: it is printed in logs and reports */

static int
ngx_oauth_cli_kid_valid(const char *kid)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; kid[i] != '\0'; i++) {
        c = (unsigned char) kid[i];

        if (i == NGX_OAUTH_KID_MAX
            || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                 || (c >= '0' && c <= '9') || c == '.' || c == '_'
                 || c == '-'))
        {
            return 0;
        }
    }

    return i != 0;
}


static int
ngx_oauth_cli_list(ngx_oauth_cli_t *cli)
{
    int  rc;

    if ((cli->owner != NULL && strlen(cli->owner) > NGX_OAUTH_OWNER_MAX)
        || (cli->provider != NULL
            && strlen(cli->provider) > NGX_OAUTH_PROVIDER_MAX))
    {
        ngx_oauth_cli_error("list: owner or provider too long");
        return NGX_OAUTH_CLI_ERROR;
    }

    (void) ngx_oauth_buf_add_cstr(&cli->out, cli->json
        ? "[\n"
        : "owner\tprovider\taccount\tkind\tstatus\texpires_at\tupdated_at"
          "\tkeys\n");

    rc = ngx_oauth_cli_each(cli, ngx_oauth_cli_list_conn);

    if (cli->json) {
        (void) ngx_oauth_buf_add_cstr(&cli->out, cli->conns ? "\n]\n" : "]\n");
    }

    if (rc == NGX_OAUTH_CLI_OK && cli->out.failed) {
        ngx_oauth_cli_error("list: out of memory");
        rc = NGX_OAUTH_CLI_ERROR;
    }

    return rc;
}


static int
ngx_oauth_cli_list_conn(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_oauth_cli_t  *cli = data;

    if (cli->json) {
        if (cli->conns) {
            (void) ngx_oauth_buf_add_cstr(&cli->out, ",\n");
        }

        ngx_oauth_cli_list_object(&cli->out, conn, time(NULL));

    } else {
        ngx_oauth_cli_list_row(&cli->out, conn, time(NULL));
    }

    cli->conns++;

    return cli->out.failed;
}


static void
ngx_oauth_cli_list_row(ngx_oauth_buf_t *b, const ngx_oauth_conn_t *conn,
    time_t now)
{
    ngx_oauth_cli_add_who(b, &conn->owner, &conn->provider, &conn->account);
    (void) ngx_oauth_buf_add_fmt(b, "\t%s\t%s\t",
                                 ngx_oauth_kind_name(conn->kind),
                                 ngx_oauth_status_name(
                                     ngx_oauth_conn_status(conn, now)));
    ngx_oauth_cli_add_time(b, conn->expires_at, 0);
    (void) ngx_oauth_buf_add_byte(b, '\t');
    ngx_oauth_cli_add_time(b, conn->updated_at, 0);
    (void) ngx_oauth_buf_add_byte(b, '\t');
    ngx_oauth_cli_add_keys(b, conn, 0);
    (void) ngx_oauth_buf_add_byte(b, '\n');
}


static void
ngx_oauth_cli_list_object(ngx_oauth_buf_t *b, const ngx_oauth_conn_t *conn,
    time_t now)
{
    (void) ngx_oauth_buf_add_cstr(b, "{\"owner\":");
    ngx_oauth_cli_add_json(b, conn->owner.data, conn->owner.len);
    (void) ngx_oauth_buf_add_cstr(b, ",\"provider\":");
    ngx_oauth_cli_add_json(b, conn->provider.data, conn->provider.len);
    (void) ngx_oauth_buf_add_cstr(b, ",\"account\":");
    ngx_oauth_cli_add_json(b, conn->account.data, conn->account.len);
    (void) ngx_oauth_buf_add_cstr(b, ",\"account_name\":");
    ngx_oauth_cli_add_json(b, conn->account_name.data,
                           conn->account_name.len);
    (void) ngx_oauth_buf_add_fmt(b, ",\"kind\":\"%s\",\"status\":\"%s\"",
                                 ngx_oauth_kind_name(conn->kind),
                                 ngx_oauth_status_name(
                                     ngx_oauth_conn_status(conn, now)));
    (void) ngx_oauth_buf_add_cstr(b, ",\"expires_at\":");
    ngx_oauth_cli_add_time(b, conn->expires_at, 1);
    (void) ngx_oauth_buf_add_cstr(b, ",\"created_at\":");
    ngx_oauth_cli_add_time(b, conn->created_at, 1);
    (void) ngx_oauth_buf_add_cstr(b, ",\"updated_at\":");
    ngx_oauth_cli_add_time(b, conn->updated_at, 1);
    (void) ngx_oauth_buf_add_cstr(b, ",\"last_refresh_at\":");
    ngx_oauth_cli_add_time(b, conn->last_refresh_at, 1);
    (void) ngx_oauth_buf_add_cstr(b, ",\"last_error\":");

    if (conn->last_error.len) {
        ngx_oauth_cli_add_json(b, conn->last_error.data,
                               conn->last_error.len);

    } else {
        (void) ngx_oauth_buf_add_cstr(b, "null");
    }

    (void) ngx_oauth_buf_add_fmt(b, ",\"version\":%llu,\"keys\":{",
                                 (unsigned long long) conn->version);
    ngx_oauth_cli_add_keys(b, conn, 1);
    (void) ngx_oauth_buf_add_cstr(b, "}}");
}


static int
ngx_oauth_cli_check(ngx_oauth_cli_t *cli)
{
    int  rc, flows;

    rc = ngx_oauth_cli_each(cli, ngx_oauth_cli_check_conn);

    if (cli->error != NGX_OAUTH_OK) {
        ngx_oauth_cli_error("check: %s", ngx_oauth_strerror(cli->error));
        return NGX_OAUTH_CLI_ERROR;
    }

    /* the PKCE verifiers of flows under way are sealed too */

    flows = ngx_oauth_store_flow_each(cli->store, ngx_oauth_cli_check_flow,
                                      cli);

    if (cli->error != NGX_OAUTH_OK) {
        ngx_oauth_cli_error("check: %s", ngx_oauth_strerror(cli->error));
        return NGX_OAUTH_CLI_ERROR;
    }

    if (flows != NGX_OAUTH_OK) {
        ngx_oauth_cli_error("check: flows: %s",
                            ngx_oauth_store_error(cli->store));
        rc = NGX_OAUTH_CLI_PROBLEMS;
    }

    (void) ngx_oauth_buf_add_fmt(&cli->out,
                                 "checked %zu sealed values in %zu "
                                 "connections: %zu ok, %zu failed\n",
                                 cli->values, cli->conns, cli->done,
                                 cli->failed);

    if (cli->flows) {
        (void) ngx_oauth_buf_add_fmt(&cli->out,
                                     "checked %zu PKCE verifiers of flows "
                                     "under way: %zu ok, %zu failed\n",
                                     cli->flows, cli->flows_done,
                                     cli->flows_failed);
    }

    if (rc == NGX_OAUTH_CLI_OK && (cli->failed || cli->flows_failed)) {
        rc = NGX_OAUTH_CLI_PROBLEMS;
    }

    return rc;
}


static int
ngx_oauth_cli_check_conn(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_oauth_cli_t  *cli = data;

    int                            rc;
    size_t                         plen;
    unsigned char                 *plain;
    const ngx_oauth_str_t         *s;
    ngx_oauth_sealed_e             f;

    cli->conns++;

    for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {
        s = ngx_oauth_conn_sealed(conn, f);

        if (s->len == 0) {
            continue;
        }

        cli->values++;

        rc = ngx_oauth_cli_open_value(cli, conn, f, &plain, &plen);

        if (rc == NGX_OAUTH_OK) {
            /* only the verdict is wanted */
            ngx_oauth_wipe(plain, s->len);
            free(plain);
            cli->done++;
            continue;
        }

        if (rc == NGX_OAUTH_NOMEM || rc == NGX_OAUTH_ERROR) {
            cli->error = rc;
            return 1;
        }

        cli->failed++;
        ngx_oauth_cli_failure(&cli->out, conn, ngx_oauth_sealed_name(f), rc, s);
    }

    return cli->out.failed;
}


static int
ngx_oauth_cli_check_flow(const ngx_oauth_flow_t *flow, void *data)
{
    ngx_oauth_cli_t  *cli = data;

    int               rc;
    size_t            plen;
    unsigned char    *plain;
    ngx_oauth_conn_t  row;

    if (flow->verifier.len == 0) {
        return 0;
    }

    cli->flows++;

    plain = malloc(flow->verifier.len);
    if (plain == NULL) {
        cli->error = NGX_OAUTH_NOMEM;
        return 1;
    }

    rc = ngx_oauth_flow_open_verifier(&cli->keyring, flow, plain, &plen);

    if (rc == NGX_OAUTH_OK) {
        ngx_oauth_wipe(plain, plen);
        cli->flows_done++;

    } else {
        memset(&row, 0, sizeof(ngx_oauth_conn_t));
        row.owner = flow->owner;
        row.provider = flow->provider;

        cli->flows_failed++;
        ngx_oauth_cli_failure(&cli->out, &row,
                              ngx_oauth_sealed_name(NGX_OAUTH_SEALED_VERIFIER),
                              rc, &flow->verifier);
    }

    free(plain);

    return cli->out.failed;
}


/*
 * Rotation reads the connections in one read transaction, then re-seals
 * each in a write transaction of its own: nginx waits for a rotation no
 * longer than for one of its own writes.
 */

static int
ngx_oauth_cli_rotate(ngx_oauth_cli_t *cli)
{
    int                      rc;
    size_t                   i, n;
    ngx_oauth_cli_target_t  *t;

    rc = ngx_oauth_cli_each(cli, ngx_oauth_cli_rotate_scan);

    t = (ngx_oauth_cli_target_t *) cli->targets.data;
    n = cli->targets.len / sizeof(ngx_oauth_cli_target_t);

    if (rc == NGX_OAUTH_CLI_ERROR) {
        goto exit;
    }

    if (cli->error != NGX_OAUTH_OK || cli->targets.failed) {
        ngx_oauth_cli_error("rotate: out of memory");
        rc = NGX_OAUTH_CLI_ERROR;
        goto exit;
    }

    for (i = 0; i < n; i++) {
        if (ngx_oauth_cli_rotate_conn(cli, &t[i]) != NGX_OAUTH_OK) {
            rc = NGX_OAUTH_CLI_ERROR;
            goto exit;
        }
    }

    (void) ngx_oauth_buf_add_fmt(&cli->out,
                                 "rotated %zu sealed values in %zu "
                                 "connections to key %s: %zu already under "
                                 "it, %zu failed\n",
                                 cli->done, n, cli->keyring.keys[0].kid,
                                 cli->current, cli->failed);

    /* flows under way too, so that they finish after the old key goes */

    if (ngx_oauth_store_flow_rewrite(cli->store, ngx_oauth_cli_rotate_flow,
                                     cli)
        != NGX_OAUTH_OK)
    {
        free(cli->resealed);
        cli->resealed = NULL;
        ngx_oauth_cli_error("rotate: flows: %s",
                            ngx_oauth_store_error(cli->store));
        rc = NGX_OAUTH_CLI_ERROR;
        goto exit;
    }

    free(cli->resealed);
    cli->resealed = NULL;

    if (cli->flows) {
        (void) ngx_oauth_buf_add_fmt(&cli->out,
                                     "rotated %zu PKCE verifiers of flows "
                                     "under way, %zu failed\n",
                                     cli->flows_done, cli->flows_failed);
    }

    if (rc == NGX_OAUTH_CLI_OK && (cli->failed || cli->flows_failed)) {
        rc = NGX_OAUTH_CLI_PROBLEMS;
    }

exit:

    for (i = 0; i < n; i++) {
        free(t[i].mem);
    }

    return rc;
}


/* called inside the store's write transaction: crypto only, no I/O */

static int
ngx_oauth_cli_rotate_flow(ngx_oauth_flow_t *flow, void *data)
{
    ngx_oauth_cli_t  *cli = data;

    int               rc;
    size_t            plen, slen;
    unsigned char    *plain, *sealed;

    if (flow->verifier.len == 0
        || ngx_oauth_cli_is_active(cli, &flow->verifier))
    {
        return 0;
    }

    cli->flows++;

    plain = malloc(flow->verifier.len);
    if (plain == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    rc = ngx_oauth_flow_open_verifier(&cli->keyring, flow, plain, &plen);

    if (rc != NGX_OAUTH_OK) {
        free(plain);
        cli->flows_failed++;
        return 0;
    }

    slen = ngx_oauth_sealed_size(&cli->keyring, plen);

    sealed = malloc(slen);
    if (sealed == NULL) {
        ngx_oauth_wipe(plain, plen);
        free(plain);
        return NGX_OAUTH_NOMEM;
    }

    /* the same binding again (state NULL): the flow keeps its key */

    rc = ngx_oauth_flow_seal_verifier(&cli->keyring, flow, NULL, 0, plain,
                                      plen, sealed, &slen);

    ngx_oauth_wipe(plain, plen);
    free(plain);

    if (rc != NGX_OAUTH_OK) {
        free(sealed);
        return rc < 0 ? rc : NGX_OAUTH_ERROR;
    }

    /* the previous flow's bytes were copied by the encoder already */

    free(cli->resealed);
    cli->resealed = sealed;

    flow->verifier.data = sealed;
    flow->verifier.len = slen;
    cli->flows_done++;

    return 1;
}


/* notes the connections with a value not sealed under the active key */

static int
ngx_oauth_cli_rotate_scan(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_oauth_cli_t  *cli = data;

    size_t                  current, sealed;
    unsigned char          *p;
    ngx_oauth_sealed_e      f;
    const ngx_oauth_str_t  *s;
    ngx_oauth_cli_target_t  t;

    current = 0;
    sealed = 0;

    for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {
        s = ngx_oauth_conn_sealed(conn, f);

        if (s->len) {
            sealed++;
            current += ngx_oauth_cli_is_active(cli, s);
        }
    }

    if (current == sealed) {
        cli->current += current;
        return 0;
    }

    /* the strings live as long as the transaction: they are copied */

    p = malloc(conn->owner.len + conn->provider.len + conn->account.len);
    if (p == NULL) {
        cli->error = NGX_OAUTH_NOMEM;
        return 1;
    }

    t.mem = p;

    t.owner.len = conn->owner.len;
    t.owner.data = memcpy(p, conn->owner.data, conn->owner.len);
    p += conn->owner.len;

    t.provider.len = conn->provider.len;
    t.provider.data = memcpy(p, conn->provider.data, conn->provider.len);
    p += conn->provider.len;

    t.account.len = conn->account.len;
    t.account.data = memcpy(p, conn->account.data, conn->account.len);

    if (ngx_oauth_buf_add(&cli->targets, &t, sizeof(ngx_oauth_cli_target_t))
        != NGX_OAUTH_OK)
    {
        free(t.mem);
        return 1;
    }

    return 0;
}



/*
 * Re-seals what needs it and puts the record back if nobody changed it
 * since it was read; a record nginx changed meanwhile (a refresh) is read
 * again.  Anything but NGX_OAUTH_OK means the store or the process failed:
 * values that do not open are counted and reported, not errors.
 */

static int
ngx_oauth_cli_rotate_conn(ngx_oauth_cli_t *cli,
    const ngx_oauth_cli_target_t *t)
{
    int                    rc;
    size_t                 tries;
    ngx_oauth_buf_t        report;
    ngx_oauth_str_t        sealed[NGX_OAUTH_SEALED_CONN_FIELDS];
    ngx_oauth_conn_t       conn, rec;
    ngx_oauth_sealed_e     f;
    ngx_oauth_cli_count_t  n;

    memset(&report, 0, sizeof(ngx_oauth_buf_t));

    for (tries = 1; /* void */ ; tries++) {

        rc = ngx_oauth_store_conn_get(cli->store, &t->owner, &t->provider,
                                      &t->account, &conn);

        if (rc == NGX_OAUTH_NOT_FOUND) {
            /* disconnected meanwhile: nothing is left to rotate */
            rc = NGX_OAUTH_OK;
            goto exit;
        }

        if (rc != NGX_OAUTH_OK) {
            ngx_oauth_cli_error("rotate: %s",
                                ngx_oauth_store_error(cli->store));
            goto exit;
        }

        ngx_oauth_buf_reset(&report);
        memset(sealed, 0, sizeof(sealed));

        rc = ngx_oauth_cli_reseal_conn(cli, &conn, &rec, sealed, &report, &n);

        if (rc == NGX_OAUTH_OK && n.done) {
            rc = ngx_oauth_store_conn_put(cli->store, &rec, &conn.version);

            if (rc != NGX_OAUTH_OK && rc != NGX_OAUTH_CONFLICT) {
                ngx_oauth_cli_error("rotate: %s",
                                    ngx_oauth_store_error(cli->store));
            }
        }

        for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {
            free(sealed[f].data);
        }

        if (rc != NGX_OAUTH_CONFLICT || tries == NGX_OAUTH_CLI_RETRIES) {
            break;
        }

        ngx_oauth_conn_free(&conn);
    }

    if (rc == NGX_OAUTH_CONFLICT) {
        /* still changing under nginx: the next run will catch it */
        ngx_oauth_buf_reset(&report);
        ngx_oauth_cli_failure(&report, &conn, "-", rc, NULL);
        n.failed += n.done;
        n.done = 0;
        rc = NGX_OAUTH_OK;
    }

    ngx_oauth_conn_free(&conn);

    if (rc == NGX_OAUTH_OK) {
        cli->done += n.done;
        cli->current += n.current;
        cli->failed += n.failed;
        (void) ngx_oauth_buf_add(&cli->out, report.data, report.len);
    }

exit:

    ngx_oauth_buf_free(&report);

    return rc;
}


/*
 * rec: conn with each value that needs it re-sealed into sealed[]; a
 * value that does not open stays as it is and goes into the report.
 */

static int
ngx_oauth_cli_reseal_conn(ngx_oauth_cli_t *cli, ngx_oauth_conn_t *conn,
    ngx_oauth_conn_t *rec, ngx_oauth_str_t *sealed, ngx_oauth_buf_t *report,
    ngx_oauth_cli_count_t *n)
{
    int                 rc;
    ngx_oauth_sealed_e  f;

    *rec = *conn;
    n->done = 0;
    n->current = 0;
    n->failed = 0;

    for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {

        if (ngx_oauth_conn_sealed(conn, f)->len == 0) {
            continue;
        }

        rc = ngx_oauth_cli_reseal(cli, conn, f, &sealed[f]);

        if (rc == NGX_OAUTH_OK) {
            if (sealed[f].len == 0) {
                n->current++;

            } else {
                *ngx_oauth_conn_sealed(rec, f) = sealed[f];
                n->done++;
            }

            continue;
        }

        if (rc == NGX_OAUTH_NOMEM || rc == NGX_OAUTH_ERROR) {
            ngx_oauth_cli_error("rotate: %s", ngx_oauth_strerror(rc));
            return rc;
        }

        /* left as it is: check will keep reporting it */

        n->failed++;
        ngx_oauth_cli_failure(report, conn, ngx_oauth_sealed_name(f), rc,
                              ngx_oauth_conn_sealed(conn, f));
    }

    return NGX_OAUTH_OK;
}


/* out gets a value sealed under the active key, or stays empty if it was */

static int
ngx_oauth_cli_reseal(ngx_oauth_cli_t *cli, const ngx_oauth_conn_t *conn,
    ngx_oauth_sealed_e f, ngx_oauth_str_t *out)
{
    int                     rc;
    size_t                  plen;
    unsigned char          *plain, *p;
    const ngx_oauth_str_t  *s;

    s = ngx_oauth_conn_sealed(conn, f);

    if (ngx_oauth_cli_is_active(cli, s)) {
        return NGX_OAUTH_OK;
    }

    rc = ngx_oauth_cli_open_value(cli, conn, f, &plain, &plen);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    p = malloc(ngx_oauth_sealed_size(&cli->keyring, plen));
    if (p == NULL) {
        rc = NGX_OAUTH_NOMEM;
        goto exit;
    }

    rc = ngx_oauth_conn_seal(&cli->keyring, conn, f, plain, plen, p,
                             &out->len);
    if (rc != NGX_OAUTH_OK) {
        free(p);
        goto exit;
    }

    out->data = p;

exit:

    ngx_oauth_wipe(plain, s->len);
    free(plain);

    return rc;
}


static int
ngx_oauth_cli_purge(ngx_oauth_cli_t *cli)
{
    size_t  n;

    if (ngx_oauth_store_flow_purge(cli->store, time(NULL), &n)
        != NGX_OAUTH_OK)
    {
        ngx_oauth_cli_error("purge: %s", ngx_oauth_store_error(cli->store));
        return NGX_OAUTH_CLI_ERROR;
    }

    (void) ngx_oauth_buf_add_fmt(&cli->out, "purged %zu expired flows\n", n);

    return NGX_OAUTH_CLI_OK;
}


static int
ngx_oauth_cli_backup(ngx_oauth_cli_t *cli)
{
    const char   *dest;
    struct stat   sb;

    dest = cli->args[0];

    /* the copy refuses an existing file too (O_EXCL): this says why */

    if (lstat(dest, &sb) == 0) {
        ngx_oauth_cli_error("backup: \"%s\" exists, refused", dest);
        return NGX_OAUTH_CLI_ERROR;
    }

    if (errno != ENOENT) {
        ngx_oauth_cli_error("backup: cannot use \"%s\": %s", dest,
                            strerror(errno));
        return NGX_OAUTH_CLI_ERROR;
    }

    if (ngx_oauth_store_copy(cli->store, dest) != NGX_OAUTH_OK) {
        ngx_oauth_cli_error("backup: %s", ngx_oauth_store_error(cli->store));
        return NGX_OAUTH_CLI_ERROR;
    }

    (void) ngx_oauth_buf_add_fmt(&cli->out, "backup of \"%s\" written to "
                                 "\"%s\"\n", cli->store_path, dest);

    return NGX_OAUTH_CLI_OK;
}


/* the outbox: what each event says and when it is tried next */

static int
ngx_oauth_cli_events(ngx_oauth_cli_t *cli)
{
    int  rc;

    (void) ngx_oauth_buf_add_cstr(&cli->out, cli->json
        ? "["
        : "seq\tid\ttype\towner\tprovider\taccount\tcreated\tattempts"
          "\tnext_at\n");

    rc = ngx_oauth_store_outbox_each(cli->store, ngx_oauth_cli_events_row,
                                     cli);

    if (cli->json) {
        (void) ngx_oauth_buf_add_cstr(&cli->out, cli->conns ? "\n]\n"
                                                            : "]\n");
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_oauth_cli_error("events: %s", ngx_oauth_store_error(cli->store));
        return NGX_OAUTH_CLI_ERROR;
    }

    if (cli->out.failed) {
        ngx_oauth_cli_error("events: out of memory");
        return NGX_OAUTH_CLI_ERROR;
    }

    return NGX_OAUTH_CLI_OK;
}


static int
ngx_oauth_cli_events_row(const ngx_oauth_outbox_rec_t *rec, void *data)
{
    ngx_oauth_cli_t  *cli = data;

    ngx_oauth_buf_t  *b;

    if ((cli->owner != NULL
         && (rec->owner.len != strlen(cli->owner)
             || memcmp(rec->owner.data, cli->owner, rec->owner.len)))
        || (cli->provider != NULL
            && (rec->provider.len != strlen(cli->provider)
                || memcmp(rec->provider.data, cli->provider,
                          rec->provider.len))))
    {
        return 0;
    }

    b = &cli->out;

    if (cli->json) {
        /* the body is the event as sent: JSON already */

        (void) ngx_oauth_buf_add_fmt(b, "%s\n{\"seq\":%llu,\"attempts\":%u,"
                                     "\"next_at\":", cli->conns ? "," : "",
                                     (unsigned long long) rec->seq,
                                     (unsigned) rec->attempts);
        ngx_oauth_cli_add_time(b, rec->next_at, 1);
        (void) ngx_oauth_buf_add_cstr(b, ",\"event\":");
        (void) ngx_oauth_buf_add(b, rec->body.data, rec->body.len);
        (void) ngx_oauth_buf_add_byte(b, '}');

    } else {
        (void) ngx_oauth_buf_add_fmt(b, "%llu\t",
                                     (unsigned long long) rec->seq);
        ngx_oauth_cli_add_text(b, rec->id.data, rec->id.len);
        (void) ngx_oauth_buf_add_byte(b, '\t');
        ngx_oauth_cli_add_text(b, rec->type.data, rec->type.len);
        (void) ngx_oauth_buf_add_byte(b, '\t');
        ngx_oauth_cli_add_who(b, &rec->owner, &rec->provider, &rec->account);
        (void) ngx_oauth_buf_add_byte(b, '\t');
        ngx_oauth_cli_add_time(b, rec->created, 0);
        (void) ngx_oauth_buf_add_fmt(b, "\t%u\t", (unsigned) rec->attempts);
        ngx_oauth_cli_add_time(b, rec->next_at, 0);
        (void) ngx_oauth_buf_add_byte(b, '\n');
    }

    cli->conns++;

    return b->failed;
}


static int
ngx_oauth_cli_each(ngx_oauth_cli_t *cli, ngx_oauth_conn_iter_pt iter)
{
    int              rc;
    ngx_oauth_str_t  owner, provider;

    owner.len = (cli->owner != NULL) ? strlen(cli->owner) : 0;
    owner.data = (unsigned char *) cli->owner;
    provider.len = (cli->provider != NULL) ? strlen(cli->provider) : 0;
    provider.data = (unsigned char *) cli->provider;

    rc = ngx_oauth_store_conn_each(cli->store,
                                   (cli->owner != NULL) ? &owner : NULL,
                                   (cli->provider != NULL) ? &provider : NULL,
                                   iter, cli);

    if (rc == NGX_OAUTH_OK) {
        return NGX_OAUTH_CLI_OK;
    }

    ngx_oauth_cli_error("%s: %s", cli->command,
                        ngx_oauth_store_error(cli->store));

    /* records that do not decode are a finding; the rest is a failure */

    return (rc == NGX_OAUTH_INVALID) ? NGX_OAUTH_CLI_PROBLEMS
                                     : NGX_OAUTH_CLI_ERROR;
}


/* *plain is allocated and holds the value: the caller wipes and frees it */

static int
ngx_oauth_cli_open_value(ngx_oauth_cli_t *cli, const ngx_oauth_conn_t *conn,
    ngx_oauth_sealed_e f, unsigned char **plain, size_t *plen)
{
    int  rc;

    *plain = malloc(ngx_oauth_conn_sealed(conn, f)->len);
    if (*plain == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    /* a failed open wipes whatever it wrote */

    rc = ngx_oauth_conn_open(&cli->keyring, conn, f, *plain, plen);
    if (rc != NGX_OAUTH_OK) {
        free(*plain);
        *plain = NULL;
    }

    return rc;
}


static int
ngx_oauth_cli_is_active(ngx_oauth_cli_t *cli, const ngx_oauth_str_t *sealed)
{
    ngx_oauth_str_t         kid;
    const ngx_oauth_key_t  *active;

    active = &cli->keyring.keys[0];

    return ngx_oauth_sealed_kid(sealed->data, sealed->len, &kid)
           == NGX_OAUTH_OK
           && kid.len == active->kid_len
           && memcmp(kid.data, active->kid, kid.len) == 0;
}


/* "failed OWNER PROVIDER ACCOUNT FIELD ERROR KID": where, never what */

static void
ngx_oauth_cli_failure(ngx_oauth_buf_t *b, const ngx_oauth_conn_t *conn,
    const char *field, int rc, const ngx_oauth_str_t *sealed)
{
    ngx_oauth_str_t  kid;

    (void) ngx_oauth_buf_add_cstr(b, "failed\t");
    ngx_oauth_cli_add_who(b, &conn->owner, &conn->provider, &conn->account);
    (void) ngx_oauth_buf_add_fmt(b, "\t%s\t%s\t", field,
                                 ngx_oauth_strerror(rc));

    if (sealed != NULL
        && ngx_oauth_sealed_kid(sealed->data, sealed->len, &kid)
           == NGX_OAUTH_OK)
    {
        (void) ngx_oauth_buf_add_str(b, &kid);

    } else {
        (void) ngx_oauth_buf_add_byte(b, '-');
    }

    (void) ngx_oauth_buf_add_byte(b, '\n');
}


/* a table cell: one line, one cell, whatever the bytes; empty is "-" */

/* "owner\tprovider\taccount" */

static void
ngx_oauth_cli_add_who(ngx_oauth_buf_t *b, const ngx_oauth_str_t *owner,
    const ngx_oauth_str_t *provider, const ngx_oauth_str_t *account)
{
    ngx_oauth_cli_add_text(b, owner->data, owner->len);
    (void) ngx_oauth_buf_add_byte(b, '\t');
    ngx_oauth_cli_add_text(b, provider->data, provider->len);
    (void) ngx_oauth_buf_add_byte(b, '\t');
    ngx_oauth_cli_add_text(b, account->data, account->len);
}


/*
 * Which key each value needs to open: "access=k1,refresh=k1" ("-" for
 * none, "?" for a value without a readable key id), or in JSON the
 * members "access":"k1" (null for no key id).
 */

static void
ngx_oauth_cli_add_keys(ngx_oauth_buf_t *b, const ngx_oauth_conn_t *conn,
    int json)
{
    size_t                  n;
    ngx_oauth_str_t         kid;
    ngx_oauth_sealed_e      f;
    const ngx_oauth_str_t  *s;

    n = 0;

    for (f = 0; f < NGX_OAUTH_SEALED_CONN_FIELDS; f++) {
        s = ngx_oauth_conn_sealed(conn, f);

        if (s->len == 0) {
            continue;
        }

        (void) ngx_oauth_buf_add_fmt(b, json ? "%s\"%s\":" : "%s%s=",
                                     n++ ? "," : "",
                                     ngx_oauth_sealed_name(f));

        if (ngx_oauth_sealed_kid(s->data, s->len, &kid) != NGX_OAUTH_OK) {
            (void) ngx_oauth_buf_add_cstr(b, json ? "null" : "?");

        } else if (json) {
            ngx_oauth_cli_add_json(b, kid.data, kid.len);

        } else {
            (void) ngx_oauth_buf_add_str(b, &kid);
        }
    }

    if (n == 0 && !json) {
        (void) ngx_oauth_buf_add_byte(b, '-');
    }
}


static void
ngx_oauth_cli_add_text(ngx_oauth_buf_t *b, const void *p, size_t len)
{
    size_t                i;
    unsigned char         c;
    const unsigned char  *s;

    if (len == 0) {
        (void) ngx_oauth_buf_add_byte(b, '-');
        return;
    }

    s = p;

    for (i = 0; i < len; i++) {
        c = s[i];

        if (c < 0x20 || c == 0x7f || c == '\\') {
            (void) ngx_oauth_buf_add_fmt(b, "\\x%02x", c);

        } else {
            (void) ngx_oauth_buf_add_byte(b, c);
        }
    }
}


static void
ngx_oauth_cli_add_json(ngx_oauth_buf_t *b, const void *p, size_t len)
{
    size_t                i;
    unsigned char        *copy;
    const unsigned char  *s;

    if (len == 0) {
        (void) ngx_oauth_buf_add_cstr(b, "\"\"");
        return;
    }

    if (ngx_oauth_json_add_string(b, p, len) != NGX_OAUTH_INVALID) {
        return;
    }

    /* not UTF-8 (an owner is whatever nginx had): bytes above ASCII as ? */

    copy = malloc(len);
    if (copy == NULL) {
        b->failed = 1;
        return;
    }

    s = p;

    for (i = 0; i < len; i++) {
        copy[i] = (s[i] < 0x80) ? s[i] : '?';
    }

    (void) ngx_oauth_json_add_string(b, copy, len);

    free(copy);
}


/* RFC 3339 UTC; 0 means unknown or never */

static void
ngx_oauth_cli_add_time(ngx_oauth_buf_t *b, time_t t, int json)
{
    struct tm  tm;
    char       buf[NGX_OAUTH_CLI_TIME_LEN];

    if (t <= 0
        || gmtime_r(&t, &tm) == NULL
        || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    {
        (void) ngx_oauth_buf_add_cstr(b, json ? "null" : "-");
        return;
    }

    (void) ngx_oauth_buf_add_fmt(b, json ? "\"%s\"" : "%s", buf);
}


/* write(2), not stdio: the buffer is wiped after, stdio's would not be */

static int
ngx_oauth_cli_flush(ngx_oauth_cli_t *cli)
{
    int             rc;
    size_t          len;
    ssize_t         n;
    unsigned char  *p;

    rc = NGX_OAUTH_CLI_OK;
    p = cli->out.data;
    len = cli->out.len;

    while (len) {
        n = write(STDOUT_FILENO, p, len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            ngx_oauth_cli_error("write to stdout failed: %s",
                                strerror(errno));
            rc = NGX_OAUTH_CLI_ERROR;
            break;
        }

        p += n;
        len -= n;
    }

    ngx_oauth_buf_reset(&cli->out);

    return rc;
}


static void
ngx_oauth_cli_usage(FILE *f)
{
    fputs(
"usage: ngx-oauth --store PATH --key-file FILE COMMAND [ARGS]\n"
"       ngx-oauth --shared URL [--password-file FILE] --key-file FILE\n"
"                 check|rotate|backup DEST|restore FILE\n"
"\n"
"commands:\n"
"  keygen [KID]       print a new key line KID:BASE64 (KID: kYYYYMMDD)\n"
"  list [--owner O] [--provider P] [--json]\n"
"                     connections and the key of each sealed value,\n"
"                     never a secret (--key-file not needed)\n"
"  check              open every sealed value with the key ring\n"
"  rotate             re-seal every value under the active (first) key\n"
"  purge              delete expired flows\n"
"  backup DEST        consistent compacted copy of the store to DEST\n"
"  events [--owner O] [--provider P] [--json]\n"
"                     webhook events waiting in the outbox, oldest first\n"
"\n"
"options (before or after the command):\n"
"  --store PATH       the LMDB file of oauth_store\n"
"  --key-file FILE    the key ring of oauth_key_file (mode 0600)\n"
"  --shared URL       postgresql://USER@HOST[:PORT]/DB of\n"
"                     oauth_shared_store: check and rotate its rows,\n"
"                     backup DEST (an LMDB file of the store format),\n"
"                     restore FILE (a backup or a node's store) into it\n"
"  --password-file FILE  the database password, as password_file=\n"
"  -h, --help         this text\n"
"  --version          the version\n"
"\n"
"exit status: 0 ok, 1 check or rotate found problems, 2 usage or\n"
"runtime error, 3 the store or the key file cannot be opened\n", f);
}


static void
ngx_oauth_cli_error(const char *fmt, ...)
{
    va_list  args;

    fputs("ngx-oauth: ", stderr);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}
