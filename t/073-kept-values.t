# Values that come from users and providers and become $oauth_param_NAME
# (issue 9, finding 2; T38): connection params and kept token fields end
# up in upstream headers (proxy_set_header) and upstream URLs (proxy_pass,
# Salesforce's instance_url).  Control characters are refused whatever
# the operator's pattern; a kept field that is a URL must be one the
# module would send a token to itself (https, or http to loopback).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Recorder;
use Test::Nginx::Socket 'no_plan';

add_block_preprocessor(\&OAuthKit::demo_defaults);

our $Evil = Recorder->start;
$ENV{TEST_NGINX_EVIL_PORT} = $Evil->port;

package T;

sub fake { OAuthKit::fake() }

# a token answer with a kept field instance_url of the given JSON value
sub answer_with {
    my $url = shift;
    fake()->reset(code_body => '{"access_token":"at-kept","token_type":'
        . '"Bearer","expires_in":3600,"refresh_token":"rt-kept",'
        . '"user":{"id":"acct-1"},"instance_url":' . $url . '}');
}

sub connections {
    my $list = OAuthKit::connections('alice');
    return ref $list eq 'ARRAY' ? scalar @$list : -1;
}

package main;

our $Kept = <<'_EOC_';
    oauth_provider demo {
        client_id          test-client;
        client_secret      test-secret;
        authorization_url  http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_FAKE_PORT/token;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        account_id         user.id;
        connection_param   x required "pattern=^.+$";
        keep_token_field   instance_url as instance_url;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: finding 2: a connection param with the operator's loose pattern still refuses CR/LF (T38)
--- http_config eval: $::Kept
--- config
    location /use {
        oauth_token demo;
        proxy_set_header X-Param $oauth_param_x;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/echo/;
    }
--- request eval
["GET /connect/demo?x=v%0D%0AX-Evil:%20injected",
 "GET /connect/demo?x=fine%20value",
 "GET /connect/demo?x=v%0AX-Evil:%20injected",
 "GET /connect/demo?x=tab%09here",
 "GET /connect/demo?x=v%00"]
--- more_headers
X-Owner: alice
--- error_code eval
[400, 302, 400, 400, 400]



=== TEST 2: finding 2: a kept token field with CR/LF is refused at connect: no connection, no injected header (T38)
--- http_config eval: $::Kept
--- config
    location /use {
        oauth_token demo;
        proxy_set_header X-Inst $oauth_param_instance_url;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/echo/;
    }
--- init
T::answer_with('"https://x.example\r\nX-Injected: yes"');
my $r = OAuthKit::connect_flow(owner => 'alice', start_args => 'x=a');
Test::More::is($r->{error}, 'invalid_token_response', 'the connect fails');
Test::More::is(T::connections(), 0, 'nothing stored');
--- request
GET /use
--- more_headers
X-Owner: alice
--- error_code: 401
--- response_body_like: "error":"not_connected"
--- error_log
token field kept as "instance_url" refused: a control character



=== TEST 3: finding 2: a kept token field that is a URL must be https (or http to loopback): the token never goes to a host the provider names over http
--- http_config eval: $::Kept
--- config
    location /use {
        oauth_token demo;
        proxy_pass $oauth_param_instance_url;
    }
--- init
T::answer_with('"http://evil.example:' . $ENV{TEST_NGINX_EVIL_PORT} . '/steal"');
my $r = OAuthKit::connect_flow(owner => 'alice', start_args => 'x=a');
Test::More::is($r->{error}, 'invalid_token_response', 'plain http to another host: refused');
Test::More::is(T::connections(), 0, 'nothing stored');
T::answer_with('"javascript:alert(1)//x://"');
$r = OAuthKit::connect_flow(owner => 'alice', start_args => 'x=a');
Test::More::is($r->{error}, 'invalid_token_response', 'another scheme: refused');
Test::More::is(scalar($main::Evil->connections), 0, 'nothing reached the listener');
T::answer_with('"https://na1.example.com"');
$r = OAuthKit::connect_flow(owner => 'alice', start_args => 'x=a');
Test::More::is($r->{status}, 'connected', 'an https URL is kept');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like eval
qr{"instance_url":"https://na1\.example\.com"}
--- error_log
token field kept as "instance_url" refused
