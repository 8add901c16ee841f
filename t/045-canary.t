# T45, canary scan: a whole scenario (connect, use, refresh, test,
# non-OAuth credentials, failures, disconnect) with distinctive tokens,
# refresh tokens, authorization code, client secret (client_secret_file),
# API key, password, header value and keyring; then every API response
# (status line, headers, body), the audit log, the error log (level info),
# the metrics, the `nginx -T` dump and the store file are scanned: none of
# them appears anywhere.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use Test::More;
use OAuthKit;

log_level('info');
add_block_preprocessor(\&OAuthKit::api_defaults);
no_shuffle();

our %C;
{
    my $r = sub { join '', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 16 };
    %C = (
        AT     => 'CANARY-AT-' . $r->(),
        AT2    => 'CANARY-AT2-' . $r->(),
        RT     => 'CANARY-RT-' . $r->(),
        RT2    => 'CANARY-RT2-' . $r->(),
        CODE   => 'CANARY-CODE-' . $r->(),
        SECRET => 'CANARY-SECRET-' . $r->(),
        KEY    => 'CANARY-KEY-' . $r->(),
        BADKEY => 'CANARY-BADKEY-' . $r->(),
        PASS   => 'CANARY-PASS-' . $r->(),
        HDR    => 'CANARY-HDR-' . $r->(),
    );
    $ENV{"TEST_NGINX_CANARY_$_"} = $C{$_} for keys %C;
    $ENV{TEST_NGINX_CANARY_BASIC} = OAuthKit::b64("canary-client:$C{SECRET}");

    my $file = OAuthKit::oauth_dir() . '/canary.secret';
    open my $out, '>', $file or die "$file: $!";
    print $out "$C{SECRET}\n";
    close $out;
    chmod 0600, $file;
    $ENV{TEST_NGINX_CANARY_SECRET_FILE} = $file;

    # the keyring's key, in base64 as in the file
    $C{KEYRING} = (OAuthKit::slurp($ENV{TEST_NGINX_OAUTH_KEY_FILE}) =~ /^k1:(\S+)/)[0];
}

# every string a canary could leak through
sub canaries { map { [ $_ => $C{$_} ] } sort keys %C }

my @Seen;       # [ what, raw response ]

sub keep {
    my ($what, $r) = @_;
    push @Seen, [ $what, $r->{raw} ];
    return $r;
}

sub scan {
    my ($what, $text) = @_;
    for my $c (canaries()) {
        my ($name, $v) = @$c;
        ok(index($text, $v) < 0, "$what: no $name")
            or diag("$name found in $what");
    }
}

