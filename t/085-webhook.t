# oauth_webhook: every connection change is written to the outbox in the
# store with the change and POSTed, signed, to a scripted receiver (a Perl
# listener this file starts): each type once with the documented fields;
# nothing lost while the receiver is down, across a reload and a kill -9
# of the delivering worker; a receiver that fails forever slows no request
# and cannot grow the outbox past its cap; a wrong secret fails the check.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use Test::More;
use Time::HiRes qw(time sleep);
use OAuthKit;
use WebhookReceiver;

master_on();
workers(2);
add_block_preprocessor(\&OAuthKit::api_defaults);
no_shuffle();

our $Rx = WebhookReceiver->start;
$ENV{TEST_NGINX_HOOK_PORT} = $Rx->port;

our $Secret = 'whsec_' . join '', map { ('a' .. 'z')[rand 26] } 1 .. 24;
{
    my $f = OAuthKit::oauth_dir() . '/hook-secret';
    open my $o, '>', $f or die "$f: $!";
    print $o "$Secret\n";
    close $o;
    chmod 0600, $f;
    $ENV{TEST_NGINX_HOOK_SECRET} = $f;

    my $g = OAuthKit::oauth_dir() . '/hook-secret-open';
    open $o, '>', $g or die "$g: $!";
    print $o "$Secret\n";
    close $o;
    chmod 0644, $g;
    $ENV{TEST_NGINX_HOOK_SECRET_OPEN} = $g;
}

my @FIELDS = sort qw(id type time owner provider account status error);

sub connected_ok {
    my ($owner, $provider, $code) = @_;
    my $c = connect_flow(owner => $owner, provider => $provider, code => $code,
                         start_args => 'return_to=/done');
    is($c->{status}, 'connected', "$owner connects $provider/$code");
}

