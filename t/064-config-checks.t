# Operator mistakes that used to pass "nginx -t" and fail every request
# later (issue 11): each now stops nginx with the file:line of the
# directive at fault.  A name given by a variable is checked when a
# request comes, with a line at "error" level.  "nginx -t" leaves no store
# behind, and every relative oauth_ file path is taken from the
# configuration directory.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use Test::More;
use File::Temp ();
use OAuthKit;

# "... in /path/conf/nginx.conf:LINE": where nginx says the mistake is
our $At = qr{ in \S+/nginx\.conf:\d+};

# "nginx -t" on a configuration of our own, outside Test::Nginx: it must
# pass and leave no store file (nor its lock) behind; relative paths land
# in the configuration directory.
{
    my $bin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my ($so) = grep { !/_echo_/ } split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
    my $dir = File::Temp::tempdir('oauth-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    mkdir "$dir/conf";
    mkdir "$dir/logs";
    my $keys = $ENV{TEST_NGINX_OAUTH_KEY_FILE};
    my $port = 20000 + $$ % 20000;
    my $conf = <<"_EOC_";
load_module $so;
error_log $dir/logs/error.log;
pid $dir/logs/nginx.pid;
events {}
http {
    access_log off;
    oauth_store     store.mdb;
    oauth_key_file  $keys;
    oauth_audit_log audit.log;
    oauth_provider demo {
        client_id          c;
        redirect_uri       http://127.0.0.1/oauth/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         id;
    }
    server {
        listen 127.0.0.1:$port;
        oauth_owner \$http_x_owner;
        location /oauth/ { oauth_callback; }
    }
}
_EOC_
    open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
    print $fh $conf;
    close $fh;

    my $out = `$bin -t -p $dir/ -c $dir/conf/nginx.conf 2>&1`;
    is($? >> 8, 0, 'nginx -t passes') or diag $out;
    like($out, qr/test is successful/, 'nginx -t says so');
    ok(!-e "$dir/conf/store.mdb" && !-e "$dir/store.mdb",
       'nginx -t creates no store');
    ok(!-e "$dir/conf/store.mdb-lock" && !-e "$dir/store.mdb-lock",
       'nor its lock file');
    ok(-e "$dir/conf/audit.log" && !-e "$dir/audit.log",
       'a relative oauth_audit_log is in the configuration directory');

    $conf =~ s{oauth_store     store\.mdb}{oauth_store     sub/store.mdb};
    mkdir "$dir/sub";
    open $fh, '>', "$dir/conf/nginx.conf" or die $!;
    print $fh $conf;
    close $fh;

    $out = `$bin -t -p $dir/ -c $dir/conf/nginx.conf 2>&1`;
    isnt($? >> 8, 0, 'a store directory missing fails nginx -t');
    like($out, qr{cannot open store "\Q$dir\E/conf/sub/store\.mdb": directory .*No such file or directory\) in \S+/nginx\.conf:\d+},
         'relative to the configuration directory (not the prefix), with file:line')
        or diag $out;
    like($out, qr/test failed/, 'and nginx -t says it failed');
}

