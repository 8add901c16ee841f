# The findings of the hardening review (issue 9), each reproduced as an
# attack or a fault and shown handled.  Outbound-call attacks point the
# module at a listener (t/lib/Recorder.pm) that records whether anything
# arrived.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Recorder;
use IO::Socket::INET;
use Test::Nginx::Socket 'no_plan';

add_block_preprocessor(\&OAuthKit::demo_defaults);

our $Evil = Recorder->start;
$ENV{TEST_NGINX_EVIL_PORT} = $Evil->port;

package T;

use Time::HiRes qw(sleep time);

sub evil { $main::Evil }

sub pause {
    my $until = time + shift;
    sleep 0.02 while time < $until;
}

package main;

run_tests();

__DATA__

=== TEST 1: finding 1: a connection_param with the default pattern may not choose the token endpoint's host
--- http_config
    oauth_provider shopx {
        client_id          c;
        redirect_uri       http://localhost/callback;
        authorization_url  https://auth.example/authorize;
        token_url          "https://{shop}:$TEST_NGINX_EVIL_PORT/token";
        account_id         user.id;
        connection_param   shop required;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "shopx" in \S+: "token_url" lets "\{shop\}" choose the host/



=== TEST 2: finding 1: a callback parameter may never choose a host
--- http_config
    oauth_provider pcb {
        client_id          c;
        redirect_uri       http://localhost/callback;
        authorization_url  https://auth.example/authorize;
        token_url          "https://{shop}.shops.example/token";
        account_id         user.id;
        keep_callback_param shop;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "pcb" in \S+: "token_url" uses "\{shop\}" in the host: only a connection_param may choose a host/



=== TEST 3: finding 1: a kept token field may never choose a host either
--- http_config
    oauth_provider pkf {
        client_id          c;
        redirect_uri       http://localhost/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        revocation_url     "https://{inst}/revoke";
        account_id         user.id;
        keep_token_field   instance_url as inst;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"revocation_url" uses "\{inst\}" in the host/



=== TEST 4: finding 1: a placeholder in front of a fixed domain, or with the operator's own pattern, is accepted
--- http_config
    oauth_provider fixed {
        client_id          c;
        redirect_uri       http://localhost/callback;
        authorization_url  "https://{shop}.shops.example/authorize";
        token_url          "https://{shop}.shops.example/token";
        account_id         user.id;
        connection_param   shop required;
    }
    oauth_provider own {
        client_id          c;
        redirect_uri       http://localhost/callback;
        authorization_url  https://auth.example/authorize;
        token_url          "https://{host}/token";
        account_id         user.id;
        connection_param   host required "pattern=^(eu|us)\.api\.example$";
    }
--- config
--- request
GET /connect/own?host=evil.example
--- more_headers
X-Owner: alice
--- error_code: 400



=== TEST 5: finding 1: a user-chosen host that resolves to loopback gets no connection, and the flow ends in an error
--- http_config
    oauth_background_refresh off;
    oauth_provider loose {
        client_id          c;
        client_secret      CANARY-SECRET-T5;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url  https://auth.example/authorize;
        token_url          "https://{ip}:$TEST_NGINX_EVIL_PORT/token";
        account_id         user.id;
        connection_param   ip required "pattern=^[0-9.]+$";
    }
--- config
--- init
my $evil = T::evil();
$evil->reset;
my $r = OAuthKit::connect_flow(uri => '/connect/loose', owner => 'alice',
                           start_args => 'ip=127.0.0.1', code => 'x-1');
Test::More::is($r->{error}, 'token_request_failed', 'the flow fails');
T::pause(0.3);
Test::More::is($evil->connections, 0, 'the listener on 127.0.0.1 got no connection');
$r = OAuthKit::connect_flow(uri => '/connect/loose', owner => 'alice',
                        start_args => 'ip=169.254.169.254', code => 'x-2');
Test::More::is($r->{error}, 'token_request_failed', 'a link-local host: refused too');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
refused to connect to 127.0.0.1: a loopback, private or link-local address
--- no_error_log
CANARY-SECRET-T5



=== TEST 6: finding 11: a failed TLS handshake of an outbound call leaves no stale error for the next client handshake
--- http_config eval
my $d = $ENV{TEST_NGINX_OAUTH_DIR};
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
       . "-addext subjectAltName=IP:127.0.0.1 -keyout $d/t11.key "
       . "-out $d/t11.pem >/dev/null 2>&1") == 0 or die "openssl failed";
my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                              Listen => 1, ReuseAddr => 1) or die $!;
$ENV{TEST_NGINX_T11_PORT} = $l->sockport;
close $l;
<<'_EOC_';
    oauth_background_refresh off;
    oauth_provider tls {
        client_id          c;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://127.0.0.1:$TEST_NGINX_T11_PORT/token;
        account_id         user.id;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_T11_PORT ssl;
        ssl_certificate     $TEST_NGINX_OAUTH_DIR/t11.pem;
        ssl_certificate_key $TEST_NGINX_OAUTH_DIR/t11.key;
        location / { return 200 "tls ok\n"; }
    }
_EOC_
--- config
--- init
for my $i (1 .. 3) {
    my $r = OAuthKit::connect_flow(uri => '/connect/tls', owner => 'alice',
                               code => "t-$i");
    Test::More::is($r->{error}, 'token_request_failed', "untrusted certificate $i: the flow fails");
    my $out = `curl -sk https://127.0.0.1:$ENV{TEST_NGINX_T11_PORT}/ 2>&1`;
    Test::More::is($out, "tls ok\n", "then a client handshake $i works");
}
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log
stale global SSL error
[alert]