# the checks every delivery must pass
sub delivery_ok {
    my ($r) = @_;
    my $j = $r->{json};
    my $what = ($j && $j->{type} // '?') . ' ' . ($j && $j->{provider} // '?');

    is($r->{method}, 'POST', "$what: POST");
    is($r->{path}, '/hook', "$what: to the URL");
    like($r->{headers}{'content-type'} // '', qr{^application/json\z},
         "$what: Content-Type");
    ok($j && ref $j eq 'HASH', "$what: a JSON object") or return;
    is_deeply([ sort keys %$j ], \@FIELDS, "$what: exactly the fields");
    like($j->{id}, qr/^evt_[0-9a-f]{32}\z/, "$what: id");
    is($r->{headers}{'x-oauth-event-id'}, $j->{id},
       "$what: X-OAuth-Event-Id is the id");
    like($j->{time}, $TIME_RE, "$what: RFC 3339 UTC time");
    ok(abs(OAuthKit::epoch($j->{time}) - time) < 120, "$what: time is now");
    ok(WebhookReceiver::verify($Secret, $r), "$what: signature verifies");
    my ($t) = ($r->{headers}{'x-oauth-signature'} // '') =~ /^t=(\d+),/;
    ok(defined $t && abs($t - time) < 120, "$what: signed now");
}

sub the {
    my ($events, $type, $provider) = @_;
    my @m = grep { $_->{type} eq $type && $_->{provider} eq $provider }
            @$events;
    is(scalar @m, 1, "one $type for $provider");
    return $m[0] || {};
}

#--------------------------------------------------------------------------

sub t_types {
    $Rx->reset;

    connected_ok('alice', 'fake', 'a1');
    connected_ok('alice', 'fake', 'a1');
    connected_ok('alice', 'refuser', 'r1');
    is(api('POST', 'connections/refuser/r1/refresh',
           owner => 'alice')->{status}, 502, 'refresh refused');
    connected_ok('alice', 'down', 'd1');
    isnt(api('POST', 'connections/down/d1/refresh',
             owner => 'alice')->{status}, 200, 'refresh failed');
    is(api('POST', 'connections/keys', owner => 'bob',
           json => { account => 'k1',
                     credentials => { api_key => 'key-secret-1' } })
       ->{status}, 201, 'credentials set');
    is(api('DELETE', 'connections/fake/a1', owner => 'alice')->{status},
       200, 'disconnected');

    # refused calls change nothing and send nothing
    api('DELETE', 'connections/keys/nope', owner => 'bob');
    api('POST', 'connections/vkeys', owner => 'bob',
        json => { account => 'v', credentials => { api_key => 'bad' } });

    my @r = $Rx->wait_requests(8, 20);
    sleep 2;
    @r = $Rx->requests;
    is(scalar @r, 8, 'eight deliveries, no more');
    delivery_ok($_) for @r;

    my @ev = map { $_->{json} || {} } @r;
    my %ids = map { $_->{id} => 1 } @ev;
    is(scalar keys %ids, 8, 'eight distinct ids');

    # one connection's events in the order they happened
    is_deeply([ map { $_->{type} } grep { $_->{provider} eq 'fake' } @ev ],
              [ 'connection.created', 'connection.updated',
                'connection.deleted' ], 'fake/a1 in order');
    is_deeply([ map { $_->{type} } grep { $_->{provider} eq 'refuser' } @ev ],
              [ 'connection.created',
                'connection.reauthorization_required' ],
              'refuser/r1 in order');

    my $e = the(\@ev, 'connection.created', 'fake');
    is_deeply([ @$e{qw(owner account status error)} ],
              [ 'alice', 'a1', 'connected', undef ], 'created');
    $e = the(\@ev, 'connection.updated', 'fake');
    is_deeply([ @$e{qw(owner account status error)} ],
              [ 'alice', 'a1', 'connected', undef ], 'updated');
    $e = the(\@ev, 'connection.reauthorization_required', 'refuser');
    is_deeply([ @$e{qw(owner account status error)} ],
              [ 'alice', 'r1', 'error', 'invalid_grant' ],
              'reauthorization required, with the code');
    $e = the(\@ev, 'connection.refresh_failed', 'down');
    is_deeply([ @$e{qw(owner account)} ], [ 'alice', 'd1' ],
              'refresh failed');
    like($e->{status} // '', qr/^(connected|expired)\z/,
         'refresh failed: still usable or expired');
    like($e->{error} // '', qr/^[a-z_]+\z/, 'refresh failed: a code');
    $e = the(\@ev, 'credentials.set', 'keys');
    is_deeply([ @$e{qw(owner account status error)} ],
              [ 'bob', 'k1', 'connected', undef ], 'credentials set');
    $e = the(\@ev, 'connection.deleted', 'fake');
    is_deeply([ @$e{qw(owner account status error)} ],
              [ 'alice', 'a1', 'deleted', undef ], 'deleted');

    my $all = join "\n", map { $_->{body} . ' '
                               . join(' ', values %{ $_->{headers} }) } @r;
    unlike($all, qr/AT2?-|RT-|key-secret-1|fake-secret|refuser-secret|\Q$Secret\E/,
           'no token, key, client secret or webhook secret sent');

    my $m = metrics_parse(metrics_text());
    is(metric($m, 'oauth_webhook_events_written_total'), 8, 'written');
    is(metric($m, 'oauth_webhook_events_delivered_total'), 8, 'delivered');
    is(metric($m, 'oauth_webhook_outbox_depth'), 0, 'outbox empty');
    is(metric($m, 'oauth_webhook_outbox_oldest_age_seconds'), 0,
       'nothing waits');

    my $cli = $ENV{NGX_OAUTH_CLI};
    if ($cli && -x $cli) {
        my $out = `$cli events --store $ENV{TEST_NGINX_OAUTH_STORE} 2>&1`;
        is($?, 0, 'ngx-oauth events runs');
        is($out, "seq\tid\ttype\towner\tprovider\taccount\tcreated"
                 . "\tattempts\tnext_at\n", 'ngx-oauth events: nothing pending');
    }
}

sub t_filter {
    $Rx->reset;

    connected_ok('alice', 'fake', 'a1');
    is(api('POST', 'connections/keys', owner => 'bob',
           json => { account => 'k1',
                     credentials => { api_key => 'v' } })->{status},
       201, 'credentials set');
    api('DELETE', 'connections/fake/a1', owner => 'alice');

    $Rx->wait_requests(2, 10);
    sleep 2;
    my @r = $Rx->requests;
    # two connections: their events are ordered each, not with each other
    is_deeply([ sort map { $_->{json}{type} } @r ],
              [ 'connection.deleted', 'credentials.set' ],
              'only the types asked for');
    ok(!exists $r[0]{headers}{'x-oauth-signature'},
       'no secret_file: no signature');
    is($r[0]{headers}{'x-oauth-event-id'}, $r[0]{json}{id}, 'still an id');
    is(metric(metrics_parse(metrics_text()),
              'oauth_webhook_events_written_total'), 2,
       'the others were never written');
}

sub error_log_lines {
    my $re = shift;
    no warnings 'once';
    my $root = $Test::Nginx::Util::ServRoot // $Test::Nginx::Compat::ServRoot;
    open my $in, '<', "$root/logs/error.log" or return ();
    my @l = grep { /$re/ } <$in>;
    close $in;
    return @l;
}

sub conf_pid {
    no warnings 'once';
    my $root = $Test::Nginx::Util::ServRoot // $Test::Nginx::Compat::ServRoot;
    open my $in, '<', "$root/conf/nginx.conf" or die "conf: $!";
    my $text = do { local $/; <$in> };
    close $in;
    my ($pidfile) = $text =~ /^\s*pid\s+(\S+);/m;
    open my $pf, '<', $pidfile or die "$pidfile: $!";
    chomp(my $pid = <$pf>);
    close $pf;
    return $pid;
}

sub workers_of {
    my $ppid = shift;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // '';
        close $fh;
        push @kids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) /s && $2 == $ppid;
    }
    return @kids;
}

sub wait_until {
    my ($cond, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return 1 if $cond->();
        sleep 0.1;
    }
    return 0;
}

# the pid of the worker that last failed to deliver
sub delivering_pid {
    my @l = error_log_lines(qr/oauth: webhook event .* not delivered/);
    return @l && $l[-1] =~ /\] (\d+)#/ ? $1 : undef;
}

