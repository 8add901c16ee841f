# Outbound calls to providers (issue 9): they carry only the headers the
# module builds, never one of the client's request (finding 6); a
# templated host that resolves to a loopback address is refused unless
# the provider says allow_private_hosts on (finding 1).  The fake provider
# records every request it receives.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use Test::More;
use OAuthKit;

add_block_preprocessor(\&OAuthKit::api_defaults);

# what a client sends along, on every request of the test
my @CANARY = ('X-Forwarded-For' => '203.0.113.77',
              'X-Custom'        => 'CANARY-CUSTOM',
              'Authorization'   => 'Bearer CANARY-CLIENT-AUTH');
my $COOKIE = 'session=CANARY-COOKIE';

# the names a call may carry: what the HTTP client and the module set
my %ALLOWED = map { $_ => 1 }
    qw(host user-agent accept content-type content-length authorization);

sub t_headers {
    my $flow = start_flow(uri => '/connect/fake', owner => 'alice');
    my $cb = request('GET', "/callback?code=h1&state=$flow->{state}",
                     owner => 'alice', cookie => "$flow->{cookie}; $COOKIE",
                     headers => [@CANARY]);
    like(OAuthKit::header($cb, 'location') // '', qr/oauth_status=connected/,
         'connected through a callback carrying the canaries');

    is(api('POST', 'connections/fake/h1/refresh', owner => 'alice',
           cookie => $COOKIE, headers => [@CANARY])->{status}, 200,
       'refreshed through the API, canaries along');
    is(request('GET', '/proxy/fake/x?account=h1', owner => 'alice',
               cookie => $COOKIE)->{status}, 200, 'injected');
    is(api('DELETE', 'connections/fake/h1', owner => 'alice',
           cookie => $COOKIE, headers => [@CANARY])->{status}, 200,
       'disconnected (revoked) through the API, canaries along');

    my $calls = fake_requests(path => qr{^/static/(token|userinfo|revoke)$});
    my %seen;
    for my $r (@$calls) {
        my $what = "$r->{method} $r->{path}"
                   . ($r->{form}{grant_type} ? " $r->{form}{grant_type}" : '');
        $seen{$what}++;
        my @names = map { lc $_->[0] } @{ $r->{headers} };
        my @extra = grep { !$ALLOWED{$_} } @names;
        is("@extra", '', "$what: only headers the module builds")
            or diag("headers: @names");
        my $all = join "\n", map { "$_->[0]: " . ($_->[1] // '') }
                                 @{ $r->{headers} };
        unlike($all, qr/CANARY|203\.0\.113\.77/,
               "$what: nothing of the client's request");
        my $auth = FakeProvider::header($r, 'authorization');
        ok(!defined $auth || $auth =~ /^(Basic|Bearer) /,
           "$what: Authorization, when sent, is the module's");
    }
    ok($seen{'POST /static/token authorization_code'}, 'a code exchange seen');
    ok($seen{'POST /static/token refresh_token'}, 'a refresh seen');
    ok($seen{'GET /static/userinfo'}, 'a userinfo call seen');
    ok((grep { m{^POST /static/revoke} } keys %seen), 'a revocation seen')
        or diag(explain(\%seen));
}

# A certificate for 127.0.0.1 (a templated host is https-only) and the
# "inner" provider, whose token_url host is {ip}, at a TLS server on
# loopback that hands the call on to the fake; $extra goes in its block.
sub inner {
    my $extra = shift // '';
    my $d = $ENV{TEST_NGINX_OAUTH_DIR};
    system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
           . "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
           . "-keyout $d/tls.key -out $d/tls.pem >/dev/null 2>&1") == 0
        or die "openssl failed";
    return <<"_EOC_";
    oauth_trusted_certificate \$TEST_NGINX_OAUTH_DIR/tls.pem;

    oauth_provider inner {
        client_id          inner-client;
        client_secret      inner-secret;
        redirect_uri       http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/callback;
        authorization_url  http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/static/authorize;
        token_url          "https://{ip}:\$TEST_NGINX_RAND_PORT_3/token";
        userinfo_url       http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/static/userinfo;
        account_id         sub;
        connection_param   ip required "pattern=^127\\.0\\.0\\.1\$";
        $extra
    }

    server {
        listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_3 ssl;
        ssl_certificate     \$TEST_NGINX_OAUTH_DIR/tls.pem;
        ssl_certificate_key \$TEST_NGINX_OAUTH_DIR/tls.key;

        location = /token {
            proxy_pass http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/static/token;
        }
    }
_EOC_
}

# a flow of the "inner" provider
sub inner_flow {
    my $code = shift;
    return connect_flow(uri => '/connect/inner', owner => 'alice',
                        start_args => 'ip=127.0.0.1', code => $code);
}

run_tests();

__DATA__

=== TEST 1: finding 6: token, refresh, userinfo and revocation calls carry no header of the client's request
--- init
main::t_headers();
--- request
GET /metrics
--- response_body_like
oauth_outbound_duration_seconds_count\{provider="fake",endpoint="revoke"\} [1-9]
--- no_error_log
[alert]
[emerg]



=== TEST 2: finding 1: a templated token_url host resolving to 127.0.0.1 is refused by default
--- http_config eval
main::inner()
--- init
my $r = main::inner_flow('p1');
Test::More::is($r->{error}, 'token_request_failed', 'the flow fails');
Test::More::is(scalar(OAuthKit::fake_requests(path => '/static/token')->@*),
               0, 'the token endpoint on 127.0.0.1 saw nothing');
--- request
GET /metrics
--- response_body_like
oauth_flows_completed_total\{provider="inner",result="error"\} 1
--- error_log
refused to connect to 127.0.0.1
see allow_private_hosts
--- no_error_log
[alert]



=== TEST 3: finding 1: allow_private_hosts on lets the operator's internal host through
--- http_config eval
main::inner('allow_private_hosts on;')
--- init
my $r = main::inner_flow('p2');
Test::More::is($r->{status}, 'connected', 'the flow completes');
Test::More::is(scalar(OAuthKit::fake_requests(path => '/static/token')->@*),
               1, 'the token endpoint on 127.0.0.1 got the code');
--- request
GET /metrics
--- response_body_like
oauth_flows_completed_total\{provider="inner",result="connected"\} 1
--- no_error_log
refused to connect
[alert]



=== TEST 4: allow_private_hosts takes on or off
--- http_config
    oauth_provider inner {
        client_id          inner-client;
        redirect_uri       http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url  http://127.0.0.1:$TEST_NGINX_FAKE_PORT/static/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_FAKE_PORT/static/token;
        account_id         sub;
        allow_private_hosts maybe;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid value "maybe"/
