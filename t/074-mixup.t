# Mix-up defence (issue 9, finding 3; RFC 9700 section 4.4; T15): a flow
# completes only at the path of its own provider's redirect_uri.  At
# another provider's callback it is refused with 400 wrong_callback and
# stays unspent: the right callback still completes it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

add_block_preprocessor(\&OAuthKit::demo_defaults);

package T;

sub start_flow {
    my ($path, $owner) = @_;
    my $r = OAuthKit::request('GET', $path, owner => $owner // 'alice');
    my $loc = $r->{headers}{location} // '';
    my $sc = $r->{headers}{'set-cookie'} // '';
    $sc = $sc->[0] if ref $sc;
    my ($state) = $loc =~ /[?&]state=([^&]+)/;
    my ($cookie) = $sc =~ /^([^;]+)/;
    return { state => $state, cookie => $cookie };
}

# "STATUS result-or-error" of a callback at path
sub callback {
    my ($path, $flow, $code) = @_;
    my $r = OAuthKit::request('GET', "$path?code=$code&state=$flow->{state}",
                           owner => 'alice',
                           headers => { Cookie => $flow->{cookie} });
    my $loc = $r->{headers}{location} // '';
    my ($res) = $loc =~ /[?&]oauth_(?:status|error)=([^&]+)/;
    ($res) = $r->{content} =~ /"error":"([a-z_]+)"/ unless $res;
    return "$r->{status} " . ($res // '');
}

package main;

our $Two = $OAuthKit::DemoProvider . <<'_EOC_';
    oauth_provider other {
        client_id          test-client;
        client_secret      test-secret;
        authorization_url  http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_FAKE_PORT/token;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/other/callback;
        account_id         user.id;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: finding 3: a flow delivered to another provider's callback is refused with wrong_callback and stays unspent (T15)
--- http_config eval: $::Two
--- config
    location ~ ^/connect/([a-z0-9_]+)$ { oauth_start $1; }
    location = /callback { oauth_callback; }
    location = /other/callback { oauth_callback; }
    location /oauth/api/ { oauth_api; }
--- init
OAuthKit::fake()->reset(expires_in => 3600);
my $other = T::start_flow('/connect/other');
my $demo = T::start_flow('/connect/demo');
Test::More::is(T::callback('/callback', $other, 'alice-1'), '400 wrong_callback',
               "the other provider's flow at demo's callback: refused");
Test::More::is(T::callback('/other/callback', $demo, 'alice-2'), '400 wrong_callback',
               "demo's flow at the other callback: refused");
Test::More::is(OAuthKit::fake()->count('code'), 0, 'no code was exchanged');
Test::More::is(T::callback('/other/callback', $other, 'alice-1'), '302 connected',
               'the flow was kept: at its own callback it completes');
Test::More::is(T::callback('/callback', $demo, 'alice-2'), '302 connected',
               'and so does the other');
Test::More::like(T::callback('/callback', $demo, 'alice-2'), qr/^302 error$/,
                 'each once: the reload lands on return_to with an error');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"provider":"demo".*"provider":"other"|"provider":"other".*"provider":"demo"/s
--- error_log
oauth: a flow of provider "other" came back at another callback path