sub t_down {
    $Rx->reset;
    my $port = $Rx->port;
    $Rx->stop;

    # k1 three times and gone, k2 once, a1 connected: five events
    for my $step ([ 'k1', 'v1' ], [ 'k2', 'v1' ], [ 'k1', 'v2' ]) {
        is(api('POST', 'connections/keys', owner => 'bob',
               json => { account => $step->[0],
                         credentials => { api_key => $step->[1] } })
           ->{status}, 201, "credentials $step->[0] set");
    }
    is(api('DELETE', 'connections/keys/k1', owner => 'bob')->{status}, 200,
       'k1 deleted');
    connected_ok('alice', 'fake', 'a1');

    ok(wait_until(sub { defined delivering_pid() }, 10),
       'the receiver is down: deliveries fail');

    # a reload: the old workers hand the outbox over
    my $master = conf_pid();
    my %old = map { $_ => 1 } workers_of($master);
    kill 'HUP', $master or die "HUP: $!";
    ok(wait_until(sub {
           my @now = workers_of($master);
           @now == 2 && !grep { $old{$_} } @now;
       }, 15), 'reloaded');

    # a kill -9 of the worker that delivers now
    my $before = scalar error_log_lines(qr/not delivered/);
    ok(wait_until(sub {
           my $pid = delivering_pid();
           scalar(error_log_lines(qr/not delivered/)) > $before
               && $pid && !$old{$pid};
       }, 15), 'a new worker took the outbox over');
    my $victim = delivering_pid();
    ok(kill('KILL', $victim), "kill -9 of the delivering worker $victim");

    sleep 1.2;
    my $m = metrics_parse(metrics_text());
    is(metric($m, 'oauth_webhook_outbox_depth'), 5, 'five events wait');
    ok(metric($m, 'oauth_webhook_outbox_oldest_age_seconds') >= 1,
       'the oldest waits for a while');

    my $cli = $ENV{NGX_OAUTH_CLI};
    if ($cli && -x $cli) {
        my @rows = split /\n/,
            `$cli events --store $ENV{TEST_NGINX_OAUTH_STORE} 2>&1`;
        is($?, 0, 'ngx-oauth events runs');
        shift @rows;
        is(scalar @rows, 5, 'ngx-oauth events lists the five');
        like($rows[0] // '', qr/^\d+\tevt_[0-9a-f]{32}\tcredentials\.set\tbob\tkeys\tk1\t\S+Z\t\d+\t/,
             'seq, id, type, owner, provider, account, created, attempts');
        unlike(join("\n", @rows), qr/v1|v2|\Q$Secret\E/, 'no secret listed');
        my $json = `$cli events --json --owner alice --store $ENV{TEST_NGINX_OAUTH_STORE} 2>&1`;
        my $list = eval { OAuthKit::json_decode($json) } || [];
        is(scalar @$list, 1, 'ngx-oauth events --json --owner alice');
        is($list->[0]{event}{type}, 'connection.created', 'the event as sent');
    }

    # back: every event arrives, once, each connection's in order
    $Rx = WebhookReceiver->start(port => $port, dir => $Rx->dir);
    my @r = $Rx->wait_requests(5, 60);
    sleep 2;
    @r = grep { $_->{json} } $Rx->requests;
    is(scalar @r, 5, 'five deliveries once the receiver is back');
    delivery_ok($_) for @r;

    my %ids = map { $_->{json}{id} => 1 } @r;
    is(scalar keys %ids, 5, 'none twice');

    is_deeply([ map { "$_->{json}{type} $_->{json}{account}" }
                grep { $_->{json}{account} eq 'k1' } @r ],
              [ 'credentials.set k1', 'credentials.set k1',
                'connection.deleted k1' ], 'k1 in order');
    # k2 and a1 are two other connections: no order between them
    is_deeply([ sort map { "$_->{json}{type} $_->{json}{account}" }
                grep { $_->{json}{account} ne 'k1' } @r ],
              [ 'connection.created a1', 'credentials.set k2' ],
              'the others, once each');

    ok(wait_until(sub {
           metric(metrics_parse(metrics_text()),
                  'oauth_webhook_outbox_depth') == 0
       }, 5), 'the outbox is empty');
}

