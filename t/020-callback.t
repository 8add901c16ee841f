# oauth_callback: the whole connect flow against fake providers served by
# the block's own nginx: both result modes, every check made before the
# code is exchanged, every way the token endpoint can fail, client
# authentication, PKCE, reconnects, a worker that stays responsive while a
# token call waits, and no secret in any log (security-tests.md T01-T23,
# T42-T46, T73).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use OAuthKit api_prefix => '/api/';

use Digest::SHA qw(sha256);
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64 encode_base64url);

our $Store = <<'_EOC_';
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
_EOC_

# The fake provider: logs every request it gets (OAuthKit::as_requests)
# and answers the token request with a fixed JSON document.
our $LogFormat = <<'_EOC_';
    log_format as '$request_method $uri auth=[$http_authorization] body=[$request_body]';
_EOC_

our $Fake = $LogFormat . <<'_EOC_';
    server {
        listen       127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log   $TEST_NGINX_OAUTH_DIR/as.log as;
        default_type application/json;

        location = /token {
            echo_read_request_body;
            echo '{"access_token":"AT-1","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-1","scope":"read write","user":{"id":"u-1","name":"Ann"}}';
        }

        location = /echo-auth {
            return 200 "$http_authorization";
        }
    }
_EOC_

our $Demo = <<'_EOC_';
    oauth_provider demo {
        client_id          demo-client;
        client_secret      demo-secret;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
        account_name       user.name;
    }
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

    # by a variable: not every block has a provider "demo"
    location = /use {
        set $use demo;
        oauth_token $use account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/echo-auth;
    }

    location = /ping {
        return 200 "pong\n";
    }
_EOC_

# A token endpoint played by this test process: it accepts the module's
# connection but answers only when the test says so (TESTs 23 and 26).
our $SlowAs = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                    Listen => 8, Proto => 'tcp', ReuseAddr => 1)
    or die "cannot listen: $!";
$ENV{TEST_NGINX_SLOW_AS_PORT} = $SlowAs->sockport;

# Canaries (T45): distinctive values that must never reach a log.
our $Canary = join '', map { ('a' .. 'z')[rand 26] } 1 .. 10;
our %Canaries = (
    code    => "CNRYCODE$Canary",
    access  => "CNRYACCESS$Canary",
    refresh => "CNRYREFRESH$Canary",
    secret  => "CNRYSECRET$Canary",
);
write_key_file('canary-secret', "$Canaries{secret}\n", 0600);

sub pkce_challenge { encode_base64url(sha256(shift)) }

sub token_requests { [ grep { $_->{uri} eq '/token' } @{ as_requests() } ] }

no_shuffle();
run_tests();

__DATA__

=== TEST 1: redirect mode: connected, the result appended to return_to, the code exchanged once with PKCE
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(uri => '/connect/demo?return_to=%2Fdone%3Ftab%3D2%23top', owner => 'alice');
my $res = callback($flow, code => 'code-1');
is($res->{status}, 302, 'callback redirects');
is(flow_result($res)->{location},
   '/done?tab=2&oauth_status=connected&oauth_provider=demo&oauth_account=u-1#top',
   'back to return_to with the result (T11: no code, no state)');
is($res->{headers}{'cache-control'}, 'no-store', 'not cached');
is($res->{headers}{'referrer-policy'}, 'no-referrer', 'no referrer');
my ($cname) = split /=/, $flow->{cookie}, 2;
like($cname, qr/^__Host-oauth_flow_[A-Za-z0-9_-]{12}\z/, 'the binding cookie is a __Host- cookie');
is($res->{headers}{'set-cookie'},
   "$cname=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax",
   'the callback clears the binding cookie');

my $reqs = token_requests();
is(scalar @$reqs, 1, 'one token request');
my $t = $reqs->[0];
is($t->{method}, 'POST', 'token request is a POST');
is($t->{form}{grant_type}, 'authorization_code', 'grant_type');
is($t->{form}{code}, 'code-1', 'the code');
is($t->{form}{redirect_uri}, 'https://app.example/callback',
   'redirect_uri byte-equal to the authorization request (T16)');
is($flow->{q}{redirect_uri}, 'https://app.example/callback', 'same as at start');
like($t->{form}{code_verifier}, qr/^[A-Za-z0-9._~-]{43,128}\z/, 'a PKCE verifier is sent');
is(pkce_challenge($t->{form}{code_verifier}), $flow->{q}{code_challenge},
   'S256 of the verifier is the challenge sent at start');
unlike($flow->{location}, qr/\Q$t->{form}{code_verifier}\E/, 'verifier never in the authorization URL');
is($t->{auth}, 'Basic ' . encode_base64('demo-client:demo-secret', ''),
   'client authenticated with Basic (the default)');
ok(!exists $t->{form}{client_secret} && !exists $t->{form}{client_id},
   'no client credentials in the body');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like chomp
^\[\{"provider":"demo","account":"u-1","account_name":"Ann","status":"connected","scopes":\["read","write"\],.*\}\]$
--- response_body_unlike
AT-1|RT-1|demo-secret
--- no_error_log
[error]



=== TEST 2: popup mode: a page whose only script carries the CSP nonce and posts to the redirect_uri's origin
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my (%nonces);
for my $i (1 .. 2) {
    my ($r, $flow, $res) = connect_flow(uri => '/connect/demo?mode=popup&return_to=%2Fsettings', code => "c$i");
    is($res->{status}, 200, "popup $i: a page");
    like($res->{headers}{'content-type'}, qr{^text/html}, "popup $i: HTML");
    is($res->{headers}{'cache-control'}, 'no-store', "popup $i: not cached");
    my $csp = $res->{headers}{'content-security-policy'} // '';
    my ($nonce) = $csp =~ /script-src 'nonce-([A-Za-z0-9_-]{22,})'/;
    ok($nonce, "popup $i: CSP allows one nonce");
    like($csp, qr/default-src 'none'/, "popup $i: nothing else allowed");
    my @scripts = $res->{content} =~ /<script\b([^>]*)>/g;
    is(scalar @scripts, 1, "popup $i: one script");
    is($scripts[0], qq( nonce="$nonce"), "popup $i: the script's nonce is the CSP's");
    ok(!$nonces{$nonce}++, "popup $i: a fresh nonce");
    is($r->{type}, 'oauth:result', "popup $i: message type");
    is($r->{status}, 'connected', "popup $i: status");
    is($r->{provider}, 'demo', "popup $i: provider");
    is($r->{account}, 'u-1', "popup $i: account");
    ok(exists $r->{error} && !defined $r->{error}, "popup $i: error null");
    is($r->{target}, 'https://app.example', "popup $i: posted to the redirect_uri's origin only");
}
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"u-1"