our $Store = <<'_EOC_';
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_KEY_FILE;

    oauth_provider demo {
        client_id          c;
        redirect_uri       http://127.0.0.1/oauth/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         id;
    }

    oauth_provider keys {
        kind  api_key;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    my $hc = $block->http_config // '';
    $hc =~ s/^\s*#STORE\n/$::Store/m
        or $hc = $::Store . $hc;
    $block->set_value('http_config', $hc);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: all well: fixed names, an owner from the server, a regex callback location
--- config
    oauth_owner $http_x_owner;

    location ~ ^/oauth/call(back)?$ {
        oauth_callback;
    }

    location = /connect {
        oauth_start demo;
    }

    location /api/ {
        oauth_api;
    }

    location /up/ {
        oauth_token keys;
        return 204;
    }

    location = /t {
        return 204;
    }
--- request
GET /t
--- error_code: 204
--- no_error_log
[emerg]
[error]



=== TEST 2: oauth_token names a provider that does not exist
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }

    location /google/ {
        oauth_token gogle;
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_token" names an unknown provider "gogle" \(no oauth_provider block of that name\)$::At/



=== TEST 3: oauth_start on an api_key provider
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }

    location = /connect/keys {
        oauth_start keys;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_start" names provider "keys", which is not of kind oauth2 and has no authorization flow: its credentials are set with POST credentials\/keys on oauth_api$::At/



=== TEST 4: oauth_start with an unknown name
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }

    location = /connect {
        oauth_start dmeo;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_start" names an unknown provider "dmeo"/



=== TEST 5: oauth_api in a server with no oauth_owner
--- config
    location = /oauth/callback {
        oauth_callback;
    }

    location /api/ {
        oauth_api;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_api" needs "oauth_owner" \(in its location, server or http\) to know whose connections these are$::At/



=== TEST 6: oauth_token with no owner anywhere
--- config
    location = /oauth/callback {
        oauth_callback;
    }

    location /up/ {
        oauth_token demo;
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_token" needs "oauth_owner"/



=== TEST 7: an owner in http serves every server
--- http_config
    #STORE
    oauth_owner $http_x_owner;
--- config
    location = /oauth/callback {
        oauth_callback;
    }

    location /api/ {
        oauth_api;
    }

    location = /t {
        return 204;
    }
--- request
GET /t
--- error_code: 204



=== TEST 8: a redirect_uri whose path no oauth_callback serves
--- config
    oauth_owner $http_x_owner;

    location = /oauth/cb {
        oauth_callback;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "demo" in \S+\/nginx\.conf:\d+: no location with "oauth_callback" in any server serves "\/oauth\/callback", the path of its redirect_uri/



=== TEST 9: the callback location in another server counts
--- http_config
    #STORE
    server {
        listen       127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server_name  callback;

        location = /oauth/callback {
            oauth_callback;
        }
    }
--- config
    location = /t {
        return 204;
    }
--- request
GET /t
--- error_code: 204



=== TEST 10: token_header without the prefix its preset sends
--- http_config
    #STORE
    oauth_provider gh {
        preset        github;
        client_id     c;
        redirect_uri  http://127.0.0.1/oauth/callback;
        token_header  Authorization;
    }
--- config
    location = /oauth/callback {
        oauth_callback;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "gh" in \S+\/nginx\.conf:\d+: "token_header Authorization" has no prefix, but preset "github" sends "Bearer " before the token: write token_header Authorization "Bearer "; \(or "" for none\)/



=== TEST 11: token_header with its prefix written out, even an empty one, loads
--- http_config
    #STORE
    oauth_provider gh {
        preset        github;
        client_id     c;
        redirect_uri  http://127.0.0.1/oauth/callback;
        token_header  Authorization "";
    }
--- config
    location = /oauth/callback {
        oauth_callback;
    }

    location = /t {
        return 204;
    }
--- request
GET /t
--- error_code: 204



=== TEST 12: slack without a scope
--- http_config
    #STORE
    oauth_provider slack {
        preset        slack;
        client_id     c;
        redirect_uri  http://127.0.0.1/oauth/callback;
    }
--- config
    location = /oauth/callback {
        oauth_callback;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "slack" in \S+\/nginx\.conf:\d+: preset "slack" needs "scope" in the block/



=== TEST 13: slack with a scope loads
--- http_config
    #STORE
    oauth_provider slack {
        preset        slack;
        client_id     c;
        redirect_uri  http://127.0.0.1/oauth/callback;
        scope         channels:read;
    }
--- config
    location = /oauth/callback {
        oauth_callback;
    }

    location = /t {
        return 204;
    }
--- request
GET /t
--- error_code: 204



=== TEST 14: a provider name from a variable is checked at run time, logged at error
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }

    location ~ ^/p/(?<p>[^/]+)/ {
        oauth_token $p;
    }
--- request
GET /p/gogle/x
--- more_headers
X-Owner: u1
--- error_code: 404
--- response_body_like: "error":"unknown_provider"
--- error_log eval
qr/\[error\] .*oauth: "oauth_token" gave the provider name "gogle", which no oauth_provider block has/



=== TEST 15: issue 9: an error log at debug level where oauth_token is used is said (nginx logs the injected header there)
--- log_level: info
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }

    location /api/ {
        error_log logs/oauth-debug.log debug;
        oauth_token demo;
        return 204;
    }
--- request
GET /oauth/callback
--- error_code: 400
--- error_log eval
qr/\[warn\] .*the error log "\S+\/logs\/oauth-debug\.log" is at debug level where "oauth_token" is used in \S+\/nginx\.conf:\d+: nginx's own debug lines record the Authorization header/
--- no_error_log eval
qr/\[warn\] .*the error log "\S+\/error\.log" is at debug level/



=== TEST 16: issue 9: the same location with its error log at info: nothing said
--- log_level: info
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }

    location /api/ {
        error_log logs/oauth-info.log info;
        oauth_token demo;
        return 204;
    }
--- request
GET /oauth/callback
--- error_code: 400
--- no_error_log
is at debug level



=== TEST 17: issue 9: "mirror" in an oauth_token location is said (the mirror gets the token too)
--- log_level: info
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }

    location /api/ {
        oauth_token demo;
        mirror /shadow;
        return 204;
    }

    location = /shadow {
        internal;
        return 204;
    }

    location /plain/ {
        mirror /shadow;
        return 204;
    }
--- request
GET /oauth/callback
--- error_code: 400
--- error_log eval
qr/\[warn\] .*"mirror" in a location with "oauth_token" in \S+\/nginx\.conf:\d+ sends the injected token to the mirror's upstream too/
--- no_error_log eval
qr/"mirror" .*nginx\.conf:(?!\d+ sends)/



=== TEST 18: issue 9: "proxy_cache" reaching an oauth_token location, even from the server, is said (T40)
--- log_level: info
--- http_config
    #STORE
    proxy_cache_path $TEST_NGINX_OAUTH_DIR/cache-064 keys_zone=c064:1m;
--- config
    oauth_owner $http_x_owner;
    proxy_cache c064;

    location = /oauth/callback {
        proxy_cache off;
        oauth_callback;
    }

    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/up/;
    }

    location /up/ {
        return 204;
    }
--- request
GET /oauth/callback
--- error_code: 400
--- error_log eval
qr/\[warn\] .*"proxy_cache" in a location with "oauth_token" in \S+\/nginx\.conf:\d+ serves one owner's answer to others unless "proxy_cache_key" includes the owner/



=== TEST 19: issue 9: "proxy_cache off" in the oauth_token location: nothing said
--- log_level: info
--- http_config
    #STORE
    proxy_cache_path $TEST_NGINX_OAUTH_DIR/cache-064b keys_zone=c064b:1m;
--- config
    oauth_owner $http_x_owner;
    proxy_cache c064b;

    location = /oauth/callback {
        oauth_callback;
    }

    location /api/ {
        proxy_cache off;
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/up/;
    }

    location /up/ {
        return 204;
    }
--- request
GET /oauth/callback
--- error_code: 400
--- no_error_log
"proxy_cache" in a location



=== TEST 20: issue 9: keep_token_field naming the refresh token is refused
--- http_config
    #STORE
    oauth_provider leaky {
        client_id          c;
        redirect_uri       http://127.0.0.1/oauth/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         id;
        keep_token_field   refresh_token as rt;
    }
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "leaky" in \S+\/nginx\.conf:\d+: "keep_token_field" names "refresh_token", a credential of the token response/



=== TEST 21: issue 9: a nested access token (Slack's authed_user.access_token) as a kept field is refused too
--- http_config
    #STORE
    oauth_provider leaky {
        client_id          c;
        redirect_uri       http://127.0.0.1/oauth/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         id;
        keep_token_field   authed_user.access_token as user_token;
    }
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "leaky" in \S+\/nginx\.conf:\d+: "keep_token_field" names "authed_user\.access_token", a credential/



=== TEST 22: issue 9: account_id naming the id token, even as a fallback, is refused
--- http_config
    #STORE
    oauth_provider leaky {
        client_id          c;
        redirect_uri       http://127.0.0.1/oauth/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         sub|id_token;
    }
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "leaky" in \S+\/nginx\.conf:\d+: "account_id" names "id_token", a credential of the token response/



=== TEST 23: issue 9: a field whose name only contains a secret's (access_token_expires_in, callback:access_token) loads
--- http_config
    #STORE
    oauth_provider fine {
        client_id          c;
        redirect_uri       http://127.0.0.1/oauth/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         user.id|callback:access_token;
        keep_token_field   access_token_expires_in as ate;
        keep_token_field   refresh_token_id;
    }
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }
--- request
GET /oauth/callback
--- error_code: 400
--- no_error_log
[emerg]