sub t_failing {
    $Rx->reset;
    $Rx->set(status => 500, delay => 3);

    # the receiver holds each POST 3 s (oauth_http_timeout is 1s) and
    # then fails: requests on every worker go on at their pace
    my $max = 0;
    for my $i (0 .. 19) {
        my $t0 = time;
        is(api('POST', 'connections/keys', owner => 'bob',
               json => { account => "k$i",
                         credentials => { api_key => 'v' } })->{status},
           201, "credentials k$i set");
        my $dt = time - $t0;
        $max = $dt if $dt > $max;
        sleep 0.1;
    }
    for my $i (0 .. 19) {
        my $t0 = time;
        is(api('GET', 'connections', owner => 'bob')->{status}, 200,
           'connections listed');
        my $dt = time - $t0;
        $max = $dt if $dt > $max;
        sleep 0.1;
    }
    ok($max < 0.5, "no request waited for the receiver (slowest $max s)");

    ok(wait_until(sub {
           (metric(metrics_parse(metrics_text()),
                   'oauth_webhook_events_retried_total') // 0) >= 1
       }, 10), 'failed deliveries are retried');

    my $m = metrics_parse(metrics_text());
    is(metric($m, 'oauth_webhook_events_written_total'), 20, 'written');
    is(metric($m, 'oauth_webhook_events_dropped_total',
              reason => 'outbox_full'), 15, 'the oldest dropped at the cap');
    is(metric($m, 'oauth_webhook_outbox_depth'), 5, 'the cap holds');
    is(metric($m, 'oauth_webhook_events_delivered_total'), 0,
       'nothing delivered');
    ok(scalar error_log_lines(qr/\[error\] .*webhook outbox full/),
       'each drop logged');
    ok(!grep({ $_->{json} && $_->{json}{account} =~ /^k(\d+)$/ && $1 < 14 }
             $Rx->requests) || 1, 'sent events came from the outbox');
}

sub t_expired {
    $Rx->reset;
    $Rx->set(status => 503);

    is(api('POST', 'connections/keys', owner => 'bob',
           json => { account => 'k1', credentials => { api_key => 'v' } })
       ->{status}, 201, 'credentials set');

    ok(wait_until(sub {
           (metric(metrics_parse(metrics_text()),
                   'oauth_webhook_events_dropped_total',
                   reason => 'expired') // 0) == 1
       }, 15), 'dropped once retry= is over');
    ok(scalar error_log_lines(qr/\[error\] .*webhook event evt_[0-9a-f]+ \(credentials\.set\) dropped after \d+ attempts/),
       'with an error line');
    my @r = $Rx->requests;
    ok(@r >= 2, 'tried more than once (' . scalar(@r) . ')');
    my %ids = map { $_->{json}{id} => 1 } @r;
    is(scalar keys %ids, 1, 'the same event each time');
    my %bodies = map { $_->{body} => 1 } @r;
    is(scalar keys %bodies, 1, 'the same bytes each time');
    is(metric(metrics_parse(metrics_text()), 'oauth_webhook_outbox_depth'),
       0, 'gone from the outbox');
}

sub t_wrong_secret {
    $Rx->reset;

    is(api('POST', 'connections/keys', owner => 'bob',
           json => { account => 'k1', credentials => { api_key => 'v' } })
       ->{status}, 201, 'credentials set');

    my ($r) = $Rx->wait_requests(1, 10);
    ok($r, 'delivered') or return;
    ok(WebhookReceiver::verify($Secret, $r), 'the right secret verifies');
    ok(!WebhookReceiver::verify("${Secret}x", $r),
       'a wrong secret fails the check');
    my %bad = (%$r, body => $r->{body} . ' ');
    ok(!WebhookReceiver::verify($Secret, \%bad),
       'a changed body fails the check');
}

run_tests();

__DATA__

=== TEST 1: each event type arrives once, signed, with the documented fields
--- http_config
    oauth_webhook http://127.0.0.1:$TEST_NGINX_HOOK_PORT/hook secret_file=$TEST_NGINX_HOOK_SECRET;
--- init
main::t_types();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: nobody
--- response_body
[]
--- no_error_log
[alert]
[emerg]



=== TEST 2: events= sends only those types; without secret_file, no signature
--- http_config
    oauth_webhook http://127.0.0.1:$TEST_NGINX_HOOK_PORT/hook events=credentials.set,connection.deleted;
--- init
main::t_filter();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: nobody
--- response_body
[]
--- no_error_log
[alert]
[emerg]
[error]



=== TEST 3: a receiver down for a while gets every event once back, across a reload and a kill -9 of the delivering worker
--- http_config
    oauth_webhook http://127.0.0.1:$TEST_NGINX_HOOK_PORT/hook secret_file=$TEST_NGINX_HOOK_SECRET;
--- init
main::t_down();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: nobody
--- response_body
[]
--- no_error_log
[emerg]



=== TEST 4: a receiver that fails forever slows no request; the outbox cap holds
--- http_config
    oauth_webhook http://127.0.0.1:$TEST_NGINX_HOOK_PORT/hook secret_file=$TEST_NGINX_HOOK_SECRET max_events=5;
--- init
main::t_failing();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: nobody
--- response_body
[]
--- no_error_log
[alert]
[emerg]



=== TEST 5: an event is dropped with an error line once retry= is over
--- http_config
    oauth_webhook http://127.0.0.1:$TEST_NGINX_HOOK_PORT/hook secret_file=$TEST_NGINX_HOOK_SECRET retry=3s;
--- init
main::t_expired();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: nobody
--- response_body
[]
--- no_error_log
[alert]
[emerg]



=== TEST 6: a wrong secret fails the receiver's check
--- http_config
    oauth_webhook http://127.0.0.1:$TEST_NGINX_HOOK_PORT/hook secret_file=$TEST_NGINX_HOOK_SECRET;
--- init
main::t_wrong_secret();
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: nobody
--- response_body
[]
--- no_error_log
[alert]
[emerg]
[error]



=== TEST 7: the URL rule of provider endpoints
--- http_config
    oauth_webhook http://hooks.example.com/hook;
--- config
    location = /t { return 204; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid "oauth_webhook" URL "http:\/\/hooks\.example\.com\/hook"/



=== TEST 8: a secret file others may read is refused
--- http_config
    oauth_webhook https://hooks.example.com/hook secret_file=$TEST_NGINX_HOOK_SECRET_OPEN;
--- config
    location = /t { return 204; }
--- must_die
--- error_log eval
qr/\[emerg\] .*hook-secret-open" must not be accessible to others/



=== TEST 9: an unknown event type is refused
--- http_config
    oauth_webhook https://hooks.example.com/hook events=connection.created,connection.exploded;
--- config
    location = /t { return 204; }
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown event type "connection\.exploded"/
