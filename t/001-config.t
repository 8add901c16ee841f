# Configuration: every mistake an operator can make in the http-level
# directives and in oauth_provider blocks stops nginx at start-up ("nginx
# -t" time) with a message naming the directive and the file:line; and
# what is valid loads: presets, the operator's catalog, client_secret_file
# (whose secret never shows in "nginx -T"), the defaults (SPEC section 3,
# security-tests.md T22, T48).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use OAuthKit api_prefix => '/api/';

use MIME::Base64 qw(encode_base64);

our $Store = <<'_EOC_';
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
_EOC_

our $Locations = <<'_EOC_';
    oauth_owner $http_x_owner;

    location ~ ^/connect/(?<p>[^/]+)$ {
        oauth_start $p;
    }

    location = /callback {
        oauth_callback;
    }

    location /api/ {
        oauth_api;
    }
_EOC_

# "... in /path/conf/nginx.conf:LINE": where nginx says the mistake is
our $At = qr{ in \S+/nginx\.conf:\d+};

# Key files as operators get them wrong (T48); keys (valid) is OAuthKit's.
sub raw_key { encode_base64(join('', map { chr int rand 256 } 1 .. shift), '') }
write_key_file('keys-two',   'new:' . random_key() . "\nold:" . random_key() . "\n");
write_key_file('keys-group', 'k1:' . random_key() . "\n", 0640);
write_key_file('keys-other', 'k1:' . random_key() . "\n", 0604);
write_key_file('keys-31',    'k1:' . raw_key(31) . "\n");
write_key_file('keys-33',    'k1:' . raw_key(33) . "\n");
write_key_file('keys-64',    'k1:' . raw_key(64) . "\n");
write_key_file('keys-hex',   'k1:' . unpack('H*', join '', map { chr int rand 256 } 1 .. 32) . "\n");
write_key_file('keys-dup',   'k1:' . random_key() . "\nk1:" . random_key() . "\n");
write_key_file('keys-empty', '');
write_key_file('keys-blank', "\n\n");
write_key_file('keys-nokid', random_key() . "\n");
mkdir oauth_dir() . '/keys-dir', 0700;

our $Secret = 'file-secret-' . join '', map { ('a' .. 'z')[rand 26] } 1 .. 12;
write_key_file('secret', "$Secret\n");
write_key_file('secret-empty', '');
write_key_file('secret-lines', "one\ntwo\n");
write_key_file('secret-open', "$Secret\n", 0644);

write_key_file('catalog.json', <<'_EOJ_');
{
    "acme": {
        "display_name": "Acme",
        "authorization_url": "https://login.acme.example/authorize",
        "token_url": "https://login.acme.example/token",
        "account_id": "account.id",
        "scope": ["read", "write"],
        "scope_separator": "+",
        "pkce": false
    },
    "github": {
        "authorization_url": "https://github.example/login/oauth/authorize",
        "token_url": "https://github.example/login/oauth/access_token",
        "account_id": "id"
    }
}
_EOJ_
write_key_file('catalog-bad.json', '{"acme": ');

# presets are as strict as the block: a value the module does not know fails
for my $bad (['kind', '"kind": "oauth3"'],
             ['auth', '"token_auth": "form"'],
             ['pattern', '"connection_params": [{"name": "shop", "pattern": "^([a-z$"}]'],
             ['type', '"pkce": "yes"'],
             ['header', '"token_header": {"name": "X Key", "prefix": ""}'],
             ['http', '"userinfo_url": "http://login.acme.example/me"'])
{
    write_key_file("catalog-$bad->[0].json", <<"_EOJ_");
{
    "acme": {
        "authorization_url": "https://login.acme.example/authorize",
        "token_url": "https://login.acme.example/token",
        "account_id": "account.id",
        $bad->[1]
    }
}
_EOJ_
}