sub t_scenario {
    # connect: start, then the callback with the canary code
    my $c = connect_flow(owner => 'alice', provider => 'canary', code => $C{CODE},
                         start_args => 'return_to=/done');
    keep('start', $c->{start});
    keep('callback', $c->{callback}) if $c->{callback};
    is($c->{status}, 'connected', 'connected with the canary secret')
        or diag($c->{callback}{raw});

    # a failed callback: a code the provider refuses
    my $bad = connect_flow(owner => 'alice', provider => 'canary', code => 'CANARY-CODE-wrong',
                         start_args => 'return_to=/done');
    keep('refused start', $bad->{start});
    keep('refused callback', $bad->{callback}) if $bad->{callback};
    is($bad->{status}, 'error', 'a refused code');

    # use
    my $r = keep('proxy', request('GET', '/proxy/canary/x', owner => 'alice'));
    is($r->{body}, "token ok\n", 'the canary token was injected');

    # manage
    keep('providers', api('GET', 'providers', owner => 'alice'));
    keep('list', api('GET', 'connections', owner => 'alice'));
    keep('one', api('GET', 'connections/canary/canary-user',
                    owner => 'alice'));
    $r = keep('refresh', api('POST', 'connections/canary/canary-user/refresh',
                             owner => 'alice'));
    is($r->{status}, 200, 'refreshed');
    $r = keep('proxy after refresh',
              request('GET', '/proxy/canary/x', owner => 'alice'));
    is($r->{body}, "token2 ok\n", 'the refreshed canary token was injected');
    $r = keep('test', api('POST', 'connections/canary/canary-user/test',
                          owner => 'alice'));
    is($r->{json}{ok}, JSON::PP::true, 'tested');

    # non-OAuth credentials, good and bad
    $r = keep('api key', api('POST', 'connections/ckeys', owner => 'alice',
                             json => { account => 'k1',
                                       credentials => { api_key => $C{KEY} } }));
    is($r->{status}, 201, 'api key stored');
    $r = keep('refused api key',
              api('POST', 'connections/ckeys', owner => 'alice',
                  json => { account => 'k2',
                            credentials => { api_key => $C{BADKEY} } }));
    is($r->{status}, 400, 'a refused api key');
    $r = keep('api key with CR LF',
              api('POST', 'connections/ckeys', owner => 'alice',
                  json => { account => 'k3',
                            credentials => { api_key => "$C{KEY}\r\nX: 1" } }));
    is($r->{status}, 400, 'an api key with CR LF');
    $r = keep('basic', api('POST', 'connections/cbasic', owner => 'alice',
                           json => { account => 'b1',
                                     credentials => { username => 'u',
                                                      password => $C{PASS} } }));
    is($r->{status}, 201, 'basic stored');
    $r = keep('basic, colon',
              api('POST', 'connections/cbasic', owner => 'alice',
                  json => { account => 'b2',
                            credentials => { username => "$C{PASS}:x",
                                             password => $C{PASS} } }));
    is($r->{status}, 400, 'a username with a colon');
    $r = keep('header', api('POST', 'connections/chdr', owner => 'alice',
                            json => { account => 'h1',
                                      credentials => { value => $C{HDR} } }));
    is($r->{status}, 201, 'header value stored');
    $r = keep('bad json', api('POST', 'connections/ckeys', owner => 'alice',
                              body => "{\"account\":\"k9\",\"credentials\":"
                                      . "{\"api_key\":\"$C{KEY}\"",
                              headers => [ 'Content-Type'
                                           => 'application/json' ]));
    is($r->{status}, 400, 'a broken body');
    $r = keep('wrong type', api('POST', 'connections/ckeys', owner => 'alice',
                                body => "api_key=$C{KEY}"));
    is($r->{status}, 415, 'a form body');

    for my $p ([ ckeys => 'key ok' ], [ cbasic => 'basic ok' ],
               [ chdr => 'header ok' ])
    {
        $r = keep("proxy $p->[0]",
                  request('GET', "/proxy/$p->[0]/x", owner => 'alice'));
        is($r->{body}, "$p->[1]\n", "$p->[0] injected");
    }

    keep('list again', api('GET', 'connections', owner => 'alice'));

    # another owner, a refused refresh, then disconnect everything
    keep('bob list', api('GET', 'connections', owner => 'bob'));
    keep('bob refresh', api('POST', 'connections/canary/canary-user/refresh',
                            owner => 'bob'));
    OAuthKit::fake()->set(canary_refuse => 1);
    $r = keep('refused refresh',
              api('POST', 'connections/canary/canary-user/refresh',
                  owner => 'alice'));
    is($r->{status}, 502, 'a refused refresh');
    keep('errored one', api('GET', 'connections/canary/canary-user',
                            owner => 'alice'));

    for my $p ('canary/canary-user', 'ckeys/k1', 'cbasic/b1', 'chdr/h1') {
        $r = keep("delete $p", api('DELETE', "connections/$p",
                                   owner => 'alice'));
        is($r->{status}, 200, "disconnected $p");
    }
    ok(scalar(grep { m{^/revoke\|} } rec_lines(want => 2)) >= 2,
       'the tokens were revoked (the canaries did reach the provider)');

    keep('metrics', request('GET', '/metrics'));

    # the scan
    for my $s (@Seen) {
        scan("response: $s->[0]", $s->[1]);
    }

    my $audit = join "\n", audit_lines();
    ok(length $audit, 'the audit log has lines');
    scan('audit log', $audit);

    # the store file holds sealed values only
    open my $in, '<:raw', $ENV{TEST_NGINX_OAUTH_STORE} or die $!;
    my $store = do { local $/; <$in> };
    close $in;
    ok(length $store, 'the store file');
    scan('store file', $store);

    # the error log so far (the block's no_error_log checks it again at
    # the end); at level info: the debug level logs request headers
    no warnings 'once';
    my $errlog = $Test::Nginx::Util::ErrLogFile
                 // $Test::Nginx::Compat::ErrLogFile;
    open $in, '<:raw', $errlog or die "$errlog: $!";
    my $log = do { local $/; <$in> };
    close $in;
    like($log, qr/\[info\]/, 'the error log is at level info');
    scan('error log', $log);

    # the configuration dump reads no secret file
    my $conf = ($Test::Nginx::Util::ServRoot
                // $Test::Nginx::Compat::ServRoot) . '/conf/nginx.conf';
    my $bin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $dump = `'$bin' -T -q -c '$conf' 2>&1`;
    like($dump, qr/client_secret_file/, 'nginx -T dumps the configuration');
    ok(index($dump, $C{SECRET}) < 0, 'nginx -T: no client secret');
    ok(index($dump, $C{KEYRING}) < 0, 'nginx -T: no key');
}

# The provider that knows the canaries: a scenario of the fake provider
# (t/README.md).  It answers only the planted values, so a connect that
# works proves the module sent them.
{
    my $reply = \&FakeProvider::reply;
    my $hdr = sub { FakeProvider::header($_[0], $_[1]) // '' };

    FakeProvider::scenario(canary =>
        token => sub {
            my ($st, $req) = @_;
            return $reply->(401, json => { error => 'invalid_client' })
                unless $hdr->($req, 'authorization')
                       eq "Basic $ENV{TEST_NGINX_CANARY_BASIC}";
            my $f = $req->{form} // {};
            if (($f->{grant_type} // '') eq 'refresh_token') {
                return $reply->(400, json => {
                    error => 'invalid_grant',
                    error_description => "$C{RT2} is revoked" })
                    if $st->{canary_refuse};
                return $reply->(200, json => {
                    access_token => $C{AT2}, refresh_token => $C{RT2},
                    token_type => 'Bearer', expires_in => 3600 });
            }
            return $reply->(400, json => { error => 'invalid_grant' })
                unless ($f->{code} // '') eq $C{CODE};
            return $reply->(200, json => {
                access_token => $C{AT}, refresh_token => $C{RT},
                token_type => 'Bearer', expires_in => 3600 });
        },
        userinfo => sub {
            my ($st, $req) = @_;
            my $auth = $hdr->($req, 'authorization');
            return $reply->(401, json => { error => 'invalid_token' })
                unless grep { $auth eq "Bearer $_" } @C{qw(AT AT2)};
            return $reply->(200, json => { sub => 'canary-user',
                                           name => 'Canary User' });
        },
        keycheck => sub {
            my ($st, $req) = @_;
            my $key = $hdr->($req, 'x-api-key');
            return $reply->(401, json => { error => 'invalid_key',
                                           key => $key })
                unless $key eq $C{KEY};
            return $reply->(200, json => { id => 'k' });
        },
        api => sub {
            my ($st, $req) = @_;
            my $auth = $hdr->($req, 'authorization');
            my %ok = (
                '/api/canary' => $auth eq "Bearer $C{AT2}" ? "token2 ok\n"
                               : $auth eq "Bearer $C{AT}" ? "token ok\n"
                               : undef,
                '/api/ckeys'  => $hdr->($req, 'x-api-key') eq $C{KEY}
                               ? "key ok\n" : undef,
                '/api/cbasic' => $auth =~ /^Basic ./ ? "basic ok\n" : undef,
                '/api/chdr'   => $hdr->($req, 'x-vendor-token') eq $C{HDR}
                               ? "header ok\n" : undef,
            );
            my ($what) = $req->{rel} =~ m{^/api/(\w+)};
            my $body = $ok{ $req->{rel} };
            return $reply->(200, body => $body) if defined $body;
            return $reply->(401, body => "no " . ($what // 'thing') . "\n");
        },
    );
}

run_tests();

__DATA__

=== TEST 1: canary scan of a whole scenario
--- http_config
    oauth_provider canary {
        client_id canary-client;
        client_secret_file $TEST_NGINX_CANARY_SECRET_FILE;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/canary/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/canary/token;
        revocation_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/revoke;
        userinfo_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/canary/userinfo;
        account_id sub;
        account_name name;
    }

    oauth_provider ckeys {
        kind api_key;
        token_header X-Api-Key "";
        userinfo_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/canary/keycheck;
    }

    oauth_provider cbasic {
        kind basic;
    }

    oauth_provider chdr {
        kind header;
        token_header X-Vendor-Token;
    }
--- config
    oauth_owner $http_x_owner;

    location /oauth/api/ {
        oauth_api;
    }

    location ~ ^/connect/(?<oauth_p>[a-z0-9_]+)$ {
        oauth_start $oauth_p;
    }

    location = /callback {
        oauth_callback;
    }

    location = /metrics {
        oauth_metrics;
    }

    location ~ ^/proxy/(?<proxy_p>canary|ckeys|cbasic|chdr)/ {
        oauth_token $proxy_p;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/canary/api/$proxy_p;
    }
--- init
main::t_scenario();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log eval
[ map { $_->[1] } main::canaries() ]
