# Install flows and identities that are not one user at one fixed host
# (issue 10), each with its real preset, the endpoints pointed at the
# fake provider's scenarios defined below:
#
# - Zoho's multi-DC flow: one "zoho" preset for users of every data
#   centre.  The callback names the user's accounts server; the token,
#   userinfo, refresh and revocation calls go there, and only to a host
#   the pattern allows (a forged one is refused before any call).  The
#   fake's accounts servers are 127.0.0.1 ("us") and localhost ("eu")
#   behind a TLS server of the block's own nginx that tells the fake
#   which one was asked (X-DC).
# - Bing Webmaster: no identity call, so one connection per owner
#   ("account_id single"), which a reconnect replaces.
# - Facebook's fb_exchange_token and Instagram's exchange, refresh and
#   disconnect (Instagram Login has no revocation endpoint).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

add_block_preprocessor(\&OAuthKit::demo_defaults);

# which accounts server (the Host the TLS server was asked for) is which
# data centre
my %DC = ('127.0.0.1' => 'us', 'localhost' => 'eu');

sub zoho_dc {
    my $req = shift;
    return $DC{ FakeProvider::header($req, 'X-DC') // '' } // 'none';
}

# Zoho's accounts server of one data centre: codes and tokens of a user
# of that centre work there only (an "eu-" code at the "us" server is
# refused), the access token is refreshed with the refresh token (not
# rotated), the answer names the centre's api_domain.
FakeProvider::scenario(zoho => base => 'default',
    token => sub {
        my ($st, $req) = @_;
        my $f = $req->{form};
        my $dc = zoho_dc($req);
        my $z = $st->{zoho} //= { at => {}, rt => {}, n => 0 };
        return FakeProvider::reply(400, json => { error => 'invalid_client' })
            unless ($f->{client_id} // '') eq 'cid-zoho'
                   && ($f->{client_secret} // '') eq 'csecret-zoho';
        my $user;
        if (($f->{grant_type} // '') eq 'authorization_code') {
            $user = $f->{code} // '';
            return FakeProvider::reply(200, json => { error => 'invalid_code' })
                unless $user =~ /^\Q$dc\E-/;
        }
        elsif (($f->{grant_type} // '') eq 'refresh_token') {
            my $g = $z->{rt}{ $f->{refresh_token} // '' };
            return FakeProvider::reply(400, json => { error => 'invalid_code' })
                unless $g && $g->{dc} eq $dc;
            $user = $g->{user};
        }
        else {
            return FakeProvider::reply(400,
                json => { error => 'unsupported_grant_type' });
        }
        my $n = ++$z->{n};
        my $at = "zat-$n-$user";
        $z->{at}{$at} = { dc => $dc, user => $user };
        my %ans = (access_token => $at, token_type => 'Bearer',
                   expires_in => 3600,
                   api_domain => "https://www.zohoapis.$dc");
        if (($f->{grant_type} // '') eq 'authorization_code') {
            $ans{refresh_token} = "zrt-$user";
            $z->{rt}{"zrt-$user"} = { dc => $dc, user => $user };
        }
        return FakeProvider::reply(200, json => \%ans);
    },
    userinfo => sub {
        my ($st, $req) = @_;
        my $auth = FakeProvider::header($req, 'Authorization') // '';
        my ($at) = $auth =~ /^Zoho-oauthtoken (\S+)$/;
        my $t = $at ? $st->{zoho}{at}{$at} : undef;
        return FakeProvider::reply(401, json => { error => 'INVALID_OAUTHTOKEN' })
            unless $t && $t->{dc} eq zoho_dc($req) && !$t->{revoked};
        return FakeProvider::reply(200, json => {
            ZUID => $t->{user}, Email => "$t->{user}\@zoho.example",
            Display_Name => "User $t->{user}" });
    },
    revoke => sub {
        my ($st, $req) = @_;
        my $t = $st->{zoho}{at}{ $req->{form}{token} // '' };
        return FakeProvider::reply(400, json => { error => 'invalid_token' })
            unless $t && $t->{dc} eq zoho_dc($req);
        $t->{revoked} = 1;
        return FakeProvider::reply(200, json => { status => 'success' });
    });

# Facebook Login: the code gives a short-lived token (an hour), which
# fb_exchange_token (a GET with the client's id and secret) trades for a
# 60-day one; the Graph API (userinfo here) takes the long-lived one only,
# so a connection stored with the short one could not name its account.
# Knob fb_exchange_fail: the exchange answers Graph's OAuthException.
FakeProvider::scenario(fb => base => 'default',
    token => sub {
        my ($st, $req) = @_;
        my $f = $req->{form};
        return FakeProvider::reply(400, json => { error => {
                   message => 'Invalid verification code format.',
                   type => 'OAuthException', code => 100 } })
            unless ($f->{grant_type} // '') eq 'authorization_code'
                   && ($f->{client_secret} // '') eq 'csecret-fb';
        return FakeProvider::reply(200, json => {
            access_token => 'fbshort-' . $f->{code}, token_type => 'bearer',
            expires_in => 3600 });
    },
    exchange => sub {
        my ($st, $req) = @_;
        my $q = FakeProvider::_form($req->{query});
        $st->{counts}{fb_exchange}++;
        my ($user) = ($q->{fb_exchange_token} // '') =~ /^fbshort-(.+)$/;
        return FakeProvider::reply(400, json => { error => {
                   message => 'Error validating access token',
                   type => 'OAuthException', code => 190 } })
            if $st->{fb_exchange_fail} || !defined $user
               || ($q->{grant_type} // '') ne 'fb_exchange_token'
               || ($q->{client_id} // '') ne 'cid-fb'
               || ($q->{client_secret} // '') ne 'csecret-fb';
        return FakeProvider::reply(200, json => {
            access_token => "fblong-$user", token_type => 'bearer',
            expires_in => 5184000 });
    },
    # DELETE /me/permissions with the user's token: the app de-authorized
    revoke => sub {
        my ($st, $req) = @_;
        my ($user) = (FakeProvider::header($req, 'Authorization') // '')
                     =~ /^Bearer fblong-(\S+)$/;
        return FakeProvider::reply(400, json => { error => {
                   message => 'Unsupported request',
                   type => 'OAuthException', code => 100 } })
            unless defined $user && $req->{method} eq 'DELETE'
                   && $req->{rel} eq '/revoke/me/permissions';
        $st->{counts}{fb_revoked}++;
        return FakeProvider::reply(200, json => { success => JSON::PP::true });
    },
    userinfo => sub {
        my ($st, $req) = @_;
        my ($user) = (FakeProvider::header($req, 'Authorization') // '')
                     =~ /^Bearer fblong-(\S+)$/;
        return FakeProvider::reply(400, json => { error => {
                   message => 'Invalid OAuth access token',
                   type => 'OAuthException', code => 190 } })
            unless defined $user;
        return FakeProvider::reply(200, json => { id => $user,
                                                  name => "User $user" });
    });

# Wix's Create Access Token for apps: a JSON POST of the client
# credentials grant with the app's id and secret and a site's instance
# id; the answer is an access token only (no refresh token), for that
# instance.  Another content type, grant, client or an unknown instance
# is refused.  Knob wix_instances: the installed instance ids.
FakeProvider::scenario(wix => base => 'default',
    token => sub {
        my ($st, $req) = @_;
        $st->{counts}{wix_token}++;
        my $j = eval { JSON::PP->new->decode($req->{body}) } // {};
        my $type = FakeProvider::header($req, 'Content-Type') // '';
        my %ok = map { $_ => 1 } @{ $st->{wix_instances} // [] };
        return FakeProvider::reply(400, json => { message => 'invalid request',
                                                  details => {} })
            unless $type =~ m{^application/json}
                   && ($j->{grant_type} // '') eq 'client_credentials'
                   && ($j->{client_id} // '') eq 'cid-wix'
                   && ($j->{client_secret} // '') eq 'csecret-wix'
                   && $ok{ $j->{instance_id} // '' };
        my $n = ++$st->{seq};
        return FakeProvider::reply(200, json => {
            access_token => "wat-$n-" . substr($j->{instance_id}, 0, 8),
            token_type => 'Bearer', expires_in => 14400 });
    });

package T;

# a certificate for 127.0.0.1 and localhost, made once per file
sub tls {
    my $d = $ENV{TEST_NGINX_OAUTH_DIR};
    unless (-s "$d/zoho-tls.pem") {
        system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
               . "-subj /CN=localhost "
               . "-addext subjectAltName=IP:127.0.0.1,DNS:localhost "
               . "-keyout $d/zoho-tls.key -out $d/zoho-tls.pem "
               . ">/dev/null 2>&1") == 0
            or die "openssl failed";
    }
    return "    oauth_trusted_certificate \$TEST_NGINX_OAUTH_DIR/zoho-tls.pem;\n";
}

# the zoho preset with its accounts servers on the fake: the block's own
# pattern allows the two loopback names (the preset's allows Zoho's)
sub zoho {
    my $extra = shift // '';
    my $as = 'https://{accounts-server}:$TEST_NGINX_RAND_PORT_3';
    return tls() . <<"_EOC_";
    oauth_background_refresh off;

    oauth_provider zoho {
        preset              zoho;
        client_id           cid-zoho;
        client_secret       csecret-zoho;
        redirect_uri        http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/callback;
        authorization_url   http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/zoho/authorize;
        token_url           "$as/oauth/v2/token";
        userinfo_url        "$as/oauth/user/info";
        revocation_url      "$as/oauth/v2/revoke/token";
        keep_callback_param accounts-server "pattern=^(127\\.0\\.0\\.1|localhost)\$"
                            strip_prefix=https://;
        allow_private_hosts on;
$extra    }

    server {
        listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_3 ssl;
        ssl_certificate     \$TEST_NGINX_OAUTH_DIR/zoho-tls.pem;
        ssl_certificate_key \$TEST_NGINX_OAUTH_DIR/zoho-tls.key;

        proxy_set_header X-DC \$host;

        location = /oauth/v2/token {
            proxy_pass http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/zoho/token;
        }

        location = /oauth/user/info {
            proxy_pass http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/zoho/userinfo;
        }

        location = /oauth/v2/revoke/token {
            proxy_pass http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/zoho/revoke;
        }
    }
_EOC_
}

# start and callback, Zoho's multi-DC callback parameters added
sub zoho_connect {
    my ($owner, $code, $server) = @_;
    my $dc = $code =~ /^(\w+)-/ ? $1 : 'us';
    return OAuthKit::connect_flow(
        owner => $owner, provider => 'zoho', code => $code,
        query => "location=$dc&accounts-server="
                 . OAuthKit::url_escape($server));
}

# the facebook preset on the fake's "fb" scenario
sub fb {
    my $f = 'http://127.0.0.1:$TEST_NGINX_FAKE_PORT/fb';
    return <<"_EOC_";
    oauth_background_refresh off;

    oauth_provider fb {
        preset            facebook;
        client_id         cid-fb;
        client_secret     csecret-fb;
        redirect_uri      http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/callback;
        authorization_url $f/authorize;
        token_url         $f/token;
        userinfo_url      $f/userinfo;
        exchange_url      "$f/exchange?grant_type=fb_exchange_token&client_id={client_id}&client_secret={client_secret}&fb_exchange_token={access_token}";
        revocation_url    $f/revoke/me/permissions;
    }
_EOC_
}

# the instagram preset on FakeQuirks' Instagram endpoints
sub ig {
    my $f = 'http://127.0.0.1:$TEST_NGINX_FAKE_PORT';
    return <<"_EOC_";
    oauth_background_refresh off;

    oauth_provider ig {
        preset            instagram;
        client_id         cid-ig;
        client_secret     csecret-ig;
        redirect_uri      http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/callback;
        authorization_url $f/authorize;
        token_url         $f/token;
        userinfo_url      $f/q/userinfo;
        exchange_url      "$f/q/ig/access_token?grant_type=ig_exchange_token&client_secret={client_secret}&access_token={access_token}";
        refresh_url       "$f/q/ig/refresh_access_token?grant_type=ig_refresh_token&access_token={access_token}";
    }
_EOC_
}

# the wix-app preset on the fake's "wix" scenario
sub wix {
    my $f = 'http://127.0.0.1:$TEST_NGINX_FAKE_PORT/wix';
    return <<"_EOC_";
    oauth_background_refresh off;

    oauth_provider wix {
        preset            wix-app;
        client_id         cid-wix;
        client_secret     csecret-wix;
        redirect_uri      http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/callback;
        authorization_url $f/installer/install;
        token_url         $f/token;
    }
_EOC_
}

# the installer round trip: the start's installer URL, then Wix's
# redirect to postInstallationUrl (which carries the state) with the
# instance id appended
sub wix_install {
    my ($owner, $instance, %o) = @_;
    my $flow = OAuthKit::start_flow(uri => '/connect/wix', owner => $owner);
    my $post = $flow->{q}{postInstallationUrl} // '';
    my ($q) = $post =~ /\?(.*)$/;
    $q //= '';
    $q = '' if $o{no_state};
    $q .= ($q eq '' ? '' : '&') . 'instanceId=' . OAuthKit::url_escape($instance)
        if defined $instance;
    my $res = OAuthKit::callback($flow, raw_query => $q);
    return (OAuthKit::flow_result($res), $flow);
}

sub calls {
    my $path = shift;
    return map { "$_->{method} " . main::zoho_dc($_)
                 . ' ' . ($_->{form}{grant_type} // $_->{form}{token_type} // '') }
           @{ OAuthKit::fake_requests(path => $path) };
}

package main;

run_tests();

__DATA__

=== TEST 1: Zoho: two users of one owner in two data centres; each one's token, userinfo, refresh and revocation go to the user's own accounts server
--- http_config eval
T::zoho()
--- config
    location /api/ {
        oauth_token zoho account=$arg_account;
        proxy_set_header X-Api-Domain $oauth_param_api_domain;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/zoho/api/;
    }
--- init
OAuthKit::fake()->reset;
my $r = T::zoho_connect('alice', 'us-1', 'https://127.0.0.1');
Test::More::is($r->{status}, 'connected', 'a US user connects') or Test::More::diag(explain $r);
Test::More::is($r->{account}, 'us-1', 'the account is the ZUID');
$r = T::zoho_connect('alice', 'eu-7', 'https://localhost');
Test::More::is($r->{status}, 'connected', 'an EU user connects') or Test::More::diag(explain $r);
Test::More::is_deeply([T::calls('/zoho/token')],
    ['POST us authorization_code', 'POST eu authorization_code'],
    'each code went to its own accounts server');
Test::More::is(scalar(my @u = T::calls('/zoho/userinfo')), 2, 'userinfo asked twice');
my $c = OAuthKit::connection('alice', 'zoho', 'eu-7');
Test::More::is_deeply($c->{params},
    { location => 'eu', 'accounts-server' => 'localhost',
      api_domain => 'https://www.zohoapis.eu' },
    'the data centre, its accounts server and api_domain are kept');
my $s = OAuthKit::api('POST', 'connections/zoho/eu-7/refresh', owner => 'alice')->{status};
Test::More::is($s, 200, 'the EU user is refreshed');
$s = OAuthKit::api('POST', 'connections/zoho/us-1/refresh', owner => 'alice')->{status};
Test::More::is($s, 200, 'the US user is refreshed');
Test::More::is_deeply([(T::calls('/zoho/token'))[2, 3]],
    ['POST eu refresh_token', 'POST us refresh_token'],
    'each refresh at its own accounts server');
my $api = OAuthKit::request('GET', '/api/crm?account=us-1', owner => 'alice');
Test::More::like($api->{content}, qr/^Authorization: Zoho-oauthtoken zat-4-us-1\r$/m,
                 'the US user\'s refreshed token is injected');
Test::More::like($api->{content}, qr/^X-Api-Domain: https:\/\/www\.zohoapis\.us\r$/m,
                 'its api_domain is $oauth_param_api_domain');
my $d = OAuthKit::api('DELETE', 'connections/zoho/eu-7', owner => 'alice')->{json};
Test::More::ok($d->{revoked}, 'the EU user is disconnected and revoked');
Test::More::is_deeply([T::calls('/zoho/revoke')], ['POST eu access_token'],
                      'at the EU accounts server');
--- request
GET /api/crm?account=eu-7
--- more_headers
X-Owner: alice
--- error_code: 401
--- no_error_log
[alert]



=== TEST 2: Zoho: a forged accounts server (another host, another scheme, a path, a port) is refused before any call; so is a callback without one
--- http_config eval
T::zoho()
--- init
OAuthKit::fake()->reset;
for my $forged ('https://accounts.evil.example', 'https://127.0.0.2',
                'http://127.0.0.1', 'https://127.0.0.1/x',
                'https://127.0.0.1:1', 'https://127.0.0.1@evil.example',
                'https://localhost.evil.example') {
    my $r = T::zoho_connect('alice', 'us-1', $forged);
    Test::More::is($r->{error}, 'invalid_request', "$forged: refused");
}
my ($r) = OAuthKit::connect_flow(owner => 'alice', provider => 'zoho',
                                 code => 'us-1', query => 'location=us');
Test::More::isnt($r->{status}, 'connected', 'no accounts server: not connected');
Test::More::is(scalar(@{ OAuthKit::fake_requests(path => qr{^/zoho/}) }), 0,
               'nothing reached any accounts server');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log
[alert]



=== TEST 3: Zoho: the preset's own pattern takes Zoho's documented accounts servers only
--- http_config
    oauth_http_timeout 1s;

    oauth_provider z {
        preset        zoho;
        client_id     c;
        client_secret s;
        redirect_uri  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
    }
--- init
for my $as (qw(accounts.zoho.com accounts.zoho.eu accounts.zoho.in
               accounts.zoho.com.au accounts.zoho.jp accounts.zoho.sa
               accounts.zoho.uk accounts.zoho.com.cn accounts.zohocloud.ca
               accounts.zoho.evil.example accounts.zoho.eu.evil.example
               evil.example accountsxzoho.com)) {
    my $f = OAuthKit::start_flow(uri => '/connect/z', owner => 'bob');
    # the code exchange that follows a kept value fails at the real host
    # (no network here); a refused one never gets that far
    my $res = OAuthKit::callback($f, code => 'x',
        query => 'location=eu&accounts-server=' . OAuthKit::url_escape("https://$as"));
    my $r = OAuthKit::flow_result($res);
    my $ok = $as =~ /evil|accountsx/ ? 'invalid_request' : 'token_request_failed';
    Test::More::is($r->{error}, $ok, "$as: " . ($ok eq 'invalid_request' ? 'refused' : 'kept'));
}
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: bob
--- response_body
[]



=== TEST 4: Zoho: a callback value may choose the host only with a pattern
--- http_config
    oauth_provider z {
        preset        zoho;
        client_id     c;
        client_secret s;
        redirect_uri  http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        keep_callback_param accounts-server;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "z" in \S+: "token_url" uses "\{accounts-server\}" in the host: only a connection_param may choose a host/



=== TEST 5: Bing Webmaster: no identity, so one connection per owner ("default"): a reconnect replaces it; owners stay apart; injected, refreshed, disconnected without a revocation call
--- http_config
    oauth_background_refresh off;

    oauth_provider bing {
        preset            bing-webmaster;
        client_id         cid-bing;
        client_secret     csecret-bing;
        redirect_uri      http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url         http://127.0.0.1:$TEST_NGINX_FAKE_PORT/token;
    }
--- config
    location /api/ {
        oauth_token bing;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/api/;
    }
--- init
my $fake = OAuthKit::fake();
$fake->reset(expires_in => 3600);
my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'bing', code => 'site-a');
Test::More::is($r->{account}, 'default', 'connected as "default"') or Test::More::diag(explain $r);
$r = OAuthKit::connect_flow(owner => 'bob', provider => 'bing', code => 'site-b');
Test::More::is($r->{account}, 'default', "bob's own");
$r = OAuthKit::connect_flow(owner => 'alice', provider => 'bing', code => 'site-c');
Test::More::is($r->{account}, 'default', 'a reconnect');
my $l = OAuthKit::connections('alice');
Test::More::is(scalar(@$l), 1, 'it replaced the first');
Test::More::is(scalar(@{ OAuthKit::fake_requests(path => '/userinfo') }), 0,
               'no identity call');
my $api = OAuthKit::request('GET', '/api/sites', owner => 'bob');
Test::More::like($api->{content}, qr/^Authorization: Bearer at-\d+-site-b\r$/m,
                 "bob's token");
my $s = OAuthKit::api('POST', 'connections/bing/default/refresh', owner => 'alice')->{status};
Test::More::is($s, 200, 'refreshed');
Test::More::is($fake->count('refresh'), 1, 'with the refresh_token grant');
$s = OAuthKit::api('DELETE', 'connections/bing/default', owner => 'alice')->{status};
Test::More::is($s, 200, 'disconnected');
Test::More::is(scalar(@{ OAuthKit::fake_requests(path => '/revoke') }), 0,
               'Bing has no revocation endpoint: nothing sent');
Test::More::is(scalar(@{ OAuthKit::connections('alice') }), 0, "alice's is gone");
--- request
GET /api/sites
--- more_headers
X-Owner: alice
--- error_code: 401



=== TEST 6: Facebook: the short-lived token is exchanged (fb_exchange_token) and the long-lived one is what is stored and injected; two accounts; no refresh grant; disconnect de-authorizes the app (DELETE /me/permissions with the user's token)
--- http_config eval
T::fb()
--- config
    location /api/ {
        oauth_token fb account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/fb/api/;
    }
--- init
my $fake = OAuthKit::fake();
$fake->reset;
for my $u (qw(fb-1 fb-2)) {
    my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'fb', code => $u);
    Test::More::is($r->{account}, $u, "$u connects") or Test::More::diag(explain $r);
}
Test::More::is($fake->count('fb_exchange'), 2, 'each short-lived token was exchanged');
my $ex = OAuthKit::fake_requests(path => '/fb/exchange')->[0];
Test::More::is($ex->{method}, 'GET', 'the exchange is a GET');
my $c = OAuthKit::connection('alice', 'fb', 'fb-1');
Test::More::cmp_ok(OAuthKit::epoch($c->{expires_at}) - time, '>', 5000000,
                   'the stored token lives 60 days');
my $api = OAuthKit::request('GET', '/api/me?account=fb-2', owner => 'alice');
Test::More::like($api->{content}, qr/^Authorization: Bearer fblong-fb-2\r$/m,
                 'the long-lived token is injected');
my $s = OAuthKit::api('POST', 'connections/fb/fb-1/refresh', owner => 'alice')->{status};
Test::More::is($s, 400, 'no refresh grant: a refresh is refused');
my $d = OAuthKit::api('DELETE', 'connections/fb/fb-1', owner => 'alice');
Test::More::is($d->{status}, 200, 'disconnected');
Test::More::ok($d->{json}{revoked}, 'revoked at Facebook');
my @rv = @{ OAuthKit::fake_requests(path => qr{^/fb/revoke}) };
Test::More::is(scalar @rv, 1, 'one de-authorization');
Test::More::is($rv[0]{method}, 'DELETE', 'a DELETE');
Test::More::is(FakeProvider::header($rv[0], 'Authorization'),
               'Bearer fblong-fb-1', "with fb-1's long-lived token, no other");
Test::More::is($fake->count('fb_revoked'), 1, 'Facebook accepted it');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like
^\[\{"provider":"fb","account":"fb-2",(?!.*"provider").*\}\]$
--- no_error_log
[alert]



=== TEST 7: Facebook: a failed long-lived exchange fails the connect (token_error, logged as the exchange) and saves nothing; the short-lived token is not kept
--- http_config eval
T::fb()
--- init
my $fake = OAuthKit::fake();
$fake->reset(fb_exchange_fail => 1);
my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'fb', code => 'fb-9');
Test::More::is($r->{status}, 'error', 'not connected');
Test::More::is($r->{error}, 'token_error', 'token_error');
Test::More::is($fake->count('fb_exchange'), 1, 'the exchange was tried');
Test::More::is(scalar @{ OAuthKit::fake_requests(path => '/fb/userinfo') }, 0,
               'nothing goes on after it');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
provider "fb": exchange_url (the long-lived token) refused (HTTP 400)
--- no_error_log
[alert]



=== TEST 8: Instagram: two accounts, each exchanged (ig_exchange_token), refreshed with ig_refresh_token; disconnect removes the connection and sends nothing (Instagram Login has no revocation endpoint)
--- http_config eval
T::ig()
--- config
    location /api/ {
        oauth_token ig account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/api/;
    }
--- init
my $fake = OAuthKit::fake();
$fake->reset(expires_in => 3600, code_shape => 'meta_wrapped');
for my $u (qw(1784-a 1784-b)) {
    my $r = OAuthKit::connect_flow(owner => 'alice', provider => 'ig', code => $u);
    Test::More::is($r->{account}, $u, "$u connects") or Test::More::diag(explain $r);
}
Test::More::is($fake->count('ig_exchange'), 2, 'both exchanged');
my $s = OAuthKit::api('POST', 'connections/ig/1784-b/refresh', owner => 'alice')->{status};
Test::More::is($s, 200, 'refreshed');
Test::More::is($fake->count('ig_refresh'), 1, 'with ig_refresh_token');
my $rf = OAuthKit::fake_requests(path => '/q/ig/refresh_access_token')->[0];
Test::More::unlike($rf->{query}, qr/client_secret/, 'the refresh carries no client secret');
my $api = OAuthKit::request('GET', '/api/me?account=1784-b', owner => 'alice');
Test::More::like($api->{content}, qr/^Authorization: Bearer at-5-1784-b\r$/m,
                 'the refreshed token is injected');
my $n = scalar @{ OAuthKit::fake_requests() };
my $d = OAuthKit::api('DELETE', 'connections/ig/1784-a', owner => 'alice');
Test::More::is($d->{status}, 200, 'disconnected');
Test::More::ok(!$d->{json}{revoked}, 'not said to be revoked');
Test::More::is(scalar @{ OAuthKit::fake_requests() }, $n, 'nothing sent to Instagram');
Test::More::ok(!OAuthKit::connection('alice', 'ig', '1784-a'), 'the connection is gone');
--- request
GET /api/me?account=1784-a
--- more_headers
X-Owner: alice
--- error_code: 401
--- no_error_log
[alert]



=== TEST 9: Wix apps: the installer URL carries the app id and a postInstallationUrl with the state; two site instances of one owner, each its own token by client credentials (JSON); injected raw; a refresh asks again; disconnect sends nothing
--- http_config eval
T::wix()
--- config
    location /api/ {
        oauth_token wix account=$arg_instance;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/wix/api/;
    }
--- init
my $fake = OAuthKit::fake();
my @inst = ('11111111-2222-3333-4444-555555555555',
            'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee');
$fake->reset(wix_instances => \@inst);
my ($r, $flow) = T::wix_install('alice', $inst[0]);
Test::More::like($flow->{location}, qr{/wix/installer/install\?}, 'the installer');
Test::More::is($flow->{q}{appId}, 'cid-wix', 'appId is the client id');
Test::More::like($flow->{q}{postInstallationUrl},
    qr{^http://127\.0\.0\.1:\d+/callback\?state=\Q$flow->{state}\E$},
    'postInstallationUrl is the callback with the state');
Test::More::is($r->{status}, 'connected', 'the first site') or Test::More::diag(explain $r);
Test::More::is($r->{account}, $inst[0], 'the instance is the account');
($r) = T::wix_install('alice', $inst[1]);
Test::More::is($r->{account}, $inst[1], 'a second site');
my @t = @{ OAuthKit::fake_requests(path => '/wix/token') };
Test::More::is(scalar @t, 2, 'two token requests');
Test::More::is_deeply(JSON::PP->new->decode($t[1]{body}),
    { grant_type => 'client_credentials', client_id => 'cid-wix',
      client_secret => 'csecret-wix', instance_id => $inst[1] },
    'client credentials and the instance, as JSON');
Test::More::ok(!defined FakeProvider::header($t[1], 'Authorization'),
               'no Basic header');
my $c = OAuthKit::connection('alice', 'wix', $inst[0]);
Test::More::is_deeply($c->{params}, { instanceId => $inst[0] }, 'the instance is kept');
my $s = OAuthKit::api('POST', "connections/wix/$inst[0]/refresh", owner => 'alice')->{status};
Test::More::is($s, 200, 'refreshed');
@t = @{ OAuthKit::fake_requests(path => '/wix/token') };
Test::More::is(JSON::PP->new->decode($t[2]{body})->{instance_id}, $inst[0],
               'by the same request for that instance');
my $api = OAuthKit::request('GET', "/api/x?instance=$inst[0]", owner => 'alice');
Test::More::like($api->{content}, qr/^Authorization: wat-3-11111111\r$/m,
                 'the new token, raw');
$api = OAuthKit::request('GET', "/api/x?instance=$inst[1]", owner => 'alice');
Test::More::like($api->{content}, qr/^Authorization: wat-2-aaaaaaaa\r$/m,
                 "the other site's own");
my $n = scalar @{ OAuthKit::fake_requests() };
$s = OAuthKit::api('DELETE', "connections/wix/$inst[1]", owner => 'alice')->{status};
Test::More::is($s, 200, 'disconnected');
Test::More::is(scalar @{ OAuthKit::fake_requests() }, $n, 'nothing sent to Wix');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like
^\[\{"provider":"wix","account":"11111111-2222-3333-4444-555555555555",(?!.*"provider").*\}\]$
--- no_error_log
[alert]



=== TEST 10: Wix apps: an instance id that is not a GUID, a missing one or a missing state is refused before any call; an instance Wix refuses saves nothing
--- http_config eval
T::wix()
--- init
my $fake = OAuthKit::fake();
$fake->reset(wix_instances => ['11111111-2222-3333-4444-555555555555']);
for my $bad ('../../x', '11111111-2222-3333-4444-55555555555', 'a b', '') {
    my ($r) = T::wix_install('alice', $bad);
    Test::More::is($r->{error}, 'invalid_request', "instanceId \"$bad\": refused");
}
my ($r) = T::wix_install('alice', undef);
Test::More::isnt($r->{status}, 'connected', 'no instanceId: not connected');
($r) = T::wix_install('alice', '11111111-2222-3333-4444-555555555555', no_state => 1);
Test::More::isnt($r->{status}, 'connected', 'no state: not connected');
Test::More::is($fake->count('wix_token'), 0, 'no call to Wix');
($r) = T::wix_install('alice', '99999999-2222-3333-4444-555555555555');
Test::More::is($r->{error}, 'token_error', 'an instance Wix does not know');
Test::More::is($fake->count('wix_token'), 1, 'asked once');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- error_log
no value for "{instanceId}" of token_body
--- no_error_log
[alert]
csecret-wix



=== TEST 11: token_grant takes authorization_code or client_credentials; token_body needs client_credentials
--- http_config
    oauth_provider w {
        client_id         c;
        client_secret     s;
        redirect_uri      http://127.0.0.1/callback;
        authorization_url https://auth.example/authorize;
        token_url         https://auth.example/token;
        account_id        sub;
        token_body        "{\"a\":\"{client_id}\"}";
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "w" in \S+: "token_body" needs "token_grant client_credentials"/



=== TEST 12: token_grant takes only authorization_code or client_credentials
--- http_config
    oauth_provider w {
        client_id         c;
        client_secret     s;
        redirect_uri      http://127.0.0.1/callback;
        authorization_url https://auth.example/authorize;
        token_url         https://auth.example/token;
        account_id        sub;
        token_grant       password;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider "w" in \S+: invalid "token_grant" "password"/



=== TEST 13: keep_callback_param takes pattern= and strip_prefix= only
--- http_config
    oauth_provider k {
        client_id           c;
        client_secret       s;
        redirect_uri        http://127.0.0.1/callback;
        authorization_url   https://auth.example/authorize;
        token_url           https://auth.example/token;
        account_id          sub;
        keep_callback_param server strip_suffix=.example;
    }
--- config
--- must_die