=== TEST 3: popup mode with an allowed absolute return_to posts to that origin; errors are posted too
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval
$::Locations . <<'_EOC_'
    oauth_allowed_origins https://admin.example:8443;
_EOC_
--- init
package main;
my ($r) = connect_flow(uri => '/connect/demo?mode=popup&return_to=' . url_escape('https://admin.example:8443/integrations'));
is($r->{status}, 'connected', 'connected');
is($r->{target}, 'https://admin.example:8443', 'posted to the return_to origin');

my $flow = start_flow(uri => '/connect/demo?mode=popup&return_to=' . url_escape('https://admin.example:8443/x'), owner => 'alice');
my $res = callback($flow, no_code => 1, query => 'error=access_denied');
$r = flow_result($res);
is($r->{status}, 'error', 'error posted');
is($r->{error}, 'access_denied', 'with its code');
ok(!defined $r->{account}, 'no account');
is($r->{target}, 'https://admin.example:8443', 'to the same origin');
--- request
GET /ping
--- response_body
pong



=== TEST 4: the account comes from userinfo_url, called with the new access token
--- http_config eval
$::Store . $::Fake . <<'_EOC_'
    oauth_provider ui {
        client_id          ui-client;
        client_secret      ui-secret;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/token;
        userinfo_url       http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/userinfo;
        account_id         sub;
        account_name       email;
        token_auth         post;
    }

    server {
        listen       127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        access_log   $TEST_NGINX_OAUTH_DIR/as.log as;
        default_type application/json;

        location = /token {
            echo_read_request_body;
            echo '{"access_token":"AT-ui","token_type":"bearer","sub":"not-this-one"}';
        }

        location = /userinfo {
            if ($http_authorization != "Bearer AT-ui") {
                return 401 '{"error":"invalid_token"}';
            }
            return 200 '{"sub":"ui-7","email":"seven@example.com"}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(uri => '/connect/ui');
is($r->{status}, 'connected', 'connected');
is($r->{account}, 'ui-7', 'account id from userinfo, not from the token response');
my @reqs = @{ as_requests() };
is(scalar @reqs, 2, 'token, then userinfo');
is("$reqs[1]{method} $reqs[1]{uri}", 'GET /userinfo', 'userinfo fetched');
is($reqs[1]{auth}, 'Bearer AT-ui', 'with the new token');
is($reqs[0]{auth}, '-', 'token_auth post: no Authorization header');
is($reqs[0]{form}{client_id}, 'ui-client', 'token_auth post: client_id in the body');
is($reqs[0]{form}{client_secret}, 'ui-secret', 'token_auth post: client_secret in the body');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: ^\[\{"provider":"ui","account":"ui-7","account_name":"seven@example.com","status":"connected"



=== TEST 5: userinfo refusing the token: userinfo_failed, nothing stored
--- http_config eval
$::Store . $::Fake . <<'_EOC_'
    oauth_provider ui {
        client_id          ui-client;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        userinfo_url       http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/userinfo;
        account_id         sub;
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(uri => '/connect/ui');
is($r->{status}, 'error', 'error');
is($r->{error}, 'userinfo_failed', 'userinfo_failed');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
userinfo request failed



=== TEST 6: a state works once: a reload or double click lands on return_to with invalid_state and makes no second token request (T01)
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(uri => '/connect/demo?return_to=%2Fdone%3Fx%3D1',
                      owner => 'alice');
my $first = callback($flow, code => 'code-1');
is(flow_result($first)->{status}, 'connected', 'first use connects');
for my $i (1 .. 3) {
    my $again = callback($flow, code => 'code-1');
    is($again->{status}, 302, "replay $i: a redirect, no module page");
    my $r = flow_result($again);
    is_deeply([ @$r{qw(status provider account error)} ],
              [ 'error', 'demo', undef, 'invalid_state' ],
              "replay $i: oauth_status=error, oauth_error=invalid_state");
    like($r->{location}, qr{^/done\?x=1&oauth_status=error&}, "replay $i: on return_to");
    like($again->{headers}{'set-cookie'} // '', qr/^__Host-oauth_flow_\S+=; Max-Age=0;/,
         "replay $i: the cookie is cleared");
}

# the reload from a browser whose cookie is gone, or of another owner:
# the same answer, and nothing about the flow beyond its return_to
my $r = flow_result(callback($flow, code => 'code-1', cookie => undef, owner => 'bob'));
is_deeply([ @$r{qw(status error)} ], [ 'error', 'invalid_state' ],
          'without the cookie, another owner: invalid_state on return_to');

# a double click: the second of two callbacks sent at once
my $two = start_flow(uri => '/connect/demo?return_to=%2Ftwo', owner => 'alice');
my $s = OAuthKit::storm_start(2, "/callback?code=code-2&state=$two->{state}",
                               owner => 'alice', headers => { Cookie => $two->{cookie} });
my @heads = map { $_->{head} } OAuthKit::storm_wait($s, 10);
is(scalar(grep { m{^Location: \S*/two\?oauth_status=connected&}mi } @heads), 1,
   'double click: one connects');
is(scalar(grep { m{^Location: \S*/two\?oauth_status=error&\S*oauth_error=invalid_state}mi } @heads), 1,
   'double click: the other lands on return_to with invalid_state')
    or diag(explain(\@heads));

is(scalar @{ token_requests() }, 2, 'exactly one token request a flow');
is(scalar @{ connections('alice') }, 1, 'one connection');
--- request
GET /ping
--- response_body
pong



=== TEST 7: an expired flow is refused before any exchange (T04)
Expired flows are purged one oauth_state_ttl after they expire (the
housekeeping timer runs even with the refresher off), so a callback 3.2 s
after a start with a 2 s TTL is past the flow's expiry (whole seconds) and
always before its purge: it gets expired_state.
--- http_config eval
$::Store . $::Demo . $::Fake . <<'_EOC_'
    oauth_state_ttl           2s;
    oauth_background_refresh  off;
_EOC_
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(owner => 'alice');
like($flow->{res}{headers}{'set-cookie'}, qr/Max-Age=2;/, 'the cookie lives as long as the flow');
Time::HiRes::sleep(3.2);
my $r = flow_result(callback($flow));
is($r->{status}, 'error', 'error');
is($r->{error}, 'expired_state', 'expired_state');
is(scalar @{ token_requests() }, 0, 'no token request');
my $again = callback($flow);
ok($again->{status} == 400 || flow_result($again)->{error} eq 'invalid_state',
   'and the flow is gone (invalid_state, on return_to until its spent record is purged)');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 8: missing, forged, malformed or repeated state: 400 invalid_state, no exchange (T05, T73)
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(owner => 'alice');
my $s = $flow->{state};
my @bad = (
    'code=c'                                  => 'no state',
    'code=c&state='                           => 'empty state',
    'code=c&state=' . ('A' x 43)              => 'unknown state of the right shape',
    'code=c&state=' . substr($s, 0, 42)       => 'truncated state',
    "code=c&state=${s}x"                      => 'state with an extra character',
    "code=c&state=" . lc($s) . ''             => 'state in another case',
    'code=c&state=' . substr($s, 0, 42) . '%00' => 'NUL in the state',
    'code=c&state=' . substr($s, 0, 41) . '%zz' => 'malformed escape',
    "code=c&state=$s&state=$s"                => 'the valid state twice',
    "code=c&state=$s&state=" . ('B' x 43)     => 'valid and forged state',
    "code=c&state=" . ('C' x 4000)            => 'a 4000-character state',
    'x'                                       => 'a one-character query',
    'st'                                      => 'a two-character query',
);
while (my ($q, $why) = splice @bad, 0, 2) {
    next if $why eq 'state in another case' && lc($s) eq $s;
    my $res = callback($flow, raw_query => $q);
    is($res->{status}, 400, "$why: 400");
    like($res->{content}, qr/^\{"error":"invalid_state"/, "$why: invalid_state");
}
my $res = http_get('/callback?code=c&state=' . ('D' x 65536), Cookie => $flow->{cookie});
ok($res->{status} == 414 || $res->{status} == 400, "64 KiB state: $res->{status}");

is(scalar @{ token_requests() }, 0, 'no token request');
my $r = flow_result(callback($flow, code => 'code-1'));
is($r->{status}, 'connected', 'the real flow was not consumed by the refused callbacks');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"u-1"
--- no_error_log
[error]



=== TEST 9: code or iss given twice: 400 before the flow is consumed (T73)
--- http_config eval
$::Store . $::Fake . <<'_EOC_'
    oauth_provider demo {
        client_id          demo-client;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
        issuer             https://issuer.example;
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(owner => 'alice');
my $s = $flow->{state};
my $iss = url_escape('https://issuer.example');
my @bad = (
    "code=a&code=b&state=$s&iss=$iss"           => 'two codes',
    "code=a&code=a&state=$s&iss=$iss"           => 'the same code twice',
    "code=a&state=$s&iss=$iss&iss=$iss"         => 'iss twice',
    "code=a&state=$s&iss=$iss&iss=https%3A%2F%2Fevil.example" => 'two issuers',
    "code=a&state=$s&iss=$iss&error=x&error=y"  => 'error twice',
    "code=" . ('c' x 5000) . "&state=$s&iss=$iss" => 'a code over 4 KiB',
);
while (my ($q, $why) = splice @bad, 0, 2) {
    my $res = callback($flow, raw_query => $q);
    is($res->{status}, 400, "$why: 400");
    like($res->{content}, qr/^\{"error":"invalid_request"/, "$why: invalid_request");
}
is(scalar @{ token_requests() }, 0, 'no token request');
my $r = flow_result(callback($flow, raw_query => "code=good&state=$s&iss=$iss"));
is($r->{status}, 'connected', 'the flow is still usable once');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"u-1"



=== TEST 10: the flow is bound to the browser that started it (T08)
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my $other = start_flow(owner => 'alice');
my @cases = (
    [ undef, 'no cookie' ],
    [ 'name-only', 'right name, wrong value' ],
    [ 'other', "another flow's cookie" ],
    [ 'renamed', "another flow's value under this flow's name" ],
    [ 'both-wrong-first', 'a wrong duplicate before the right cookie' ],
);
for my $c (@cases) {
    my ($how, $why) = @$c;
    my $flow = start_flow(owner => 'alice');
    my ($name, $value) = split /=/, $flow->{cookie}, 2;
    my ($oname, $ovalue) = split /=/, $other->{cookie}, 2;
    my $cookie = !defined $how            ? undef
               : $how eq 'name-only'      ? "$name=" . ('x' x 43)
               : $how eq 'other'          ? $other->{cookie}
               : $how eq 'renamed'        ? "$name=$ovalue"
               :                            "$name=" . ('y' x 43) . "; $flow->{cookie}";
    my $res = callback($flow, cookie => $cookie);
    my $r = flow_result($res);
    is($r->{status}, 'error', "$why: error");
    is($r->{error}, 'browser_mismatch', "$why: browser_mismatch");
    is($res->{headers}{'set-cookie'}, "$name=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax",
       "$why: the cookie is cleared all the same");
    is(flow_result(callback($flow))->{error}, 'invalid_state', "$why: the flow is consumed");
}
is(scalar @{ token_requests() }, 0, 'no token request');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 11: a callback by another owner is refused and links nothing (T03); without an owner the flow's owner is used
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(owner => 'alice');
my $r = flow_result(callback($flow, owner => 'mallory'));
is($r->{status}, 'error', 'another owner: error');
is($r->{error}, 'owner_mismatch', 'owner_mismatch');
is(flow_result(callback($flow))->{error}, 'invalid_state', 'the flow is consumed');
is(scalar @{ token_requests() }, 0, 'no token request');
is_deeply(connections('mallory'), [], 'nothing for mallory');
is_deeply(connections('alice'), [], 'nothing for alice');

$flow = start_flow(owner => 'alice');
$r = flow_result(callback($flow, owner => undef));
is($r->{status}, 'connected', 'no owner at the callback: connected');
is_deeply(connections('mallory'), [], 'still nothing for mallory');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: ^\[\{"provider":"demo","account":"u-1"



=== TEST 12: issuer: required, and must be the configured one (T15)
--- http_config eval
$::Store . $::Fake . <<'_EOC_'
    oauth_provider demo {
        client_id          demo-client;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
        issuer             https://issuer.example;
    }

    oauth_provider noiss {
        client_id          demo-client;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
for my $c ([ undef, 'no iss' ], [ 'https://evil.example', 'another issuer' ],
           [ 'https://issuer.example/', 'trailing slash' ], [ 'https://ISSUER.example', 'other case' ],
           [ '', 'empty iss' ])
{
    my ($iss, $why) = @$c;
    my $flow = start_flow(owner => 'alice');
    my $r = flow_result(callback($flow, defined $iss ? (query => 'iss=' . url_escape($iss)) : ()));
    is($r->{error}, 'issuer_mismatch', "$why: issuer_mismatch");
}
is(scalar @{ token_requests() }, 0, 'no token request');
my ($r) = connect_flow(query => 'iss=' . url_escape('https://issuer.example'));
is($r->{status}, 'connected', 'the right issuer: connected');
($r) = connect_flow(uri => '/connect/noiss', query => 'iss=' . url_escape('https://whatever.example'));
is($r->{status}, 'connected', 'a provider without issuer ignores iss');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: ^\[\{"provider":"demo",.*\{"provider":"noiss",



=== TEST 13: the provider's error: no exchange, and its words never reach the page (T09)
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my $desc = url_escape('<script>alert("XSS-DESC")</script>');
my @cases = (
    [ 'redirect', "error=access_denied&error_description=$desc", 'access_denied' ],
    [ 'popup',    "error=access_denied&error_description=$desc", 'access_denied' ],
    [ 'redirect', 'error=server_error&error_description=XSS-DESC', 'provider_error' ],
    [ 'popup',    'error=%3Cimg%20src%3Dx%3EXSS-DESC', 'provider_error' ],
    [ 'redirect', 'error=x%0d%0aSet-Cookie:%20XSS-DESC=1', 'provider_error' ],
    [ 'redirect', "error=access_denied&error_uri=https%3A%2F%2Fevil.example%2FXSS-DESC", 'access_denied' ],
);
for my $c (@cases) {
    my ($mode, $q, $code) = @$c;
    my $flow = start_flow(uri => "/connect/demo?mode=$mode", owner => 'alice');
    my $res = callback($flow, no_code => 1, query => $q);
    my $r = flow_result($res);
    is($r->{status}, 'error', "$mode $q: error");
    is($r->{error}, $code, "$mode $q: $code");
    my $all = join "\n", $res->{content}, map { "$_: " . (ref $res->{headers}{$_} ? join(',', @{ $res->{headers}{$_} }) : $res->{headers}{$_}) } keys %{ $res->{headers} };
    unlike($all, qr/XSS-DESC|<script>alert|<img/i, "$mode $q: nothing of it in the response");
}
is(scalar @{ token_requests() }, 0, 'no token request');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 14: a callback without code or error is invalid_request; POST is not a callback
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(owner => 'alice');
my $r = flow_result(callback($flow, no_code => 1));
is($r->{error}, 'invalid_request', 'no code: invalid_request');
$flow = start_flow(owner => 'alice');
$r = flow_result(callback($flow, code => ''));
is($r->{error}, 'invalid_request', 'empty code: invalid_request');
is(http_get("/callback?code=POSTED-CODE&state=$flow->{state}", -method => 'POST')->{status}, 405, 'POST: 405');
my $access = server_root() . '/logs/access.log';
ok(wait_for(sub { OAuthKit::slurp($access) =~ m{"POST /callback\?\.\.\. HTTP/1\.1" 405 } }),
   'the refused POST is logged with its query redacted');
unlike(OAuthKit::slurp($access), qr/POSTED-CODE/, 'its code is not logged');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 15: token endpoint failures: each ends the flow with a code, nothing is stored (T19); a token_type other than bearer is refused
--- http_config eval
my $cfg = $::Store . $::LogFormat;
my %cases = (
    s500    => 'return 500 \'{"access_token":"AT-500","user":{"id":"u"}}\';',
    s503    => 'return 503;',
    html    => 'default_type text/html; return 200 "<html><body>Welcome</body></html>";',
    empty   => 'return 200 "";',
    nojson  => 'return 200 "access_token=AT-form&user_id=u";',
    trunc   => 'return 200 \'{"access_token":"AT-t","user":{"id":"u"\';',
    array   => 'return 200 \'[{"access_token":"AT-a","user":{"id":"u"}}]\';',
    atnum   => 'return 200 \'{"access_token":12345,"user":{"id":"u"}}\';',
    atnull  => 'return 200 \'{"access_token":null,"user":{"id":"u"}}\';',
    noat    => 'return 200 \'{"token_type":"bearer","user":{"id":"u"}}\';',
    oerr    => 'return 200 \'{"error":"bad_verification_code","error_description":"The code passed is incorrect"}\';',
    slack   => 'return 200 \'{"ok":false,"error":"invalid_code"}\';',
    grant   => 'return 400 \'{"error":"invalid_grant"}\';',
    noacct  => 'return 200 \'{"access_token":"AT-n","token_type":"bearer"}\';',
    acctobj => 'return 200 \'{"access_token":"AT-o","user":{"id":{"x":1}}}\';',
    acctctl => 'return 200 \'{"access_token":"AT-c","user":{"id":"a\\u0001b"}}\';',
    acctlong => 'return 200 \'{"access_token":"AT-l","user":{"id":"' . ('x' x 200) . '"}}\';',
    deep    => 'error_page 405 =200 /deep.json; return 405;',
    badutf8 => "return 200 '{\"access_token\":\"AT-\xff\xfe\",\"user\":{\"id\":\"u\"}}';",
    nul     => 'return 200 \'{"access_token":"AT\\u0000x","user":{"id":"u"}}\';',
    mac     => 'return 200 \'{"access_token":"AT-m","token_type":"mac","user":{"id":"u"}}\';',
    dpop    => 'return 200 \'{"access_token":"AT-d","token_type":"DPoP","user":{"id":"u"}}\';',
);
$cfg .= "    server {\n        listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_1;\n"
      . "        access_log \$TEST_NGINX_OAUTH_DIR/as.log as;\n"
      . "        default_type application/json;\n"
      . "        root html;\n";
$cfg .= "        location = /token/$_ { $cases{$_} }\n" for sort keys %cases;
$cfg .= "    }\n";
for (sort keys %cases) {
    $cfg .= <<"_EOC_";
    oauth_provider $_ {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:\$TEST_NGINX_RAND_PORT_1/token/$_;
        account_id         user.id;
    }
_EOC_
}
$cfg;
--- config eval: $::Locations
--- user_files eval
[[ 'deep.json' => ('[' x 100000) . (']' x 100000) ]]
--- init
package main;
my %expect = (
    s500     => 'token_error',
    s503     => 'invalid_token_response',
    html     => 'invalid_token_response',
    empty    => 'invalid_token_response',
    nojson   => 'invalid_token_response',
    trunc    => 'invalid_token_response',
    array    => 'invalid_token_response',
    atnum    => 'invalid_token_response',
    atnull   => 'invalid_token_response',
    noat     => 'invalid_token_response',
    oerr     => 'token_error',
    slack    => 'token_error',
    grant    => 'token_error',
    noacct   => 'missing_account',
    acctobj  => 'missing_account',
    acctctl  => 'invalid_account',
    acctlong => 'invalid_account',
    deep     => 'invalid_token_response',
    badutf8  => 'invalid_token_response',
    nul      => 'invalid_token_response',
    mac      => 'unsupported_token_type',
    dpop     => 'unsupported_token_type',
);
for my $p (sort keys %expect) {
    my ($r, $flow, $res) = connect_flow(uri => "/connect/$p");
    is($r->{status}, 'error', "$p: error");
    is($r->{error}, $expect{$p}, "$p: $expect{$p}");
    is(flow_result(callback($flow))->{error}, 'invalid_state', "$p: the flow is consumed");
}
is(scalar @{ as_requests() }, scalar keys %expect, 'one token request per flow, never retried');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log eval
[qr/AT-500|AT-form|AT-a\b|AT-n\b|AT-o\b|AT-c\b|AT-l\b|AT-t\b|AT-[md]\b|bad_verification_code|passed is incorrect/,
 "[alert]", "[crit]"]



=== TEST 16: a token endpoint slower than oauth_http_timeout: token_request_failed (T21)
--- http_config eval
$::Store . $::LogFormat . <<'_EOC_'
    oauth_http_timeout 1s;

    oauth_provider slow {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        default_type application/json;

        location = /token {
            echo_sleep 3;
            echo '{"access_token":"AT-slow","user":{"id":"u"}}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(uri => '/connect/slow');
is($r->{error}, 'token_request_failed', 'token_request_failed');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
token request failed: timeout



=== TEST 17: a token response over 1 MiB is cut off, with or without Content-Length (T20)
--- http_config eval
$::Store . $::LogFormat . <<'_EOC_'
    oauth_provider chunked {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/chunked;
        account_id         user.id;
    }

    oauth_provider sized {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/big.json;
        account_id         user.id;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        default_type application/json;
        root html;

        # a POST to a static file is 405: serve it through error_page
        location = /big.json {
            error_page 405 =200 $uri;
        }

        location = /chunked {
            echo -n '{"access_token":"AT-big","user":{"id":"u"},"pad":"';
            echo_duplicate 1100000 'x';
            echo '"}';
        }
    }
_EOC_
--- config eval: $::Locations
--- user_files eval
[[ 'big.json' => '{"access_token":"AT-big","user":{"id":"u"},"pad":"' . ('x' x 1100000) . '"}' ]]
--- init
package main;
for my $p ('chunked', 'sized') {
    my ($r) = connect_flow(uri => "/connect/$p");
    is($r->{error}, 'token_request_failed', "$p: token_request_failed");
}
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
token request failed: too_large



=== TEST 18: a redirect from the token endpoint is not followed (T18)
--- http_config eval
$::Store . $::LogFormat . <<'_EOC_'
    oauth_provider redir {
        client_id          c;
        client_secret      redir-secret;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log $TEST_NGINX_OAUTH_DIR/as.log as;

        location = /token {
            return 307 http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/steal;
        }
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        access_log $TEST_NGINX_OAUTH_DIR/evil.log as;

        location / {
            return 200 '{"access_token":"AT-evil","user":{"id":"evil"}}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
for my $status (1 .. 2) {
    my ($r) = connect_flow(uri => '/connect/redir');
    is($r->{status}, 'error', "attempt $status: error");
    like($r->{error}, qr/^(?:token_error|invalid_token_response)\z/, "attempt $status: a token failure");
}
is(scalar @{ as_requests() }, 2, 'the token endpoint was asked');
is(scalar @{ as_log('evil') }, 0, 'the redirect target got nothing');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 19: client_secret_basic: id and secret form-encoded, then Base64 (T23)
--- http_config eval
$::Store . $::Fake . <<'_EOC_'
    oauth_provider odd {
        client_id          "id:with%odd+chars é";
        client_secret      "a:b+c%d=e/f g";
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
        token_auth         basic;
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r, $flow) = connect_flow(uri => '/connect/odd');
is($r->{status}, 'connected', 'connected');
is($flow->{q}{client_id}, "id:with%odd+chars \xc3\xa9", 'client_id sent as is in the authorization URL');
my $t = token_requests()->[0];
my ($b64) = $t->{auth} =~ /^Basic (\S+)\z/;
ok($b64, 'Basic credentials sent');
my $got = MIME::Base64::decode_base64($b64 // '');
my ($id, $secret) = split /:/, $got, 2;
is(OAuthKit::query_params("?x=$id")->{x}, "id:with%odd+chars \xc3\xa9", 'the id decodes back');
is(OAuthKit::query_params("?x=$secret")->{x}, 'a:b+c%d=e/f g', 'the secret decodes back');
is(($got =~ tr/://), 1, 'one raw ":", the separator') or diag $got;
unlike($got, qr{[/=]|%(?![0-9A-F]{2})}, 'reserved characters escaped') or diag $got;
ok(!exists $t->{form}{client_secret}, 'no secret in the body');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"u-1"
--- no_error_log
a:b+c%d=e/f g
b%2Bc%25d



=== TEST 20: reconnecting an account replaces its tokens; two accounts of one provider coexist
--- http_config eval
$::Store . $::LogFormat . <<'_EOC_'
    oauth_provider demo {
        client_id          demo-client;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
    }

    # the fake names the account and the token after the code: "u1.v2"
    map $request_body $fake_code {
        "~(^|&)code=([A-Za-z0-9.]+)"   $2;
        default                         none;
    }

    map $request_body $fake_account {
        "~(^|&)code=([a-z0-9]+)\."      $2;
        default                         none;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log $TEST_NGINX_OAUTH_DIR/as.log as;
        default_type application/json;

        location = /token {
            echo_read_request_body;
            echo '{"access_token":"AT-$fake_code","expires_in":3600,"user":{"id":"$fake_account"}}';
        }

        location = /echo-auth {
            return 200 "$http_authorization";
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(code => 'u1.v1');
is($r->{account}, 'u1', 'first connect of u1');
my $c1 = connections('alice');
is(scalar @$c1, 1, 'one connection');
is(http_get('/use?account=u1', 'X-Owner' => 'alice')->{content}, 'Bearer AT-u1.v1', 'its token is used');
sleep 1;
($r) = connect_flow(code => 'u1.v2');
is($r->{account}, 'u1', 'second connect of u1');
my $c2 = connections('alice');
is(scalar @$c2, 1, 'still one connection');
is($c2->[0]{created_at}, $c1->[0]{created_at}, 'created_at kept');
ok($c2->[0]{updated_at} gt $c1->[0]{updated_at}, 'updated_at moved');
is(http_get('/use?account=u1', 'X-Owner' => 'alice')->{content}, 'Bearer AT-u1.v2', 'the new token replaced the old one');

($r) = connect_flow(code => 'u2.v1');
is($r->{account}, 'u2', 'another account');
is_deeply([ sort map { $_->{account} } @{ connections('alice') } ], [ 'u1', 'u2' ], 'both accounts listed');
is(http_get('/use?account=u1', 'X-Owner' => 'alice')->{content}, 'Bearer AT-u1.v2', 'u1 keeps its token');
is(http_get('/use?account=u2', 'X-Owner' => 'alice')->{content}, 'Bearer AT-u2.v1', 'u2 has its own');
is(http_get('/use', 'X-Owner' => 'alice')->{status}, 409, 'two accounts: the proxy asks which');
is_deeply(connections('bob'), [], 'another owner sees none of them');
--- request
GET /use
--- more_headers
X-Owner: bob
--- error_code: 401
--- response_body_like: not_connected



=== TEST 21: two flows of one owner in two tabs both complete, in any order (T10)
--- http_config eval
$::Store . $::LogFormat . <<'_EOC_'
    oauth_provider demo {
        client_id          demo-client;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
    }

    map $request_body $fake_account {
        "~(^|&)code=([a-z0-9]+)"        $2;
        default                         none;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        default_type application/json;

        location = /token {
            echo_read_request_body;
            echo '{"access_token":"AT","user":{"id":"$fake_account"}}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my $f1 = start_flow(uri => '/connect/demo?return_to=%2Fone', owner => 'alice');
my $f2 = start_flow(uri => '/connect/demo?return_to=%2Ftwo', owner => 'alice');
my $both = "$f1->{cookie}; $f2->{cookie}";
my $r2 = flow_result(callback($f2, code => 'tab2', cookie => $both));
my $r1 = flow_result(callback($f1, code => 'tab1', cookie => $both));
is($r2->{location}, '/two?oauth_status=connected&oauth_provider=demo&oauth_account=tab2', 'second tab first');
is($r1->{location}, '/one?oauth_status=connected&oauth_provider=demo&oauth_account=tab1', 'then the first');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"tab1".*"account":"tab2"|"account":"tab2".*"account":"tab1"



=== TEST 22: connection and callback params are kept, validated, and fill the token_url (T17)
--- http_config eval
$::Store . $::LogFormat . <<'_EOC_'
    oauth_provider books {
        client_id            c;
        redirect_uri         https://app.example/callback;
        authorization_url    "https://auth.example/{region}/authorize";
        token_url            "http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/{region}/token";
        account_id           realmId;
        connection_param     region required "pattern=^(eu|us)$";
        keep_callback_param  realmId;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log $TEST_NGINX_OAUTH_DIR/as.log as;
        default_type application/json;

        location ~ ^/(eu|us)/token$ {
            echo_read_request_body;
            echo '{"access_token":"AT-b","token_type":"bearer"}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
for my $bad ('12/../x', '%2F', 'a%20b', ('9' x 300), 'a&b', '') {
    my $flow = start_flow(uri => '/connect/books?region=eu', owner => 'alice');
    my $r = flow_result(callback($flow, query => 'realmId=' . url_escape($bad)));
    my $shown = length $bad > 20 ? substr($bad, 0, 20) . '...' : $bad;
    is($r->{error}, 'invalid_request', "realmId '$shown': invalid_request");
}
my $flow = start_flow(uri => '/connect/books?region=eu', owner => 'alice');
my $r = flow_result(callback($flow, query => 'realmId=1&realmId=2'));
is($r->{status}, 'error', 'realmId twice: refused');
is(scalar @{ as_requests() }, 0, 'no token request for any of them');

($r) = connect_flow(uri => '/connect/books?region=us', query => 'realmId=9130355');
is($r->{status}, 'connected', 'connected');
is($r->{account}, '9130355', 'the account named in the callback');
is(as_requests()->[0]{uri}, '/us/token', 'token_url filled with the connection param');
my $c = connections('alice')->[0];
is_deeply($c->{params}, { region => 'us', realmId => '9130355' }, 'both params kept');
--- request
GET /ping
--- response_body
pong



=== TEST 23: the worker is not blocked while a token call waits (one worker, ordering only)
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider waiting {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_SLOW_AS_PORT/token;
        account_id         user.id;
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(uri => '/connect/waiting', owner => 'alice');

# the callback, sent by hand so that we can wait for its answer later
my $cb = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
                               Proto => 'tcp') or die "connect: $!";
print $cb "GET /callback?code=slow&state=$flow->{state} HTTP/1.0\r\nHost: localhost\r\n"
        . "Cookie: $flow->{cookie}\r\nX-Owner: alice\r\n\r\n";

# the token endpoint (this process) sees the module's request arrive ...
my $sel = IO::Select->new($::SlowAs);
ok($sel->can_read(10), 'the module calls the token endpoint');
my $as = $::SlowAs->accept;
my $req = '';
while ($req !~ /\r\n\r\n/ || length($req) < 20) {
    IO::Select->new($as)->can_read(5) or last;
    sysread($as, $req, 4096, length $req) or last;
}
like($req, qr{^POST /token HTTP/1\.1\r\n}, 'token request received, not answered yet');

# ... and while it is unanswered, the only worker serves other requests
for my $i (1 .. 3) {
    my $res = http_get('/ping');
    is($res->{content}, "pong\n", "ping $i answered while the token call waits");
}
ok(!IO::Select->new($cb)->can_read(0), 'the callback is still waiting');

my $body = '{"access_token":"AT-w","user":{"id":"w-1"}}';
print $as "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\nConnection: close\r\n\r\n$body";
close $as;

my $resp = '';
while (IO::Select->new($cb)->can_read(10)) {
    sysread($cb, $resp, 65536, length $resp) or last;
}
like($resp, qr{^HTTP/1\.1 302 .*\r\nLocation: http://localhost:\d+/\?oauth_status=connected&oauth_provider=waiting&oauth_account=w-1\r\n}s,
     'then the callback completes');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"w-1"



=== TEST 24: canaries at level info: no code, token, refresh token or secret anywhere in the logs (T45, T46)
--- log_level: info
--- http_config eval
$::Store . $::LogFormat . <<"_EOC_"
    oauth_provider demo {
        client_id          demo-client;
        client_secret_file \$TEST_NGINX_OAUTH_DIR/canary-secret;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:\$TEST_NGINX_RAND_PORT_1/token;
        userinfo_url       http://127.0.0.1:\$TEST_NGINX_RAND_PORT_1/userinfo;
        account_id         sub;
    }

    server {
        listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_1;
        access_log \$TEST_NGINX_OAUTH_DIR/as.log as;
        default_type application/json;

        location = /token {
            echo_read_request_body;
            echo '{"access_token":"$::Canaries{access}","refresh_token":"$::Canaries{refresh}","expires_in":3600}';
        }

        location = /userinfo {
            return 200 '{"sub":"canary-user"}';
        }

        location = /echo-auth {
            return 200 "ok";
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(code => $::Canaries{code});
is($r->{status}, 'connected', 'connected');
my $verifier = as_requests()->[0]{form}{code_verifier};
ok($verifier, 'a verifier was sent');
is(http_get('/use', 'X-Owner' => 'alice')->{status}, 200, 'token used once');
# failures log too: a replay, a bad state, a provider error
callback({ state => 'x' x 43, cookie => 'a=b', owner => 'alice' }, code => $::Canaries{code});
my $flow = start_flow(owner => 'alice');
callback($flow, code => $::Canaries{code}, query => 'error=access_denied');

my $access = server_root() . '/logs/access.log';
wait_for(sub { OAuthKit::slurp($access) =~ m{GET /use } }, 3);
my $log = OAuthKit::slurp($access);
like($log, qr{"GET /callback\?\.\.\. HTTP/1\.1" 302 }, 'the callback is logged with its query redacted');
for my $k (sort keys %::Canaries) {
    unlike($log, qr/\Q$::Canaries{$k}\E/, "no $k in the access log");
}
my $errors = OAuthKit::slurp(server_root() . '/logs/error.log');
unlike($errors, qr/\Q$verifier\E/, 'no verifier in the error log');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"canary-user"
--- response_body_unlike eval
qr/CNRY/
--- no_error_log eval
qr/CNRY/



=== TEST 25: canaries at level debug: no secret in any line the module writes (T45)
--- log_level: debug
--- http_config eval
$::Store . $::LogFormat . <<"_EOC_"
    oauth_provider demo {
        client_id          demo-client;
        client_secret_file \$TEST_NGINX_OAUTH_DIR/canary-secret;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:\$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
    }

    server {
        listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_1;
        access_log \$TEST_NGINX_OAUTH_DIR/as.log as;
        default_type application/json;

        location = /token {
            echo_read_request_body;
            echo '{"access_token":"$::Canaries{access}","refresh_token":"$::Canaries{refresh}","expires_in":3600,"user":{"id":"dbg"}}';
        }

        location = /echo-auth {
            return 200 "ok";
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(code => $::Canaries{code});
is($r->{status}, 'connected', 'connected');
my $verifier = as_requests()->[0]{form}{code_verifier};
ok($verifier, 'a verifier was sent');
is(http_get('/use', 'X-Owner' => 'alice')->{status}, 200, 'token used once');
my @oauth = grep { /oauth/ } split /\n/, OAuthKit::slurp(server_root() . '/logs/error.log');
ok(@oauth > 5, 'the module wrote debug lines (' . scalar(@oauth) . ')');
is(scalar(grep { /\Q$verifier\E/ } @oauth), 0, 'none holds the PKCE verifier');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"dbg"
--- error_log
oauth
--- no_error_log eval
qr/oauth[^\n]*CNRY|CNRY[^\n]*oauth/



=== TEST 26: a client that goes away while the token call waits cancels the call
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider waiting {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_SLOW_AS_PORT/token;
        account_id         user.id;
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(uri => '/connect/waiting', owner => 'alice');
my $cb = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
                               Proto => 'tcp') or die "connect: $!";
print $cb "GET /callback?code=gone&state=$flow->{state} HTTP/1.0\r\nHost: localhost\r\n"
        . "Cookie: $flow->{cookie}\r\nX-Owner: alice\r\n\r\n";
ok(IO::Select->new($::SlowAs)->can_read(10), 'the module calls the token endpoint');
my $as = $::SlowAs->accept;
my $req = '';
while ($req !~ /\r\n\r\n/) {
    IO::Select->new($as)->can_read(5) or last;
    sysread($as, $req, 4096, length $req) or last;
}
like($req, qr{^POST /token }, 'token request received');

close $cb;

# the module drops the call: its connection to the endpoint closes
my $eof = 0;
while (IO::Select->new($as)->can_read(10)) {
    my $n = sysread($as, my $buf, 4096);
    if (!$n) { $eof = 1; last }
}
ok($eof, 'the token call is closed once the client is gone');
close $as;
is(http_get('/ping')->{content}, "pong\n", 'the worker is fine');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log
[alert]
[crit]



=== TEST 27: oauth_* parameters already in return_to are dropped: the page reads only this flow's result
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my @cases = (
    [ '/done?oauth_status=connected&oauth_account=evil&x=1',
      '/done?x=1&oauth_status=error&oauth_provider=demo&oauth_error=access_denied' ],
    [ '/done?oauth%5Fstatus=connected&oauth_provider=other',
      '/done?oauth_status=error&oauth_provider=demo&oauth_error=access_denied' ],
    [ '/done?oauth_statusx=1&y=2&oauth_error=stale#frag',
      '/done?oauth_statusx=1&y=2&oauth_status=error&oauth_provider=demo&oauth_error=access_denied#frag' ],
    [ '/done?', '/done?oauth_status=error&oauth_provider=demo&oauth_error=access_denied' ],
);
for my $c (@cases) {
    my ($rt, $expect) = @$c;
    my $flow = start_flow(uri => '/connect/demo?return_to=' . url_escape($rt), owner => 'alice');
    my $r = flow_result(callback($flow, no_code => 1, query => 'error=access_denied'));
    is($r->{location}, $expect, "return_to $rt");
}
my ($r) = connect_flow(uri => '/connect/demo?return_to=' . url_escape('/s?oauth_status=error&oauth_error=x'));
is($r->{location}, '/s?oauth_status=connected&oauth_provider=demo&oauth_account=u-1', 'a stale error is gone after a success');
--- request
GET /ping
--- response_body
pong



=== TEST 28: TLS at the token endpoint: a certificate the store does not trust ends the flow, nothing stored (T22)
--- http_config eval
my $d = $ENV{TEST_NGINX_OAUTH_DIR};
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
       . "-addext subjectAltName=IP:127.0.0.1 -keyout $d/tls.key "
       . "-out $d/tls.pem >/dev/null 2>&1") == 0 or die "openssl failed";
$::Store . <<'_EOC_';
    oauth_provider tls {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://127.0.0.1:$TEST_NGINX_RAND_PORT_3/token;
        account_id         user.id;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3 ssl;
        ssl_certificate     $TEST_NGINX_OAUTH_DIR/tls.pem;
        ssl_certificate_key $TEST_NGINX_OAUTH_DIR/tls.key;
        default_type application/json;

        location = /token {
            return 200 '{"access_token":"AT-TLS","user":{"id":"t-1"}}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(uri => '/connect/tls', owner => 'alice');
is($r->{status}, 'error', 'an untrusted certificate: error');
is($r->{error}, 'token_request_failed', 'token_request_failed');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
failed (tls)



=== TEST 29: TLS at the token endpoint: oauth_trusted_certificate is trusted, and the host name is still checked (T22)
--- http_config eval
my $d = $ENV{TEST_NGINX_OAUTH_DIR};
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
       . "-addext subjectAltName=IP:127.0.0.1 -keyout $d/tls.key "
       . "-out $d/tls.pem >/dev/null 2>&1") == 0 or die "openssl failed";
$::Store . <<'_EOC_';
    oauth_trusted_certificate $TEST_NGINX_OAUTH_DIR/tls.pem;

    oauth_provider tls {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://127.0.0.1:$TEST_NGINX_RAND_PORT_3/token;
        account_id         user.id;
    }

    oauth_provider tls-wrong-name {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://localhost:$TEST_NGINX_RAND_PORT_3/token;
        account_id         user.id;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3 ssl;
        ssl_certificate     $TEST_NGINX_OAUTH_DIR/tls.pem;
        ssl_certificate_key $TEST_NGINX_OAUTH_DIR/tls.key;
        default_type application/json;

        location = /token {
            return 200 '{"access_token":"AT-TLS","user":{"id":"t-1"}}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(uri => '/connect/tls-wrong-name', owner => 'alice');
is($r->{status}, 'error', 'a certificate for another name: error');
is($r->{error}, 'token_request_failed', 'token_request_failed');
($r) = connect_flow(uri => '/connect/tls', owner => 'alice');
is($r->{status}, 'connected', 'the trusted certificate: connected');
is($r->{account}, 't-1', 'the account');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"t-1"



=== TEST 30: the code is hidden from what is logged before the callback handler runs (limit_req) (T46)
--- http_config eval
$::Store . $::Demo . $::Fake
. "    limit_req_zone \$binary_remote_addr zone=cb:1m rate=1r/m;\n"
--- config
    oauth_owner $http_x_owner;

    location ~ ^/connect/(?<p>[^/]+)$ {
        oauth_start $p;
    }

    location = /callback {
        limit_req zone=cb nodelay;
        oauth_callback;
    }
--- init
package main;
my $flow = start_flow(owner => 'alice');
is(callback($flow, code => 'FIRST-LIVE-CODE')->{status}, 302, 'the first callback goes through');
is(callback($flow, code => 'SECOND-LIVE-CODE')->{status}, 503, 'the second is limited');
my $err = server_root() . '/logs/error.log';
my $access = server_root() . '/logs/access.log';
ok(wait_for(sub { slurp($err) =~ /limiting requests/ }), 'limit_req logged it');
# nginx's own debug lines print every request line; the rest must not
my @lines = grep { !/\[debug\]/ } split /\n/, slurp($err);
ok(scalar(grep { /limiting requests/ } @lines), 'the limit_req line is there');
unlike(join("\n", @lines), qr/LIVE-CODE/, 'no code in the error log above debug');
ok(wait_for(sub { slurp($access) =~ m{"GET /callback\?\.\.\. HTTP/1\.1" 503 } }), 'the limited request is in the access log');
unlike(slurp($access), qr/LIVE-CODE/, 'no code in the access log');
--- request
GET /ping
--- error_code: 404



=== TEST 31: userinfo is called with the provider's own token header (Shopify style), not always Bearer
--- http_config eval
$::Store . <<'_EOC_';
    oauth_provider shop {
        client_id          c;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        userinfo_url       http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/shop.json;
        account_id         shop.id;
        token_header       X-Shop-Token "";
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        default_type application/json;

        location = /token {
            return 200 '{"access_token":"shpat-1"}';
        }

        location = /shop.json {
            if ($http_x_shop_token != "shpat-1") {
                return 401 '{"errors":"no token"}';
            }

            if ($http_authorization) {
                return 400 '{"errors":"unexpected Authorization"}';
            }

            return 200 '{"shop":{"id":77,"name":"Acme"}}';
        }
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(uri => '/connect/shop', owner => 'alice');
is($r->{status}, 'connected', 'connected');
is($r->{account}, '77', 'the account from userinfo');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"77"



=== TEST 32: a spent flow in popup mode posts invalid_state as the popup does; spent by an error, a reload says invalid_state too; a forged state keeps its 400
--- http_config eval: $::Store . $::Demo . $::Fake
--- config eval: $::Locations
--- init
package main;
my $flow = start_flow(uri => '/connect/demo?mode=popup', owner => 'alice');
is(flow_result(callback($flow, code => 'code-1'))->{status}, 'connected',
   'the popup connects');
my $res = callback($flow, code => 'code-1');
is($res->{status}, 200, 'its reload: the popup page');
like($res->{headers}{'content-security-policy'} // '', qr/script-src 'nonce-/,
     'with its CSP');
my $m = flow_result($res);
is_deeply([ @$m{qw(type status provider account error target)} ],
          [ 'oauth:result', 'error', 'demo', undef, 'invalid_state',
            'https://app.example' ],
          'posts the error to the opener at the flow origin');

$flow = start_flow(uri => '/connect/demo?return_to=%2Fback', owner => 'alice');
my $r = flow_result(callback($flow, code => 'code-2', cookie => undef));
is($r->{error}, 'browser_mismatch', 'spent by a browser mismatch');
$r = flow_result(callback($flow, code => 'code-2'));
is_deeply([ @$r{qw(status error location)} ],
          [ 'error', 'invalid_state',
            '/back?oauth_status=error&oauth_provider=demo&oauth_error=invalid_state' ],
          'its reload: invalid_state on return_to');

my $forged = callback({ state => 'Q' x 43, cookie => undef, owner => 'alice' });
is($forged->{status}, 400, 'a forged state: 400');
like($forged->{content}, qr/^\{"error":"invalid_state"/, 'a forged state: JSON as before');
is(scalar @{ token_requests() }, 1, 'one token request in all');
--- request
GET /ping
--- response_body
pong