sub nginx_dump {
    my $bin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $root = server_root();
    my $out = `$bin -T -p $root/ -c $root/conf/nginx.conf -e $root/logs/dump-error.log 2>&1`;
    return ($? >> 8, $out);
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: oauth_store is required once another oauth_ directive is used
--- http_config
    oauth_key_file   $TEST_NGINX_OAUTH_DIR/keys;
    oauth_state_ttl  5m;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_store" is required when other oauth_ directives are used$::At/



=== TEST 2: a provider block alone needs the store too
--- http_config
    oauth_provider demo {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         id;
    }
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_store" is required when other oauth_ directives are used$::At/



=== TEST 3: oauth_key_file is required with oauth_store
--- http_config
    oauth_store  $TEST_NGINX_OAUTH_DIR/store.mdb;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_key_file" is required with "oauth_store"$::At/



=== TEST 4: key file missing
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/no-such-keys;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_key_file" "\S+no-such-keys": cannot open key file .*No such file or directory$::At/



=== TEST 5: key file readable by the group
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-group;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_key_file" "\S+keys-group": key file "\S+" is accessible by group or others \(mode 0640\)[^\n]*$::At/



=== TEST 6: key file readable by others
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-other;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-other": .*mode 0604[^\n]*$::At/



=== TEST 7: a 31-byte key
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-31;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-31": .*line 1: key must be 32 bytes[^\n]*$::At/



=== TEST 8: 33-byte key
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-33;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-33": .*key must be 32 bytes[^\n]*$::At/



=== TEST 9: 64-byte key
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-64;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-64": .*key must be 32 bytes[^\n]*$::At/



=== TEST 10: a hex key is not the base64 the format asks for
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-hex;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-hex": .*line 1: key (?:must be 32 bytes|is not valid base64)[^\n]*$::At/



=== TEST 11: duplicate key ids
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-dup;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-dup": .*line 2: duplicate key id "k1"[^\n]*$::At/



=== TEST 12: empty key file
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-empty;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-empty": .*no key found[^\n]*$::At/



=== TEST 13: key file of blank lines
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-blank;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-blank": .*no key found[^\n]*$::At/



=== TEST 14: a key without its id
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-nokid;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-nokid": .*line 1: expected KID:BASE64[^\n]*$::At/



=== TEST 15: a directory is not a key file
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-dir;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"oauth_key_file" "\S+keys-dir": .*not a regular file[^\n]*$::At/



=== TEST 16: unknown preset
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider google {
        preset        gogle;
        client_id     c;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown preset "gogle" in oauth_provider "google"$::At/



=== TEST 17: missing client_id
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider github {
        preset        github;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "github"$::At needs "client_id"/



=== TEST 18: missing redirect_uri
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider github {
        preset     github;
        client_id  c;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "github"$::At needs "redirect_uri"/



=== TEST 19: missing token_url and account_id without a preset
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider bare {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "bare"$::At needs "token_url"/



=== TEST 20: http:// endpoint to a host that is not loopback
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider demo {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://auth.example/token;
        account_id         id;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid "token_url" "http:\/\/auth\.example\/token" in oauth_provider "demo": http:\/\/ is only allowed with a loopback host$::At/



=== TEST 21: a look-alike of loopback is not loopback
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider demo {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        userinfo_url       http://127.0.0.1.evil.example/me;
        account_id         id;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/invalid "userinfo_url" "http:\/\/127\.0\.0\.1\.evil\.example\/me" in oauth_provider "demo": http:\/\/ is only allowed with a loopback host$::At/



=== TEST 22: an endpoint that overrides a preset's is checked too (ftp://)
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset        github;
        client_id     c;
        redirect_uri  https://app.example/callback;
        revocation_url  ftp://github.example/revoke;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/invalid "revocation_url" "ftp:\/\/github\.example\/revoke" in oauth_provider "gh": [^\n]*$::At/



=== TEST 23: redirect_uri must be absolute
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider demo {
        client_id          c;
        redirect_uri       /callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         id;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"redirect_uri" "\/callback" of oauth_provider "demo" must be an absolute https:\/\/ URL$::At/



=== TEST 24: redirect_uri takes no placeholder
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider demo {
        client_id          c;
        redirect_uri       "https://{shop}.app.example/callback";
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         id;
        connection_param   shop;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/invalid "redirect_uri" "https:\/\/\{shop\}\.app\.example\/callback" in oauth_provider "demo": [^\n]*$::At/



=== TEST 25: a placeholder that names no connection_param
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider demo {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  "https://{shopp}.shops.example/authorize";
        token_url          "https://{shop}.shops.example/token";
        account_id         id;
        connection_param   shop required;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "demo"$::At: "authorization_url" uses "\{shopp\}", which is not a connection_param/



=== TEST 26: oauth_store given twice
--- http_config eval
$::Store . <<'_EOC_'
    oauth_store  $TEST_NGINX_OAUTH_DIR/store2.mdb;
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_store" directive is duplicate$::At/



=== TEST 27: oauth_key_file given twice
--- http_config eval
$::Store . <<'_EOC_'
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-two;
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_key_file" directive is duplicate$::At/



=== TEST 28: oauth_state_ttl given twice
--- http_config eval
$::Store . <<'_EOC_'
    oauth_state_ttl  5m;
    oauth_state_ttl  10m;
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_state_ttl" directive is duplicate$::At/



=== TEST 29: the same provider twice
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset        github;
        client_id     c;
        redirect_uri  https://app.example/callback;
    }
    oauth_provider gh {
        preset        github;
        client_id     d;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate oauth_provider "gh"$::At/



=== TEST 30: client_id twice in a provider
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset        github;
        client_id     c;
        client_id     d;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"client_id" is duplicate in oauth_provider "gh"$::At/



=== TEST 31: scope twice in a provider
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset        github;
        client_id     c;
        redirect_uri  https://app.example/callback;
        scope         a;
        scope         b;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"scope" is duplicate in oauth_provider "gh"$::At/



=== TEST 32: oauth_owner twice in a location
--- http_config eval: $::Store
--- config
    location = /t {
        oauth_owner $http_x_owner;
        oauth_owner $remote_user;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_owner" directive is duplicate$::At/



=== TEST 33: oauth_allowed_origins: a path is not an origin
--- http_config eval: $::Store
--- config
    oauth_allowed_origins https://app.example https://admin.example/settings;
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid origin "https:\/\/admin\.example\/settings" in "oauth_allowed_origins": expected scheme:\/\/host\[:port\]$::At/



=== TEST 34: oauth_allowed_origins: no scheme
--- http_config eval: $::Store
--- config
    oauth_allowed_origins app.example;
--- must_die
--- error_log eval
qr/invalid origin "app\.example" in "oauth_allowed_origins"[^\n]*$::At/



=== TEST 35: oauth_allowed_origins: userinfo
--- http_config eval: $::Store
--- config
    oauth_allowed_origins https://user@app.example;
--- must_die
--- error_log eval
qr/invalid origin "https:\/\/user\@app\.example" in "oauth_allowed_origins"[^\n]*$::At/



=== TEST 36: oauth_allowed_origins: a wildcard is not an origin
--- http_config eval: $::Store
--- config
    oauth_allowed_origins https://*.app.example;
--- must_die
--- error_log eval
qr/invalid origin "https:\/\/\*\.app\.example" in "oauth_allowed_origins"[^\n]*$::At/



=== TEST 37: oauth_allowed_origins: another scheme
--- http_config eval: $::Store
--- config
    oauth_allowed_origins javascript://app.example;
--- must_die
--- error_log eval
qr/invalid origin "javascript:\/\/app\.example" in "oauth_allowed_origins"[^\n]*$::At/



=== TEST 38: a connection_param pattern that is not a regular expression
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider shop {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  "https://{shop}.shops.example/authorize";
        token_url          "https://{shop}.shops.example/token";
        account_id         id;
        connection_param   shop required "pattern=^([a-z$";
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid pattern "\^\(\[a-z\$" in "connection_param" "shop": [^\n]*$::At/



=== TEST 39: an empty pattern
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider shop {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://shops.example/authorize;
        token_url          https://shops.example/token;
        account_id         id;
        connection_param   shop pattern=;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/invalid pattern "" in "connection_param" "shop": empty pattern$::At/



=== TEST 40: client_secret and client_secret_file together
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset              github;
        client_id           c;
        client_secret       inline-secret;
        client_secret_file  $TEST_NGINX_OAUTH_DIR/secret;
        redirect_uri        https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"client_secret" and "client_secret_file" are mutually exclusive in oauth_provider "gh"$::At/



=== TEST 41: client_secret_file and client_secret together, the other order
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset              github;
        client_id           c;
        client_secret_file  $TEST_NGINX_OAUTH_DIR/secret;
        client_secret       inline-secret;
        redirect_uri        https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"client_secret" and "client_secret_file" are mutually exclusive in oauth_provider "gh"$::At/



=== TEST 42: client_secret_file missing
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset              github;
        client_id           c;
        client_secret_file  $TEST_NGINX_OAUTH_DIR/no-such-secret;
        redirect_uri        https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*open\(\) "\S+no-such-secret" failed \(2: No such file or directory\)$::At/



=== TEST 43: empty client_secret_file
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset              github;
        client_id           c;
        client_secret_file  $TEST_NGINX_OAUTH_DIR/secret-empty;
        redirect_uri        https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"\S+secret-empty" must hold 1 to \d+ bytes$::At/



=== TEST 44: client_secret_file of two lines
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset              github;
        client_id           c;
        client_secret_file  $TEST_NGINX_OAUTH_DIR/secret-lines;
        redirect_uri        https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/"\S+secret-lines" must hold the secret on one line$::At/



=== TEST 45: unknown directive inside oauth_provider
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset        github;
        client_id     c;
        redirect_uri  https://app.example/callback;
        client_scret  oops;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown directive "client_scret" in oauth_provider "gh"$::At/



=== TEST 46: a bad pkce value
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset        github;
        client_id     c;
        redirect_uri  https://app.example/callback;
        pkce          yes;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid value "yes" in "pkce" directive, it must be "on" or "off"$::At/



=== TEST 47: a bad token_auth value
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset        github;
        client_id     c;
        redirect_uri  https://app.example/callback;
        token_auth    jwt;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/invalid value "jwt" in "token_auth" of oauth_provider "gh"$::At/



=== TEST 48: max_size that is not a size
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb max_size=lots;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid max_size "lots" in "oauth_store", at least 64k$::At/



=== TEST 49: max_size too small for LMDB
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb max_size=16k;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/invalid max_size "16k" in "oauth_store", at least 64k$::At/



=== TEST 50: an unknown oauth_store parameter
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb sync=maybe;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "sync=maybe" in "oauth_store"$::At/



=== TEST 51: oauth_state_ttl 0s is out of range
--- http_config eval
$::Store . <<'_EOC_'
    oauth_state_ttl  0s;
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_state_ttl" directive must be between 1s and 365d$::At/



=== TEST 52: oauth_http_timeout 0
--- http_config eval
$::Store . <<'_EOC_'
    oauth_http_timeout  0;
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_http_timeout" directive must not be zero$::At/



=== TEST 53: an operator catalog that is not JSON
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider_catalog  $TEST_NGINX_OAUTH_DIR/catalog-bad.json;
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_provider_catalog" "\S+catalog-bad\.json": /



=== TEST 54: directives where they do not belong
--- http_config eval: $::Store
--- config
    location = /t {
        oauth_state_ttl 5m;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_state_ttl" directive is not allowed here$::At/



=== TEST 55: presets load: github with its scope and endpoints; shopify with its required shop
--- log_level: info
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider github {
        preset         github;
        client_id      gh-client;
        client_secret  gh-secret;
        redirect_uri   https://app.example/callback;
    }

    oauth_provider shopify {
        preset         shopify;
        client_id      shop-client;
        client_secret  shop-secret;
        redirect_uri   https://app.example/callback;
        scope          read_products write_orders;
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my $f = start_flow(uri => '/connect/github', owner => 'alice');
like($f->{location}, qr{^https://github\.com/login/oauth/authorize\?response_type=code&client_id=gh-client&redirect_uri=https%3A%2F%2Fapp\.example%2Fcallback&scope=read%3Auser&state=[^&]{43}&code_challenge=[^&]{43}&code_challenge_method=S256$},
     'github: the preset endpoint, scope and PKCE');
$f = start_flow(uri => '/connect/shopify?shop=acme-store', owner => 'alice');
like($f->{location}, qr{^https://acme-store\.myshopify\.com/admin/oauth/authorize\?response_type=code&client_id=shop-client&redirect_uri=[^&]+&scope=read_products%2Cwrite_orders&state=[^&]{43}$},
     'shopify: the shop in the host, "," between scopes, no PKCE');
for my $bad ('', 'shop=', 'shop=evil.example%2Fx', 'shop=-acme', 'shop=a&shop=b') {
    is(http_get("/connect/shopify?$bad", 'X-Owner' => 'alice')->{status}, 400,
       "shopify: '$bad' refused");
}
--- request
GET /api/providers
--- more_headers
X-Owner: alice
--- response_body_like: ^\[\{"name":"github","display_name":"GitHub","kind":"oauth2",.*\{"name":"shopify","display_name":"Shopify","kind":"oauth2","connection_params":\[\{"name":"shop","required":true\}\]
--- no_error_log
[emerg]
[error]
[warn]



=== TEST 56: client_secret_file is read and used, and "nginx -T" never shows the secret
--- http_config eval
$::Store . <<'_EOC_'
    log_format as '$request_method $uri auth=[$http_authorization] body=[$request_body]';

    oauth_provider demo {
        client_id           demo-client;
        client_secret_file  $TEST_NGINX_OAUTH_DIR/secret;
        redirect_uri        https://app.example/callback;
        authorization_url   https://auth.example/authorize;
        token_url           http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id          user.id;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log $TEST_NGINX_OAUTH_DIR/as.log as;
        default_type application/json;

        location = /token {
            echo_read_request_body;
            echo '{"access_token":"AT","user":{"id":"u-1"}}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow();
is($r->{status}, 'connected', 'a flow with the secret from the file');
is(as_requests()->[0]{auth}, 'Basic ' . encode_base64("demo-client:$::Secret", ''),
   'the file\'s secret, without its newline, authenticates the client');
my ($rc, $out) = nginx_dump();
is($rc, 0, 'nginx -T accepts the configuration') or diag $out;
like($out, qr/client_secret_file\s+\S+\/secret;/, 'the dump shows the file name');
unlike($out, qr/\Q$::Secret\E/, 'but not the secret');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"u-1"
--- no_error_log eval
qr/file-secret-/



=== TEST 57: the defaults: 10m flows, PKCE S256, " " between scopes, Basic client auth
--- http_config eval
$::Store . <<'_EOC_'
    log_format as '$request_method $uri auth=[$http_authorization] body=[$request_body]';

    oauth_provider demo {
        client_id          demo-client;
        client_secret      demo-secret;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
        scope              one two;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log $TEST_NGINX_OAUTH_DIR/as.log as;
        default_type application/json;

        location = /token {
            echo_read_request_body;
            echo '{"access_token":"AT","user":{"id":"u-1"}}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my $f = start_flow(owner => 'alice');
like($f->{res}{headers}{'set-cookie'}, qr/; Max-Age=600;/, 'flows live 10 minutes');
is($f->{q}{code_challenge_method}, 'S256', 'PKCE S256');
is($f->{q}{scope}, 'one two', 'scopes joined by a space');
my $r = flow_result(callback($f));
is($r->{status}, 'connected', 'connected');
my $t = as_requests()->[0];
is($t->{auth}, 'Basic ' . encode_base64('demo-client:demo-secret', ''), 'client_secret_basic');
ok($t->{form}{code_verifier}, 'with the verifier');
--- request
GET /api/providers
--- more_headers
X-Owner: alice
--- response_body_like: ^\[\{"name":"demo","display_name":"demo","kind":"oauth2","connection_params":\[\],"connected":1,"circuit":"closed"\}\]



=== TEST 58: loopback http:// endpoints are accepted (127.0.0.0/8, localhost, [::1]); two keys load
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb max_size=256k sync=off;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys-two;
    oauth_state_ttl 2m;
    oauth_refresh_ahead 1m;
    oauth_http_timeout 3s;
    oauth_background_refresh off;
    oauth_audit_log off;

    oauth_provider local {
        client_id          c;
        redirect_uri       http://127.0.0.1/callback;
        authorization_url  http://localhost:8080/authorize;
        token_url          http://127.1.2.3:9/token;
        userinfo_url       http://[::1]:9/me;
        revocation_url     https://auth.example/revoke;
        api_base_url       http://localhost/api;
        account_id         sub;
    }
--- config eval: $::Locations
--- request
GET /connect/local
--- more_headers
X-Owner: alice
--- error_code: 302
--- response_headers_like
Location: ^http://localhost:8080/authorize\?response_type=code&client_id=c&redirect_uri=http%3A%2F%2F127\.0\.0\.1%2Fcallback&state=.*
Set-Cookie: .*; Max-Age=120; .*
--- no_error_log
[emerg]
[error]



=== TEST 59: an operator catalog adds presets and overrides built-in ones
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider_catalog  $TEST_NGINX_OAUTH_DIR/catalog.json;

    oauth_provider acme {
        preset        acme;
        client_id     acme-client;
        redirect_uri  https://app.example/callback;
    }

    oauth_provider gh {
        preset        github;
        client_id     gh-client;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my $f = start_flow(uri => '/connect/acme', owner => 'alice');
like($f->{location}, qr{^https://login\.acme\.example/authorize\?response_type=code&client_id=acme-client&redirect_uri=[^&]+&scope=read%2Bwrite&state=[^&]{43}$},
     'the added preset: endpoint, scope separator, no PKCE');
$f = start_flow(uri => '/connect/gh', owner => 'alice');
like($f->{location}, qr{^https://github\.example/login/oauth/authorize\?}, 'the overridden preset');
--- request
GET /api/providers
--- more_headers
X-Owner: alice
--- response_body_like: "name":"acme","display_name":"Acme"



=== TEST 60: a catalog preset with an unknown kind
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider_catalog  $TEST_NGINX_OAUTH_DIR/catalog-kind.json;

    oauth_provider acme {
        preset        acme;
        client_id     acme-client;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_provider_catalog" "\S+catalog-kind\.json": preset "acme": "kind" must be "oauth2", "api_key", "basic", "header" or "aws_sigv4"$/



=== TEST 61: a catalog preset with an unknown token_auth
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider_catalog  $TEST_NGINX_OAUTH_DIR/catalog-auth.json;

    oauth_provider acme {
        preset        acme;
        client_id     acme-client;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_provider_catalog" "\S+catalog-auth\.json": preset "acme": "token_auth" must be "basic" or "post"$/



=== TEST 62: a catalog preset whose connection_param pattern is not a regular expression
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider_catalog  $TEST_NGINX_OAUTH_DIR/catalog-pattern.json;

    oauth_provider acme {
        preset        acme;
        client_id     acme-client;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_provider_catalog" "\S+catalog-pattern\.json": preset "acme": "connection_params" must be an array of [^\n]* a pattern that compiles$/



=== TEST 63: a client_secret_file others may read
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider gh {
        preset              github;
        client_id           c;
        client_secret_file  $TEST_NGINX_OAUTH_DIR/secret-open;
        redirect_uri        https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"\S+secret-open" must not be accessible to others \(mode 0600 or 0640\)$::At/



=== TEST 64: a catalog preset with a value of the wrong type names the preset and the key
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider_catalog  $TEST_NGINX_OAUTH_DIR/catalog-type.json;

    oauth_provider acme {
        preset        acme;
        client_id     acme-client;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_provider_catalog" "\S+catalog-type\.json": preset "acme": "pkce" must be true or false$/



=== TEST 65: a preset's value goes through the block's setter: a header name the block refuses
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider_catalog  $TEST_NGINX_OAUTH_DIR/catalog-header.json;

    oauth_provider acme {
        preset        acme;
        client_id     acme-client;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid value "X Key" in "token_header" of oauth_provider "acme"$::At while setting "token_header" of preset "acme"$/



=== TEST 66: a preset's endpoint is checked as the block's, naming the preset and the key
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider_catalog  $TEST_NGINX_OAUTH_DIR/catalog-http.json;

    oauth_provider acme {
        preset        acme;
        client_id     acme-client;
        redirect_uri  https://app.example/callback;
    }
_EOC_
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid "userinfo_url" "http:\/\/login\.acme\.example\/me" in oauth_provider "acme": http:\/\/ is only allowed with a loopback host$::At while setting "userinfo_url" of preset "acme"$/



=== TEST 67: connection_param strip_suffix= in the block, as presets have it
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider shop {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  "https://{shop}.myshopify.example/admin/oauth/authorize";
        token_url          "https://{shop}.myshopify.example/admin/oauth/access_token";
        account_id         callback:shop;
        connection_param   shop required "pattern=^[a-z0-9][a-z0-9-]{0,62}$" strip_suffix=.myshopify.example;
    }
_EOC_
--- config eval
$::Locations
--- init
package main;
my $f = start_flow(uri => '/connect/shop?shop=acme.myshopify.example', owner => 'alice');
like($f->{location}, qr{^https://acme\.myshopify\.example/admin/oauth/authorize\?},
     'the suffix is dropped before the pattern and the template');
$f = start_flow(uri => '/connect/shop?shop=acme', owner => 'alice');
like($f->{location}, qr{^https://acme\.myshopify\.example/admin/oauth/authorize\?},
     'a value without the suffix is taken as it is');
--- request
GET /t
--- error_code: 404
