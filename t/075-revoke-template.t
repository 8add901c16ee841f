# A templated revocation_url gets the connection's params (issue 9,
# finding 4): salesforce-mydomain revokes at
# https://{domain}.my.salesforce.com/services/oauth2/revoke.  The fake
# provider stands in for that host: the same connection_param "domain"
# (the preset's pattern) fills the template, here in the query.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

add_block_preprocessor(\&OAuthKit::demo_defaults);

our $Sf = <<'_EOC_';
    oauth_provider sf {
        client_id          test-client;
        client_secret      test-secret;
        authorization_url  "http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize?d={domain}";
        token_url          "http://127.0.0.1:$TEST_NGINX_FAKE_PORT/token?d={domain}";
        revocation_url     "http://127.0.0.1:$TEST_NGINX_FAKE_PORT/revoke?d={domain}";
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        account_id         user.id;
        connection_param   domain required "pattern=^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}(\.(sandbox|develop|scratch))?$";
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: finding 4: a disconnect revokes at the templated revocation_url of the connection's domain
--- http_config eval: $::Sf
--- config
--- init
my $fake = OAuthKit::fake();
$fake->reset(expires_in => 3600);
OAuthKit::connect_ok(provider => 'sf', owner => 'alice', code => 'alice-1',
                     start_args => 'domain=acme.sandbox');
my $res = OAuthKit::api('DELETE', 'connections/sf/alice-1', owner => 'alice');
my ($st, $d) = ($res->{status}, $res->{json});
Test::More::is($st, 200, 'disconnected');
Test::More::ok($d && $d->{revoked}, 'revoked: true');
my @calls = $fake->requests(path => '/revoke');
Test::More::cmp_ok(scalar @calls, '>=', 1, 'the provider was called');
Test::More::is(scalar(grep { $_->{query} =~ /d=acme\.sandbox/ } @calls),
               scalar @calls, "each call at the connection's domain");
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like: ^\[\]$
--- no_error_log
cannot build
