# oauth_audit_log: one JSON line per credential event of SPEC section 8
# (connected, refreshed, refresh_failed, disconnected, revoke_failed,
# credentials_set, and connect_failed for a callback that did not connect),
# each with exactly the SPEC fields, never a secret.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use Test::More;
use OAuthKit;

add_block_preprocessor(\&OAuthKit::api_defaults);
no_shuffle();


my @FIELDS = sort qw(time event owner provider account result error
                     remote_addr);

# every line of the audit log, decoded; each must be one JSON object with
# exactly the SPEC fields
sub audit_events {
    my @lines = audit_lines();
    my @ev;
    for my $l (@lines) {
        my $j = eval { json_decode($l) };
        ok($j && ref $j eq 'HASH', 'a JSON object a line') or diag($l);
        next unless ref $j eq 'HASH';
        is_deeply([ sort keys %$j ], \@FIELDS,
                  "$j->{event}: exactly the SPEC fields");
        like($j->{time}, $TIME_RE, "$j->{event}: RFC 3339 UTC time");
        push @ev, $j;
    }
    return @ev;
}

sub connected_ok {
    my ($owner, $provider, $code, @rest) = @_;
    my $c = connect_flow(owner => $owner, provider => $provider, code => $code,
        start_args => join(q{&}, q{return_to=/done}, +{@rest}->{start_args} // ()));
    is($c->{status}, 'connected', "$owner connects $provider/$code");
    return $c;
}

sub one {
    my ($ev, $event, $provider, $what) = @_;
    my @m = grep { $_->{event} eq $event && $_->{provider} eq $provider }
            @$ev;
    is(scalar @m, 1, "one $event line for $provider ($what)");
    return $m[0] || {};
}

#--------------------------------------------------------------------------

sub t_events {
    my $t0 = time;

    connected_ok('alice', 'fake', 'a1');
    is(api('POST', 'connections/fake/a1/refresh', owner => 'alice')->{status},
       200, 'refreshed');
    connected_ok('alice', 'refuser', 'r1');
    is(api('POST', 'connections/refuser/r1/refresh',
           owner => 'alice')->{status}, 502, 'refresh refused');
    is(api('POST', 'connections/keys', owner => 'bob',
           json => { account => 'k1',
                     credentials => { api_key => 'key-secret-1' } })
       ->{status}, 201, 'credentials set');
    is(api('DELETE', 'connections/fake/a1', owner => 'alice')->{json}{revoked},
       JSON::PP::true, 'disconnected, revoked');
    is(api('DELETE', 'connections/refuser/r1', owner => 'alice')->{json}{revoked},
       JSON::PP::false, 'disconnected, revocation failed');

    # refused calls are no events
    api('POST', 'connections/vkeys', owner => 'bob',
        json => { account => 'v', credentials => { api_key => 'bad' } });
    api('DELETE', 'connections/keys/k1', owner => 'alice');
    api('POST', 'connections/keys/k1/refresh', owner => 'bob');

    my @raw = audit_lines();
    my @ev = audit_events();
    is(scalar @ev, scalar @raw, 'every line decodes');

    is_deeply([ map { "$_->{event} $_->{provider}" } @ev ],
              [ 'connected fake', 'refreshed fake', 'connected refuser',
                'refresh_failed refuser', 'credentials_set keys',
                'disconnected fake', 'disconnected refuser',
                'revoke_failed refuser' ],
              'the events, in order, and nothing else');

    for my $e (@ev) {
        ok(abs(OAuthKit::epoch($e->{time}) - $t0) < 60,
           "$e->{event}: time is now");
        ok(!defined $e->{remote_addr} || $e->{remote_addr} eq '127.0.0.1',
           "$e->{event}: remote_addr is the client or null");
    }

    my $c = one(\@ev, 'connected', 'fake', 'connect');
    is_deeply([ @$c{qw(owner account result error remote_addr)} ],
              [ 'alice', 'a1', 'ok', undef, '127.0.0.1' ], 'connected');

    # refreshes asked for through the API name who asked
    $c = one(\@ev, 'refreshed', 'fake', 'API refresh');
    is_deeply([ @$c{qw(owner account result error remote_addr)} ],
              [ 'alice', 'a1', 'ok', undef, '127.0.0.1' ], 'refreshed');

    $c = one(\@ev, 'refresh_failed', 'refuser', 'refused refresh');
    is_deeply([ @$c{qw(owner account result remote_addr)} ],
              [ 'alice', 'r1', 'error', '127.0.0.1' ], 'refresh_failed');
    is($c->{error}, 'invalid_grant', "refresh_failed: the provider's code");

    $c = one(\@ev, 'credentials_set', 'keys', 'API key');
    is_deeply([ @$c{qw(owner account result error remote_addr)} ],
              [ 'bob', 'k1', 'ok', undef, '127.0.0.1' ], 'credentials_set');

    $c = one(\@ev, 'disconnected', 'fake', 'DELETE');
    is_deeply([ @$c{qw(owner account result error remote_addr)} ],
              [ 'alice', 'a1', 'ok', undef, '127.0.0.1' ], 'disconnected');

    $c = one(\@ev, 'revoke_failed', 'refuser', 'revocation 500');
    is_deeply([ @$c{qw(owner account result remote_addr)} ],
              [ 'alice', 'r1', 'error', '127.0.0.1' ], 'revoke_failed');
    ok(length($c->{error} // ''), 'revoke_failed: an error code');

    my $all = join "\n", @raw;
    unlike($all, qr/AT2?-|RT-|key-secret-1|fake-secret|refuser-secret/,
           'no token, key or client secret in the audit log');
    like($all, qr/\A(\{[^\n]*\}\n?)+\z/, 'one object a line');
}

# owners are whatever the operator's variable holds: quotes, backslashes,
# control characters and bytes that are not UTF-8 stay one valid line
sub t_escaping {
    my @owners = ("o\"q", "b\\s", "t\tab", "caf\xc3\xa9", "bad\xff\xfe");
    for my $o (@owners) {
        is(api('POST', 'connections/keys', owner => $o,
               json => { account => 'k1',
                         credentials => { api_key => 'v' } })->{status},
           201, 'credentials set for an odd owner');
    }

    my @raw = audit_lines();
    is(scalar @raw, scalar @owners, 'one line each');
    my @ev = audit_events();
    is(scalar @ev, scalar @owners, 'each line is valid JSON');
    is($ev[0]{owner}, "o\"q", 'a quote survives');
    is($ev[1]{owner}, "b\\s", 'a backslash survives');
    is($ev[2]{owner}, "t\tab", 'a tab survives');
    is($ev[3]{owner}, "caf\x{e9}", 'UTF-8 survives');
    isnt($ev[4]{owner}, undef, 'a non-UTF-8 owner is replaced, not dropped');
}

sub t_audit_off {
    is(api('POST', 'connections/keys', owner => 'alice',
           json => { account => 'k1', credentials => { api_key => 'v' } })
       ->{status}, 201, 'credentials set');
    ok(!-e $ENV{TEST_NGINX_OAUTH_AUDIT}, 'no audit file');
}

# failed connect attempts: one connect_failed line each, with the owner
# (the flow's; the request's when no flow is known), the provider when
# known, the reason; never the state or the code
sub t_failures {
    my (@states, @codes);
    my $fail = sub {
        my ($f, $error, $what, %o) = @_;
        push @states, $f->{state};
        push @codes, $o{code} if defined $o{code};
        my $r = OAuthKit::flow_result(callback($f, %o));
        is($r->{error}, $error, "$what: $error");
    };

    my $f = start_flow(uri => '/connect/fake', owner => 'alice');
    $fail->($f, 'browser_mismatch', 'no cookie', cookie => undef,
            code => 'code-bm-1');

    $f = start_flow(uri => '/connect/fake', owner => 'alice');
    $fail->($f, 'owner_mismatch', 'another owner', owner => 'mallory',
            code => 'code-om-1');

    $f = start_flow(uri => '/connect/issued', owner => 'bob');
    $fail->($f, 'issuer_mismatch', 'another issuer', code => 'code-im-1',
            query => 'iss=https%3A%2F%2Fevil.example');

    $f = start_flow(uri => '/connect/nowhere', owner => 'bob');
    $fail->($f, 'token_request_failed', 'no token endpoint',
            code => 'code-tr-1');

    my $forged = 'F' x 43;
    push @states, $forged;
    is(callback({ state => $forged, owner => 'carol' },
                code => 'code-fs-1')->{status},
       400, 'a forged state');
    push @codes, 'code-fs-1';
    is(callback({ state => $forged }, code => 'code-fs-2')->{status}, 400,
       'a forged state, no owner');
    push @codes, 'code-fs-2';

    my @raw = audit_lines();
    my @ev = audit_events();
    is(scalar @ev, scalar @raw, 'every line decodes');
    is_deeply([ map { join ' ', map { $_ // '-' }
                      @$_{qw(event owner provider account result error)} }
                @ev ],
              [ 'connect_failed alice fake - error browser_mismatch',
                'connect_failed alice fake - error owner_mismatch',
                'connect_failed bob issued - error issuer_mismatch',
                'connect_failed bob nowhere - error token_request_failed',
                'connect_failed carol - - error invalid_state',
                'connect_failed - - - error invalid_state' ],
              'one connect_failed line each: owner, provider, reason');
    is($_->{remote_addr}, '127.0.0.1', "$_->{error}: remote_addr")
        for @ev;

    my $all = join "\n", @raw;
    for my $s (@states, @codes) {
        unlike($all, qr/\Q$s\E/, 'no state or code in the audit log');
    }
}

run_tests();

__DATA__

=== TEST 1: an audit line for each event, with the SPEC fields
--- init
main::t_events();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log
[alert]
[emerg]



=== TEST 2: odd owners: every line stays valid JSON
--- init
main::t_escaping();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: o"q
--- response_body_like: ^\[\{"provider":"keys"
--- no_error_log
[alert]
[emerg]



=== TEST 3: oauth_audit_log off (the default): no file, no error
--- http_config
    oauth_store $TEST_NGINX_OAUTH_STORE max_size=16m;
    oauth_key_file $TEST_NGINX_OAUTH_KEY_FILE;

    oauth_provider keys {
        kind api_key;
        token_header X-Api-Key "";
    }
--- config
    oauth_owner $http_x_owner;

    location /oauth/api/ {
        oauth_api;
    }
--- init
main::t_audit_off();
--- request
GET /oauth/api/connections/keys/k1
--- more_headers
X-Owner: alice
--- response_body_like: "account":"k1"
--- no_error_log
[alert]
[emerg]
[error]



=== TEST 4: failed connect attempts: a connect_failed line each
--- http_config
    oauth_provider issued {
        client_id issued-client;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/static/token;
        issuer https://issuer.example;
        account_id sub;
    }

    oauth_provider nowhere {
        client_id nowhere-client;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url http://127.0.0.1:1/token;
        account_id sub;
    }
--- init
main::t_failures();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log
[alert]
[emerg]
