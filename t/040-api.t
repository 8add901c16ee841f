# oauth_api: every endpoint with the JSON shapes of SPEC section 6, every
# error status, owner isolation both ways (T32), the CSRF rules, body and
# Content-Type edge cases (T72), revocation on disconnect (T31) and the
# non-OAuth kinds end to end through oauth_token.
#
# Connections are made by real connect flows (t/lib/OAuthKit.pm) against a
# fake provider served by the same nginx; each block's --- init runs the
# steps and their checks, then the block's own request checks the end
# state.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use Test::More;
use OAuthKit;

add_block_preprocessor(\&OAuthKit::api_defaults);
no_shuffle();


my %CONN_FIELDS = map { $_ => 1 } qw(provider account account_name status
    scopes params created_at updated_at expires_at last_refresh_at
    last_error label metadata);

sub time_or_null {
    my ($v, $what) = @_;
    ok(!defined $v || $v =~ $TIME_RE, "$what is an RFC 3339 UTC time or null")
        or diag("$what: " . ($v // 'null'));
}

# one connection object, exactly as SPEC section 6 has it
sub check_conn {
    my ($c, $what) = @_;
    is(ref $c, 'HASH', "$what is an object") or return;
    is_deeply([ sort keys %$c ], [ sort keys %CONN_FIELDS ],
              "$what has exactly the SPEC fields");
    like($c->{status}, qr/^(connected|expired|error|revoked)\z/,
         "$what status is a SPEC value");
    is(ref $c->{scopes}, 'ARRAY', "$what scopes is an array");
    is(ref $c->{params}, 'HASH', "$what params is an object");
    ok(defined $c->{created_at} && $c->{created_at} =~ $TIME_RE,
       "$what created_at is a time");
    ok(defined $c->{updated_at} && $c->{updated_at} =~ $TIME_RE,
       "$what updated_at is a time");
    time_or_null($c->{expires_at}, "$what expires_at");
    time_or_null($c->{last_refresh_at}, "$what last_refresh_at");
}

# an error response: the status and exactly {"error","message"}
sub check_error {
    my ($r, $status, $code, $what) = @_;
    is($r->{status}, $status, "$what: HTTP $status");
    like(OAuthKit::header($r, 'content-type') // '', qr{^application/json},
         "$what: JSON");
    is(ref $r->{json}, 'HASH', "$what: an object") or return;
    is_deeply([ sort keys %{ $r->{json} } ], [ 'error', 'message' ],
              "$what: {error, message}");
    is($r->{json}{error}, $code, "$what: error $code") if defined $code;
    ok(length($r->{json}{message} // ''), "$what: a message");
}

sub connected_ok {
    my ($owner, $provider, $code, @rest) = @_;
    my $c = connect_flow(owner => $owner, provider => $provider, code => $code,
        start_args => join(q{&}, q{return_to=/done}, +{@rest}->{start_args} // ()));
    is($c->{status}, 'connected', "$owner connects $provider/$code")
        or diag(explain({ start => $c->{start}{raw},
                          callback => $c->{callback}{raw} }));
    return $c;
}

#--------------------------------------------------------------------------

sub t_providers {
    connected_ok('alice', 'fake', 'a1', start_args => 'region=eu');
    connected_ok('alice', 'fake', 'a2');

    my $r = api('GET', 'providers', owner => 'alice');
    is($r->{status}, 200, 'GET providers: 200');
    is(ref $r->{json}, 'ARRAY', 'providers: an array');

    my %by = map { $_->{name} => $_ } @{ $r->{json} || [] };
    is_deeply([ sort keys %by ],
              [ sort qw(fake refuser slowrev lazyrev down keys vkeys basicp
                        hdr hdr13) ],
              'every configured provider is listed');

    for my $p (values %by) {
        is_deeply([ sort keys %$p ],
                  [ sort qw(name display_name kind connection_params
                            connected circuit) ],
                  "provider $p->{name}: exactly the SPEC fields");
        like($p->{circuit}, qr/^(closed|open|half_open)\z/,
             "provider $p->{name}: circuit value");
    }

    is($by{fake}{display_name}, 'Fake Platform', 'display_name');
    is($by{down}{display_name}, 'down', 'display_name defaults to the name');
    is($by{fake}{kind}, 'oauth2', 'kind oauth2');
    is($by{keys}{kind}, 'api_key', 'kind api_key');
    is($by{basicp}{kind}, 'basic', 'kind basic');
    is($by{hdr}{kind}, 'header', 'kind header');
    is_deeply($by{fake}{connection_params},
              [ { name => 'region', required => JSON::PP::false } ],
              'connection_params');
    is_deeply($by{keys}{connection_params}, [], 'no connection_params: []');
    is($by{fake}{connected}, 2, "alice's two fake connections");
    is($by{keys}{connected}, 0, 'no keys connection');
    is($by{fake}{circuit}, 'closed', 'circuit closed');

    $r = api('GET', 'providers', owner => 'bob');
    my %bob = map { $_->{name} => $_ } @{ $r->{json} || [] };
    is($bob{fake}{connected}, 0, "bob does not count alice's connections");
}

sub t_connections {
    connected_ok('alice', 'fake', 'a1', start_args => 'region=eu');
    connected_ok('alice', 'refuser', 'r1');
    my $r = api('POST', 'connections/keys', owner => 'alice',
                json => { account => 'k1',
                          credentials => { api_key => 'k-secret-1' } });
    is($r->{status}, 201, 'api key stored');

    my $before = time;
    $r = api('GET', 'connections', owner => 'alice');
    is($r->{status}, 200, 'GET connections: 200');
    is(ref $r->{json}, 'ARRAY', 'connections: an array');
    is(scalar @{ $r->{json} || [] }, 3, 'three connections');

    my %by = map {; "$_->{provider}/$_->{account}" => $_ } @{ $r->{json} };
    check_conn($_, "connection $_->{provider}/$_->{account}")
        for values %by;

    my $c = $by{'fake/a1'};
    is($c->{account_name}, 'User a1', 'account_name from userinfo');
    is($c->{status}, 'connected', 'status connected');
    is_deeply($c->{scopes}, [ 'read', 'write' ], 'scopes as granted');
    is_deeply($c->{params}, { region => 'eu' }, 'kept connection params');
    is($c->{last_error}, undef, 'no last_error');
    my $exp = OAuthKit::epoch($c->{expires_at});
    ok($exp && abs($exp - ($before + 3600)) < 30,
       'expires_at is about now + expires_in');

    my $k = $by{'keys/k1'};
    is($k->{account_name}, undef, 'api key: account_name null');
    is($k->{expires_at}, undef, 'api key: expires_at null');
    is($k->{last_refresh_at}, undef, 'api key: last_refresh_at null');
    is_deeply($k->{scopes}, [], 'api key: no scopes');
    is_deeply($k->{params}, {}, 'api key: no params');

    $r = api('GET', 'connections?provider=fake', owner => 'alice');
    is_deeply([ map { "$_->{provider}/$_->{account}" } @{ $r->{json} } ],
              [ 'fake/a1' ], '?provider= filters');

    $r = api('GET', 'connections?provider=nosuch', owner => 'alice');
    is($r->{status}, 200, '?provider= unknown: 200');
    is_deeply($r->{json}, [], '?provider= unknown: empty');

    $r = api('GET', 'connections/fake/a1', owner => 'alice');
    is($r->{status}, 200, 'GET one: 200');
    check_conn($r->{json}, 'GET one');
    is_deeply($r->{json}, $c, 'GET one is the listed object');

    $r = api('GET', 'connections', owner => 'bob');
    is_deeply($r->{json}, [], 'bob sees none of them');

    # what is never in the API
    $r = api('GET', 'connections', owner => 'alice');
    unlike($r->{body}, qr/AT-|RT-|k-secret-1|fake-secret/,
           'no token, key or client secret in the list');
}

sub t_errors {
    connected_ok('alice', 'fake', 'a1');

    # 401: no owner, whatever the path
    for my $req ([ GET => 'providers' ], [ GET => 'connections' ],
                 [ GET => 'connections/fake/a1' ],
                 [ DELETE => 'connections/fake/a1' ],
                 [ POST => 'connections/fake/a1/refresh' ],
                 [ POST => 'connections/keys' ], [ GET => 'nope' ])
    {
        check_error(api(@$req), 401, 'unauthenticated',
                    "no owner: $req->[0] $req->[1]");
    }
    check_error(api('GET', 'connections', owner => ''), 401,
                'unauthenticated', 'empty owner');

    # 404: unknown provider, connection, path
    for my $req ([ GET => 'connections/nosuch/a1' ],
                 [ GET => 'connections/fake/nosuch' ],
                 [ DELETE => 'connections/fake/nosuch' ],
                 [ POST => 'connections/fake/nosuch/refresh' ],
                 [ POST => 'connections/fake/nosuch/test' ],
                 [ POST => 'connections/nosuch' ],
                 [ GET => 'nope' ], [ GET => '' ],
                 [ GET => 'connections/fake/a1/bogus/more' ],
                 [ POST => 'connections/fake/a1/bogus' ],
                 [ GET => 'providers/fake' ])
    {
        check_error(api(@$req, owner => 'alice'), 404, undef,
                    "$req->[0] $req->[1]");
    }

    # 405: a method that does not apply, with Allow
    for my $req ([ PUT => 'connections/fake/a1', 'GET, HEAD, PATCH, DELETE' ],
                 [ POST => 'connections/fake/a1', 'GET, HEAD, PATCH, DELETE' ],
                 [ DELETE => 'providers', 'GET, HEAD' ],
                 [ POST => 'providers', 'GET, HEAD' ],
                 [ PUT => 'connections', 'GET, HEAD, DELETE' ],
                 [ GET => 'connections/fake/a1/refresh', 'POST' ],
                 [ DELETE => 'connections/fake/a1/test', 'POST' ],
                 [ GET => 'connections/keys', 'POST' ],
                 [ PATCH => 'connections', undef ])
    {
        my ($m, $p, $allow) = @$req;
        my $r = api($m, $p, owner => 'alice');
        check_error($r, 405, 'method_not_allowed', "$m $p");
        is(OAuthKit::header($r, 'allow'), $allow, "$m $p: Allow") if $allow;
        ok($r->{headers}{allow}, "$m $p: an Allow header") unless $allow;
    }

    my $r = api('GET', 'connections/fake/a1', owner => 'alice');
    is($r->{status}, 200, 'the connection survived every refused call');
}

sub t_isolation {
    connected_ok('alice', 'fake', 'a1');
    connected_ok('bob', 'fake', 'b1');
    connected_ok('alice', 'fake', 'shared');
    connected_ok('bob', 'fake', 'shared');

    my $alice = api('GET', 'connections/fake/a1', owner => 'alice')->{json};
    my $bob = api('GET', 'connections/fake/b1', owner => 'bob')->{json};
    my $nrec = () = rec_lines();

    for my $pair ([ bob => 'a1' ], [ alice => 'b1' ]) {
        my ($who, $acct) = @$pair;
        check_error(api('GET', "connections/fake/$acct", owner => $who), 404,
                    'not_found', "$who GET another owner's $acct");
        check_error(api('POST', "connections/fake/$acct/refresh",
                        owner => $who),
                    404, 'not_found', "$who refresh another owner's $acct");
        check_error(api('POST', "connections/fake/$acct/test", owner => $who),
                    404, 'not_found', "$who test another owner's $acct");
        check_error(api('DELETE', "connections/fake/$acct", owner => $who),
                    404, 'not_found', "$who DELETE another owner's $acct");
    }

    is_deeply(api('GET', 'connections/fake/a1', owner => 'alice')->{json},
              $alice, "alice's connection unchanged");
    is_deeply(api('GET', 'connections/fake/b1', owner => 'bob')->{json},
              $bob, "bob's connection unchanged");

    my @rec = rec_lines();
    is(scalar @rec, $nrec, 'no call reached the provider (T32)')
        or diag(explain([ @rec[$nrec .. $#rec] ]));
    ok(!grep(/"event":"(disconnected|refreshed)"/, audit_lines()),
       'no disconnect or refresh audited');

    # one account id under two owners: two connections
    my $r = api('DELETE', 'connections/fake/shared', owner => 'bob');
    is($r->{status}, 200, "bob deletes his 'shared'");
    is(api('GET', 'connections/fake/shared', owner => 'bob')->{status}, 404,
       "bob's 'shared' is gone");
    is(api('GET', 'connections/fake/shared', owner => 'alice')->{status},
       200, "alice's 'shared' stays");

    is_deeply([ map { $_->{account} }
                @{ api('GET', 'connections', owner => 'alice')->{json} } ],
              [ sort qw(a1 shared) ], 'alice lists only hers');
}

sub t_csrf {
    connected_ok('alice', 'fake', 'a1');
    my $port = $ENV{TEST_NGINX_SERVER_PORT};
    my $nrec = () = rec_lines();

    my @foreign = ('http://evil.example', "https://127.0.0.1:$port",
                   "http://127.0.0.1:$port.evil.example", 'null',
                   "http://127.0.0.1:${port}0");

    for my $o (@foreign) {
        check_error(api('DELETE', 'connections/fake/a1', owner => 'alice',
                        headers => [ Origin => $o ]),
                    403, 'forbidden_origin', "DELETE from $o");
        check_error(api('POST', 'connections/fake/a1/refresh',
                        owner => 'alice', headers => [ Origin => $o ]),
                    403, 'forbidden_origin', "refresh from $o");
        check_error(api('POST', 'connections/keys', owner => 'alice',
                        headers => [ Origin => $o ],
                        json => { account => 'k1',
                                  credentials => { api_key => 'x' } }),
                    403, 'forbidden_origin', "credentials from $o");
    }

    check_error(api('DELETE', 'connections/fake/a1', owner => 'alice',
                    headers => [ Origin => "http://127.0.0.1:$port",
                                 Origin => 'http://evil.example' ]),
                403, 'forbidden_origin', 'two Origin headers');

    is(scalar(() = rec_lines()), $nrec, 'refused calls reached no provider');
    is(api('GET', 'connections/keys/k1', owner => 'alice')->{status}, 404,
       'refused credentials were not stored');
    is(api('GET', 'connections/fake/a1', owner => 'alice')->{status}, 200,
       'refused DELETE deleted nothing');

    # reads are not state-changing: a foreign Origin may read
    is(api('GET', 'connections', owner => 'alice',
           headers => [ Origin => 'http://evil.example' ])->{status},
       200, 'GET with a foreign Origin');

    # the request's own origin, and an allowed one
    my $r = api('POST', 'connections/fake/a1/refresh', owner => 'alice',
                headers => [ Origin => "http://127.0.0.1:$port" ]);
    is($r->{status}, 200, 'own origin may refresh');

    $r = api('POST', 'connections/keys', owner => 'alice',
             headers => [ Origin => 'https://app.example.com' ],
             json => { account => 'k1', credentials => { api_key => 'x' } });
    is($r->{status}, 201, 'allowed origin may store credentials');

    $r = api('DELETE', 'connections/fake/a1', owner => 'alice',
             headers => [ Origin => 'HTTPS://APP.EXAMPLE.COM' ]);
    is($r->{status}, 200, 'allowed origin (any case) may delete');

    $r = api('DELETE', 'connections/keys/k1', owner => 'alice');
    is($r->{status}, 200, 'no Origin at all (not a browser): allowed');
}

sub t_bodies {
    my $big = '{"account":"k1","credentials":{"api_key":"' . ('x' x (65 * 1024))
              . '"}}';

    check_error(api('POST', 'connections/keys', owner => 'alice',
                    body => '{"account":"k1","credentials":{"api_key":"x"}}',
                    headers => [ 'Content-Type' => 'text/plain' ]),
                415, 'unsupported_media_type', 'text/plain body');
    check_error(api('POST', 'connections/keys', owner => 'alice',
                    body => '{"account":"k1","credentials":{"api_key":"x"}}'),
                415, 'unsupported_media_type', 'a body without Content-Type');
    check_error(api('POST', 'connections/keys', owner => 'alice',
                    body => 'account=k1',
                    headers => [ 'Content-Type' =>
                                 'application/x-www-form-urlencoded' ]),
                415, 'unsupported_media_type', 'a form post (CSRF shape)');
    check_error(api('POST', 'connections/keys', owner => 'alice',
                    body => '{}',
                    headers => [ 'Content-Type' => 'application/jsonp' ]),
                415, 'unsupported_media_type', 'application/jsonp');

    check_error(api('POST', 'connections/keys', owner => 'alice',
                    body => $big,
                    headers => [ 'Content-Type' => 'application/json' ]),
                413, 'body_too_large', '65 KiB body');
    check_error(api('POST', 'connections/keys', owner => 'alice',
                    body => $big, chunked => 1,
                    headers => [ 'Content-Type' => 'application/json' ]),
                413, 'body_too_large', '65 KiB chunked body');

    # far over the limit: refused before it is read (T72)
    my $huge = '{"a":"' . ('z' x (2 * 1024 * 1024)) . '"}';
    check_error(api('POST', 'connections/keys', owner => 'alice',
                    body => $huge,
                    headers => [ 'Content-Type' => 'application/json' ]),
                413, 'body_too_large', '2 MiB body');
    my $r = api('POST', 'connections/keys', owner => 'alice', body => $huge,
                chunked => 1,
                headers => [ 'Content-Type' => 'application/json' ]);
    is($r->{status}, 413, '2 MiB chunked body: 413');
    check_error(api('POST', 'connections/fake/a1/refresh', owner => 'alice',
                    body => $huge),
                413, 'body_too_large', '2 MiB body to refresh');
    check_error(api('DELETE', 'connections/fake/a1', owner => 'alice',
                    body => $huge),
                413, 'body_too_large', '2 MiB body to DELETE');

    for my $bad ('{"account":', 'not json', '[1,2]', '"str"', '42',
                 '{"a":1,"a":2}')
    {
        check_error(api('POST', 'connections/keys', owner => 'alice',
                        body => $bad,
                        headers => [ 'Content-Type' => 'application/json' ]),
                    400, 'invalid_json', "body $bad");
    }

    check_error(api('POST', 'connections/keys', owner => 'alice',
                    headers => [ 'Content-Type' => 'application/json' ]),
                400, undef, 'credentials without a body');

    is(api('GET', 'connections', owner => 'alice')->{body}, "[]\n",
       'nothing was stored by refused bodies');

    # accepted forms: a charset parameter, a chunked body, a body under 64 KiB
    $r = api('POST', 'connections/keys', owner => 'alice',
                body => '{"account":"k1","credentials":{"api_key":"v1"}}',
                headers => [ 'Content-Type' =>
                             'application/json; charset=utf-8' ]);
    is($r->{status}, 201, 'application/json; charset=utf-8');

    $r = api('POST', 'connections/keys', owner => 'alice', chunked => 1,
             body => '{"account":"k2","credentials":{"api_key":"v2"}}',
             headers => [ 'Content-Type' => 'application/json' ]);
    is($r->{status}, 201, 'chunked JSON body');

    my $near = '{"account":"k3","credentials":{"api_key":"'
               . ('y' x 4000) . '"},"pad":"' . ('p' x (60 * 1024)) . '"}';
    $r = api('POST', 'connections/keys', owner => 'alice', body => $near,
             headers => [ 'Content-Type' => 'application/json' ]);
    is($r->{status}, 201, 'a 64 KiB body is read whole (from a temp file)');

    # state-changing calls without a body need no Content-Type
    connected_ok('alice', 'fake', 'a1');
    $r = api('POST', 'connections/fake/a1/refresh', owner => 'alice');
    is($r->{status}, 200, 'POST refresh without a body');
    $r = api('POST', 'connections/fake/a1/refresh', owner => 'alice',
             body => '');
    is($r->{status}, 200, 'POST refresh with Content-Length: 0');
    check_error(api('DELETE', 'connections/keys/k2', owner => 'alice',
                    body => 'x', headers => [ 'Content-Type' => 'text/plain' ]),
                415, 'unsupported_media_type', 'DELETE with a text body');
    check_error(api('DELETE', 'connections/keys/k2', owner => 'alice',
                    body => 'x', chunked => 1),
                415, 'unsupported_media_type', 'DELETE with a chunked body');
    is(api('GET', 'connections/keys/k2', owner => 'alice')->{status}, 200,
       'a refused DELETE deleted nothing');
    $r = api('DELETE', 'connections/keys/k2', owner => 'alice',
             body => '{}', headers => [ 'Content-Type' =>
                                        'application/json ; charset=utf-8' ]);
    is($r->{status}, 200, 'DELETE with a JSON body (ignored)');
}

sub t_credentials_validation {
    my @cases = (
        [ keys   => { account => 'k', credentials => {} }, 'credentials.api_key' ],
        [ keys   => { account => 'k', credentials => { api_key => '' } },
          'credentials.api_key' ],
        [ keys   => { account => 'k', credentials => { api_key => 5 } },
          'credentials.api_key' ],
        [ keys   => { account => 'k', credentials => { key => 'x' } },
          'credentials.api_key' ],
        [ basicp => { account => 'b', credentials => { password => 'p' } },
          'credentials.username' ],
        [ basicp => { account => 'b', credentials => { username => 'u' } },
          'credentials.password' ],
        [ hdr    => { account => 'h', credentials => {} }, 'credentials.value' ],
        [ keys   => { credentials => { api_key => 'x' } }, 'account' ],
        [ keys   => { account => '', credentials => { api_key => 'x' } },
          'account' ],
        [ keys   => { account => 'k' }, 'credentials' ],
        [ keys   => { account => 'k', credentials => 'x' }, 'credentials' ],
        [ keys   => { account => 'k',
                      credentials => { api_key => "a\r\nX-Evil: 1" } },
          'control' ],
        [ basicp => { account => 'b',
                      credentials => { username => 'u:x', password => 'p' } },
          'username' ],
    );

    for my $c (@cases) {
        my ($p, $body, $field) = @$c;
        my $r = api('POST', "connections/$p", owner => 'alice', json => $body);
        check_error($r, 400, undef, "POST $p " . JSON::PP->new->canonical
                                                ->encode($body));
        like($r->{json}{message} // '', qr/\Q$field\E/,
             "the message names $field");
    }

    my $r = api('POST', 'connections/fake', owner => 'alice',
                json => { account => 'x', credentials => { api_key => 'x' } });
    check_error($r, 400, undef, 'credentials for an OAuth provider');

    is(api('GET', 'connections', owner => 'alice')->{body}, "[]\n",
       'nothing stored');
    ok(!grep(/credentials_set/, audit_lines()), 'nothing audited');
}

sub t_refresh {
    connected_ok('alice', 'fake', 'a1');
    my $before = api('GET', 'connections/fake/a1', owner => 'alice')->{json};

    my $nrec = () = rec_lines();
    my $r = api('POST', 'connections/fake/a1/refresh', owner => 'alice');
    is($r->{status}, 200, 'refresh: 200');
    check_conn($r->{json}, 'refreshed connection');
    my $old = OAuthKit::epoch($before->{expires_at});
    my $new = OAuthKit::epoch($r->{json}{expires_at});
    ok($new && $old && $new - $old > 3000,
       'expires_at moved by the new expires_in')
        or diag("before $before->{expires_at} after $r->{json}{expires_at}");
    is($r->{json}{status}, 'connected', 'still connected');
    ok(defined $r->{json}{last_refresh_at}, 'last_refresh_at set');
    is_deeply(api('GET', 'connections/fake/a1', owner => 'alice')->{json},
              $r->{json}, 'the stored record is the one returned');

    my @rec = rec_lines(want => $nrec + 1);
    is(scalar @rec, $nrec + 1, 'one call to the token endpoint');
    like($rec[-1] // '', qr{^/static/token\|Basic .*\|grant_type=refresh_token&refresh_token=RT-a1},
         'a refresh_token grant with client authentication');

    # the new token is the one injected
    $r = request('GET', '/proxy/fake/x', owner => 'alice');
    like($r->{body}, qr/authorization=\[Bearer AT2-a1\]/,
         'the refreshed token is used');

    # the provider refuses: 502 with its error, status error
    connected_ok('alice', 'refuser', 'r1');
    $r = api('POST', 'connections/refuser/r1/refresh', owner => 'alice');
    check_error($r, 502, 'invalid_grant', 'refused refresh');
    unlike($r->{body}, qr/RT-|AT-|refuser-secret/, 'no secret in the error');

    $r = api('GET', 'connections/refuser/r1', owner => 'alice');
    is($r->{json}{status}, 'error', 'a refused refresh leaves status error');
    like($r->{json}{last_error} // '', qr/invalid_grant/, 'last_error kept');

    $r = request('GET', '/proxy/fake/x', owner => 'alice');
    is($r->{status}, 200, 'other connections are unaffected');

    # nothing to refresh in an API key
    api('POST', 'connections/keys', owner => 'alice',
        json => { account => 'k1', credentials => { api_key => 'v' } });
    check_error(api('POST', 'connections/keys/k1/refresh', owner => 'alice'),
                400, 'not_refreshable', 'refresh of an API key');
}

sub t_test_endpoint {
    connected_ok('alice', 'fake', 'a1');

    my $r = api('POST', 'connections/fake/a1/test', owner => 'alice');
    is($r->{status}, 200, 'test: 200');
    is_deeply($r->{json}, { ok => JSON::PP::true, account => 'a1',
                            status => 200 }, 'test: ok');

    my @rec = rec_lines(want => 3);
    is($rec[-1], '/static/userinfo|Bearer AT-a1|', 'userinfo called with the token');

    OAuthKit::fake()->set(userinfo_down => 1);
    $r = api('POST', 'connections/fake/a1/test', owner => 'alice');
    is($r->{status}, 200, 'failing test: still 200');
    is($r->{json}{ok}, JSON::PP::false, 'failing test: ok false');
    is($r->{json}{status}, 401, "failing test: the provider's status");
    ok(exists $r->{json}{account}, 'failing test: account present');
    OAuthKit::fake()->set(userinfo_down => 0);

    is(api('GET', 'connections/fake/a1', owner => 'alice')->{json}{status},
       'connected', 'a failing test changes nothing');

    # an API key tested against userinfo_url
    $r = api('POST', 'connections/vkeys', owner => 'alice',
             json => { account => 'v1', credentials => { api_key => 'good-1' } });
    is($r->{status}, 201, 'verified key stored');
    $r = api('POST', 'connections/vkeys/v1/test', owner => 'alice');
    is_deeply($r->{json}, { ok => JSON::PP::true, account => 'checked',
                            status => 200 }, 'api key test: ok');
    OAuthKit::fake()->set(keycheck_down => 1);
    $r = api('POST', 'connections/vkeys/v1/test', owner => 'alice');
    is($r->{json}{ok}, JSON::PP::false, 'api key test: ok false');
    is($r->{json}{status}, 401, 'api key test: status 401');
    OAuthKit::fake()->set(keycheck_down => 0);

    # nothing to test against
    api('POST', 'connections/keys', owner => 'alice',
        json => { account => 'k1', credentials => { api_key => 'v' } });
    $r = api('POST', 'connections/keys/k1/test', owner => 'alice');
    check_error($r, 400, undef, 'test without userinfo_url');
}

sub t_delete {
    connected_ok('alice', 'fake', 'a1');
    my $nrec = () = rec_lines();

    my $r = api('DELETE', 'connections/fake/a1', owner => 'alice');
    is($r->{status}, 200, 'DELETE: 200');
    is_deeply($r->{json}, { revoked => JSON::PP::true }, 'revoked true');

    my @rec = rec_lines(want => $nrec + 2);
    my @rev = @rec[$nrec .. $#rec];
    is(scalar @rev, 2, 'two revocation calls');
    like($rev[0] // '', qr{^/static/revoke\|Basic \S+\|token=RT-a1&token_type_hint=refresh_token\z},
         'the refresh token first, hinted, with client authentication');
    like($rev[1] // '', qr{^/static/revoke\|Basic \S+\|token=AT-a1&token_type_hint=access_token\z},
         'then the access token, hinted');
    is(OAuthKit::b64('fake-client:fake-secret'),
       ($rev[0] =~ /\|Basic (\S+)\|/)[0], 'client auth as at the token endpoint');

    check_error(api('GET', 'connections/fake/a1', owner => 'alice'), 404,
                'not_found', 'deleted');
    $r = request('GET', '/proxy/fake/x', owner => 'alice');
    is($r->{status}, 401, 'no more injection after disconnect');

    # a revocation endpoint that fails: still deleted, revoked false
    connected_ok('alice', 'refuser', 'r1');
    $nrec = () = rec_lines();
    $r = api('DELETE', 'connections/refuser/r1', owner => 'alice');
    is($r->{status}, 200, 'DELETE with a failing revoke: 200');
    is_deeply($r->{json}, { revoked => JSON::PP::false }, 'revoked false');
    @rec = rec_lines(want => $nrec + 2);
    @rev = @rec[$nrec .. $#rec];
    is(scalar @rev, 2, 'both tokens tried, once each (no retry loop)');
    like($rev[0] // '', qr{^/refuse/revoke\|\|token=RT-r1&token_type_hint=refresh_token&client_id=refuser-client&client_secret=refuser-secret\z},
         'token_auth post: credentials in the body');
    check_error(api('GET', 'connections/refuser/r1', owner => 'alice'), 404,
                'not_found', 'deleted although the revoke failed');
    ok(grep(/"event":"revoke_failed".*"provider":"refuser"/, audit_lines()),
       'revoke_failed audited');

    # a revocation endpoint that does not answer in time
    connected_ok('alice', 'slowrev', 's1');
    my $t0 = time;
    $r = api('DELETE', 'connections/slowrev/s1', owner => 'alice');
    is($r->{status}, 200, 'DELETE with a hanging revoke: 200');
    is_deeply($r->{json}, { revoked => JSON::PP::false },
              'timed out: revoked false');
    ok(time - $t0 < 6, 'bounded by oauth_http_timeout');
    check_error(api('GET', 'connections/slowrev/s1', owner => 'alice'), 404,
                'not_found', 'deleted although the revoke timed out');

    # the client goes away at once: the revocation still happens, whole
    connected_ok('alice', 'lazyrev', 'l1');
    $nrec = () = rec_lines();
    send_and_close('DELETE', '/oauth/api/connections/lazyrev/l1',
                   owner => 'alice');
    @rec = rec_lines(want => $nrec + 2);
    @rev = @rec[$nrec .. $#rec];
    is_deeply([ map { (/token=([^&]+)/)[0] } @rev ], [ 'RT-l1', 'AT-l1' ],
              'a client that left: both tokens still revoked');
    sleep 0.2;
    check_error(api('GET', 'connections/lazyrev/l1', owner => 'alice'), 404,
                'not_found', 'a client that left: deleted');
    ok(!grep(/"revoke_failed".*"lazyrev"/, audit_lines()),
       'a client that left: no revoke_failed');

    # nothing to revoke for an API key
    api('POST', 'connections/keys', owner => 'alice',
        json => { account => 'k1', credentials => { api_key => 'v' } });
    $nrec = () = rec_lines();
    $r = api('DELETE', 'connections/keys/k1', owner => 'alice');
    is($r->{status}, 200, 'DELETE api key: 200');
    is_deeply($r->{json}, { revoked => JSON::PP::false },
              'api key: nothing revoked');
    is(scalar(() = rec_lines()), $nrec, 'api key: no provider call');
    is(api('GET', 'connections/keys/k1', owner => 'alice')->{status}, 404,
       'api key deleted');
}

sub t_kinds {
    my $r = api('POST', 'connections/keys', owner => 'alice',
                json => { account => 'k1',
                          credentials => { api_key => 'key-one' } });
    is($r->{status}, 201, 'api_key: 201');
    check_conn($r->{json}, 'api_key response');
    is($r->{json}{account}, 'k1', 'api_key: the account');
    is($r->{json}{status}, 'connected', 'api_key: connected');
    unlike($r->{body}, qr/key-one/, 'api_key: the key is not echoed');

    $r = request('GET', '/proxy/keys/x', owner => 'alice',
                 headers => [ 'X-Api-Key' => 'attacker',
                              'X_Api_Key' => 'attacker2' ]);
    is($r->{status}, 200, 'api_key proxied');
    like($r->{body}, qr/^x-api-key=\[key-one\]$/m,
         'api_key: X-Api-Key with an empty prefix');
    like($r->{body}, qr/^authorization=\[\]$/m, 'api_key: no Authorization');
    unlike($r->{body}, qr/attacker/, "the client's own key is dropped");

    $r = api('POST', 'connections/basicp', owner => 'alice',
             json => { account => 'b1',
                       credentials => { username => 'user1',
                                        password => "p\x{e4}ss w:rd" } });
    is($r->{status}, 201, 'basic: 201');
    $r = request('GET', '/proxy/basicp/x', owner => 'alice');
    my $want = OAuthKit::b64("user1:p\xc3\xa4ss w:rd");
    like($r->{body}, qr/^authorization=\[Basic \Q$want\E\]$/m,
         'basic: Authorization Basic base64(user:password)');

    $r = api('POST', 'connections/hdr', owner => 'alice',
             json => { account => 'h1',
                       credentials => { value => 'Token abc=def' } });
    is($r->{status}, 201, 'header: 201');
    $r = request('GET', '/proxy/hdr/x', owner => 'alice');
    like($r->{body}, qr/^x-auth-token=\[Token abc=def\]$/m,
         'header: the raw value in token_header');
    like($r->{body}, qr/^authorization=\[\]$/m, 'header: no Authorization');

    # a header name as long as "Authorization" is not taken for it
    $r = api('POST', 'connections/hdr13', owner => 'alice',
             json => { account => 'h1',
                       credentials => { value => 'raw13' } });
    $r = request('GET', '/proxy/hdr13/x', owner => 'alice');
    like($r->{body}, qr/^x-custom-auth=\[raw13\]$/m,
         'header: X-Custom-Auth gets the raw value');

    # new credentials replace the old ones, created_at stays
    my $first = api('GET', 'connections/keys/k1', owner => 'alice')->{json};
    sleep 1;
    $r = api('POST', 'connections/keys', owner => 'alice',
             json => { account => 'k1',
                       credentials => { api_key => 'key-two' } });
    ok($r->{status} == 201 || $r->{status} == 200, 'replaced');
    is($r->{json}{created_at}, $first->{created_at}, 'created_at kept');
    $r = request('GET', '/proxy/keys/x', owner => 'alice');
    like($r->{body}, qr/^x-api-key=\[key-two\]$/m, 'the new key is used');

    # bob has none of them
    $r = request('GET', '/proxy/keys/x', owner => 'bob');
    is($r->{status}, 401, "bob: not connected");
    like($r->{body}, qr/not_connected/, 'bob: not_connected');

    ok(scalar(grep(/"event":"credentials_set"/, audit_lines())) >= 3,
       'credentials_set audited');
}

sub t_verification {
    my $nrec = () = rec_lines();
    my $r = api('POST', 'connections/vkeys', owner => 'alice',
                json => { account => 'v1',
                          credentials => { api_key => 'bad-key' } });
    check_error($r, 400, 'invalid_credentials', 'refused by userinfo_url');
    my @rec = rec_lines(want => $nrec + 1);
    is(scalar @rec, $nrec + 1, 'one verification call');
    is($rec[-1], '/keycheck||', 'the key was tried at userinfo_url');
    check_error(api('GET', 'connections/vkeys/v1', owner => 'alice'), 404,
                'not_found', 'nothing stored');
    ok(!grep(/credentials_set/, audit_lines()), 'nothing audited');

    $r = api('POST', 'connections/vkeys', owner => 'alice',
             json => { account => 'v1',
                       credentials => { api_key => 'good-key' } });
    is($r->{status}, 201, 'accepted by userinfo_url: 201');
    $r = request('GET', '/proxy/keys/x', owner => 'alice');
    is($r->{status}, 401, 'vkeys is not keys');
}

sub t_encoded_account {
    my $r = api('POST', 'connections/keys', owner => 'alice',
                json => { account => 'team/one',
                          credentials => { api_key => 'slash-key' } });
    is($r->{status}, 201, 'an account with a slash');
    is($r->{json}{account}, 'team/one', 'the account as given');

    $r = api('GET', 'connections/keys/team%2Fone', owner => 'alice');
    is($r->{status}, 200, 'GET with %2F');
    is($r->{json}{account}, 'team/one', 'GET with %2F: the account');

    $r = api('GET', 'connections/keys/team%2fone', owner => 'alice');
    is($r->{status}, 200, 'GET with %2f');

    is(api('GET', 'connections/keys/team/one', owner => 'alice')->{status},
       404, 'an unencoded slash is another path');

    $r = request('GET', '/proxy/keysh/x', owner => 'alice',
                 headers => [ 'X-Account' => 'team/one' ]);
    like($r->{body}, qr/^x-api-key=\[slash-key\]$/m, 'injected for team/one');

    $r = api('DELETE', 'connections/keys/team%2Fone', owner => 'alice');
    is($r->{status}, 200, 'DELETE with %2F');
    is(api('GET', 'connections/keys/team%2Fone', owner => 'alice')->{status},
       404, 'deleted');
}

# Finding 7 (issue 9): a body that carries credentials leaves no copy in
# the worker's memory once answered.  The scan reads every readable mapping
# of every worker through /proc/PID/mem; it proves it can see by finding a
# label (stored in plaintext in the store's map) that it was given too.
sub mem_has {
    my ($needle) = @_;
    my $n = 0;
    # without master_process (the runners' default) nginx is one process
    my @pids = OAuthKit::worker_pids();
    @pids = grep { defined } OAuthKit::master_pid() unless @pids;
    for my $pid (@pids) {
        open my $maps, '<', "/proc/$pid/maps" or next;
        open my $mem, '<:raw', "/proc/$pid/mem" or next;
        while (my $line = <$maps>) {
            my ($lo, $hi, $perm, $path) =
                $line =~ /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/
                or next;
            next unless $perm =~ /^r/;
            next if $path =~ /^\[(vvar|vsyscall|vdso)\]/;
            # page by page (overlapping by the needle's length): the
            # store's map past the file's end does not read at all
            my $step = 4096;
            for (my $at = hex($lo); $at < hex($hi); $at += $step) {
                my $len = hex($hi) - $at;
                $len = $step + length $needle if $len > $step + length $needle;
                sysseek($mem, $at, 0) or next;
                my $buf = '';
                my $got = sysread($mem, $buf, $len);
                next unless $got;
                if (index($buf, $needle) >= 0) {
                    $n++;
                    last;
                }
            }
        }
    }
    return $n;
}

sub t_body_wiped {
    my $key = 'wipe-key-' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    my $label = 'seen-label-' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;

    my $r = api('POST', 'connections/keys', owner => 'alice',
                json => { account => 'w1', credentials => { api_key => $key } });
    is($r->{status}, 201, 'credentials stored');
    $r = api('PATCH', 'connections/keys/w1', owner => 'alice',
             json => { label => $label });
    is($r->{status}, 200, 'a label set');
    OAuthKit::wait_for(sub { mem_has($label) }, 5);
    ok(mem_has($label), 'the scan sees what is in the workers\' memory');
    is(mem_has($key), 0, 'no copy of the credential is left in a worker');
}

sub t_expired {
    # 3 s: a loaded machine's connect and first GET fit in its lifetime
    OAuthKit::fake()->set(short_expires_in => 3);
    connected_ok('alice', 'short', 's1');
    my $r = api('GET', 'connections/short/s1', owner => 'alice');
    is($r->{json}{status}, 'connected', 'connected while valid');
    sleep 4.2;
    $r = api('GET', 'connections/short/s1', owner => 'alice');
    is($r->{json}{status}, 'expired',
       'expired once the token expired with no refresh token');
    check_conn($r->{json}, 'expired connection');
    $r = request('GET', '/proxy/short/x', owner => 'alice');
    is($r->{status}, 401, 'an expired token is not injected');
    check_error(api('POST', 'connections/short/s1/refresh', owner => 'alice'),
                400, 'not_refreshable', 'refresh without a refresh token');
}

run_tests();

__DATA__

=== TEST 1: GET providers: every provider, SPEC fields, per-owner counts
--- init
main::t_providers();
--- request
GET /oauth/api/providers
--- more_headers
X-Owner: alice
--- response_headers
Content-Type: application/json
Cache-Control: no-store
--- response_body_like: ^\[\{"name":"fake",.*"connected":2,"circuit":"closed"\}
--- no_error_log
[alert]
[emerg]



=== TEST 2: GET connections and GET connections/P/ACCOUNT: SPEC shapes
--- init
main::t_connections();
--- request
GET /oauth/api/connections/fake/a1
--- more_headers
X-Owner: alice
--- response_body_like: ^\{"provider":"fake","account":"a1","account_name":"User a1","status":"connected","scopes":\["read","write"\],"params":\{"region":"eu"\},"created_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ","updated_at":"[^"]+Z","expires_at":"[^"]+Z","last_refresh_at":"[^"]+Z","last_error":null,"label":null,"metadata":\{\}\}$
--- no_error_log
[alert]
[emerg]



=== TEST 3: 401 without an owner, 404 unknown things, 405 with Allow
--- init
main::t_errors();
--- request
GET /oauth/api/connections
--- error_code: 401
--- response_body
{"error":"unauthenticated","message":"no owner for this request"}
--- no_error_log
[alert]
[emerg]



=== TEST 4: owner isolation both ways: another owner's connection is a 404
--- init
main::t_isolation();
--- request
GET /oauth/api/connections/fake/a1
--- more_headers
X-Owner: bob
--- error_code: 404
--- response_body
{"error":"not_found","message":"no such connection"}
--- no_error_log
[alert]
[emerg]



=== TEST 5: CSRF: a foreign Origin may not change anything
--- config
    oauth_owner $http_x_owner;
    oauth_allowed_origins https://app.example.com;

    location /oauth/api/ {
        oauth_api;
    }

    location ~ ^/connect/(?<oauth_p>[a-z0-9_]+)$ {
        oauth_start $oauth_p;
    }

    location = /callback {
        oauth_callback;
    }
--- init
main::t_csrf();
--- request
DELETE /oauth/api/connections/fake/a1
--- more_headers
X-Owner: alice
Origin: https://evil.example
--- error_code: 403
--- response_body
{"error":"forbidden_origin","message":"this origin may not change connections"}
--- no_error_log
[alert]
[emerg]



=== TEST 6: bodies: 415, 413 at 65 KiB (plain and chunked), 400 invalid_json
--- init
main::t_bodies();
--- request
POST /oauth/api/connections/keys
{"account":"k9","credentials":{"api_key":"v"}}
--- more_headers
X-Owner: alice
--- error_code: 415
--- response_body_like: "error":"unsupported_media_type"
--- no_error_log
[alert]
[emerg]
[crit]



=== TEST 7: non-OAuth credentials: a 400 naming each missing field
--- init
main::t_credentials_validation();
--- request
POST /oauth/api/connections/hdr
{"account":"h","credentials":{"value":""}}
--- more_headers
X-Owner: alice
Content-Type: application/json
--- error_code: 400
--- response_body_like: credentials\.value
--- no_error_log
[alert]
[emerg]



=== TEST 8: refresh: new expires_at; 502 when refused; 400 for an API key
--- init
main::t_refresh();
--- request
POST /oauth/api/connections/fake/nosuch/refresh
--- more_headers
X-Owner: alice
--- error_code: 404
--- response_body_like: "error":"not_found"
--- no_error_log
[alert]
[emerg]



=== TEST 9: test: {ok, account, status} against userinfo_url
--- init
main::t_test_endpoint();
--- request
POST /oauth/api/connections/fake/a1/test
--- more_headers
X-Owner: alice
--- response_body
{"ok":true,"account":"a1","status":200}
--- no_error_log
[alert]
[emerg]



=== TEST 10: DELETE revokes (RFC 7009) and deletes, whatever the provider says
--- init
main::t_delete();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log
[alert]
[emerg]



=== TEST 11: api_key, basic and header kinds end to end through oauth_token
--- init
main::t_kinds();
--- request
GET /proxy/basicp/y
--- more_headers
X-Owner: alice
Authorization: Basic YXR0YWNrZXI6eA==
--- response_body_like: authorization=\[Basic dXNlcjE6cMOkc3MgdzpyZA==\]
--- no_error_log
[alert]
[emerg]



=== TEST 12: credentials verified at userinfo_url: refused ones are not stored
--- init
main::t_verification();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like: ^\[\{"provider":"vkeys","account":"v1",
--- no_error_log
[alert]
[emerg]



=== TEST 13: account ids with an encoded slash
--- init
main::t_encoded_account();
--- request
GET /oauth/api/connections/keys/team%2Fone
--- more_headers
X-Owner: alice
--- error_code: 404
--- response_body_like: not_found
--- no_error_log
[alert]
[emerg]



=== TEST 14: status expired: an expired token without a refresh token
--- http_config
    oauth_provider short {
        client_id short-client;
        redirect_uri http://127.0.0.1:$TEST_NGINX_SERVER_PORT/callback;
        authorization_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/short/token;
        account_id user_id;
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

    location /proxy/short/ {
        oauth_token short;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/static/echo/;
    }
--- init
main::t_expired();
--- request
GET /oauth/api/connections/short/s1
--- more_headers
X-Owner: alice
--- response_body_like: "status":"expired"
--- no_error_log
[alert]
[emerg]



=== TEST 15: finding 7: a request body with credentials is wiped: no copy is left in any worker's memory
--- init
main::t_body_wiped();
--- request
GET /oauth/api/connections/keys/w1
--- more_headers
X-Owner: alice
--- response_body_like: "label":"seen-label-
