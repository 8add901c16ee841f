#!/usr/bin/perl
# make faults: reruns the fault scenarios of the reliability review against
# a real nginx (master, 2 workers, daemon) and the scripted fake provider of
# the test suites, and prints what each one lost:
#
#   reload       10 reloads under load
#   upgrade      a binary upgrade (USR2, WINCH, QUIT) under load
#   workerkill   10 worker kills (-9) under load, while connects are written
#   leasevalid   kill -9 of the worker holding a refresh lease while the
#                stored token is still valid: requests go on with it, the
#                lease of the dead worker is taken over at once
#   leasekill    kill -9 of the lease holder of an expired token: the
#                takeover is at once (not at the lease deadline); with a
#                provider that does not rotate refresh tokens nothing is lost
#   leaserotate  the same with a provider that rotates and revokes on reuse:
#                one careful attempt, then reauthorization_required with
#                last_error refresh_interrupted (the grant is lost, said so)
#   storefull    a small store filled with flows (one owner each, since
#                oauth_max_flows_per_owner caps one owner): what still
#                commits from the reserve
#   crash        kill -9 of the whole nginx during connects and background
#                refreshes, then a restart
#
# "lost" means: requests that failed, committed connections missing
# afterwards, connections whose refresh token was lost (the provider saw a
# spent one again, or the connection ended in error).  Figures, not
# assertions: the machine is shared.  FAULTS="reload crash" picks scenarios;
# FAULTS_KEEP=1 keeps each nginx directory, FAULTS_LOG_LEVEL=debug logs more.

use strict;
use warnings;
no warnings qw(uninitialized);
use FindBin;
use lib "$FindBin::Bin/../t/lib";

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

use OAuthKit;

my $top    = "$FindBin::Bin/..";
my $module = "$top/build/ngx_http_oauth_module.so";
my $nginx  = $ENV{NGINX_BIN} || '/usr/sbin/nginx';
my $cli    = "$top/build/ngx-oauth";
my $fake   = OAuthKit::fake();

# OAuthKit binds the fake lazily (a suite runs it before its first block)
$fake->run;
my $keys   = $ENV{TEST_NGINX_OAUTH_KEY_FILE};
my @only   = split ' ', ($ENV{FAULTS} // '');

-f $module && -x $cli or die "faults: build first (make)\n";

my ($dir, $port);

sub free_port {
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1) or die $!;
    my $p = $l->sockport;
    close $l;
    return $p;
}

# a fresh nginx; %o: store_opts, http (extra http-level directives)
sub start_nginx {
    my (%o) = @_;
    $dir = tempdir('faults-XXXXXX', TMPDIR => 1,
                   CLEANUP => !$ENV{FAULTS_KEEP}) unless $o{keep};
    mkdir "$dir/logs";
    $port //= free_port();
    my $user = $> == 0 ? 'user root;' : '';
    my $prov = $OAuthKit::DemoProvider;
    $prov =~ s/\$TEST_NGINX_SERVER_PORT/$port/g;
    $prov =~ s/\$TEST_NGINX_FAKE_PORT/$ENV{TEST_NGINX_FAKE_PORT}/g;
    my $loc = $OAuthKit::DemoLocations;
    $loc =~ s/\$TEST_NGINX_FAKE_PORT/$ENV{TEST_NGINX_FAKE_PORT}/g;
    open my $fh, '>', "$dir/nginx.conf" or die $!;
    print $fh <<"_EOC_";
daemon on;
master_process on;
worker_processes 2;
$user
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log @{[ $ENV{FAULTS_LOG_LEVEL} // "notice" ]};
load_module $module;
events { worker_connections 1024; }
http {
    access_log off;
    oauth_store $dir/store.mdb @{[ $o{store_opts} // '' ]};
    oauth_key_file $keys;
    oauth_owner \$http_x_owner;
    @{[ $o{http} // 'oauth_background_refresh off;' ]}
$prov
    server {
        listen 127.0.0.1:$port;
$loc
        location /api/ {
            oauth_token demo;
            proxy_pass http://127.0.0.1:$ENV{TEST_NGINX_FAKE_PORT};
        }
    }
}
_EOC_
    close $fh;
    $ENV{TEST_NGINX_SERVER_PORT} = $port;
    $ENV{TEST_NGINX_SERVER_ROOT} = $dir;
    system("$nginx -p $dir/ -c $dir/nginx.conf -e $dir/logs/error.log") == 0
        or die "faults: nginx did not start\n" . slurp("$dir/logs/error.log");
    OAuthKit::wait_for(sub { OAuthKit::worker_pids() == 2 }, 10);
}

sub stop_nginx {
    for my $f ("$dir/logs/nginx.pid.oldbin", "$dir/logs/nginx.pid") {
        my $p = slurp($f);
        chomp $p;
        next unless $p;
        kill 'QUIT', $p;
        OAuthKit::wait_for(sub { !kill 0, $p }, 10);
    }
}

sub connect_owners {
    my ($prefix, $n) = @_;
    my @ok;
    for my $i (1 .. $n) {
        my $r = OAuthKit::connect_flow(owner => "$prefix$i",
                                       code => "$prefix$i-1");
        push @ok, "$prefix$i" if $r->{ok};
    }
    return @ok;
}

sub api_list {
    my $r = OAuthKit::api('GET', 'connections', owner => shift);
    return ($r->{status}, $r->{json});
}

# the one connection of an owner, as the API shows it
sub conn_of {
    my ($s, $d) = api_list(shift);
    return $s == 200 && ref $d eq 'ARRAY' && @$d ? $d->[0] : {};
}

# the worker with a connection open to the fake provider: the lease holder
sub token_caller {
    my $p = $fake->port;
    my $out = `ss -tnpH state established dst 127.0.0.1:$p 2>/dev/null`;
    my %w = map { $_ => 1 } OAuthKit::worker_pids();
    my ($pid) = grep { $w{$_} } $out =~ /pid=(\d+)/g;
    return $pid;
}

sub timed_get {
    my ($path, $owner) = @_;
    my $t = time;
    my $r = OAuthKit::request('GET', $path, owner => $owner);
    return ($r->{status}, time - $t);
}

sub missing {
    my $n = 0;
    for my $o (@_) {
        my ($s, $d) = api_list($o);
        $n++ unless $s == 200 && ref $d eq 'ARRAY' && @$d == 1;
    }
    return $n;
}

# connections whose grant is gone (the user must connect again); an
# "expired" one whose refresh failed for now is retried, not lost
sub in_error {
    my $n = 0;
    for my $o (@_) {
        my ($s, $d) = api_list($o);
        $n++ if $s == 200 && ref $d eq 'ARRAY' && @$d
                && ($d->[0]{status} // '') =~ /^(?:error|revoked)\z/;
    }
    return $n;
}

# requests in a child process until stopped: { ok, failed } by status
sub load_start {
    my @owners = @_;
    my $file = "$dir/load.out";
    unlink $file;
    my $pid = fork;
    if ($pid == 0) {
        my %n;
        my $stop = 0;
        $SIG{TERM} = sub { $stop = 1 };
        until ($stop) {
            my $r = OAuthKit::request('GET', '/api/x',
                                  owner => $owners[ rand @owners ]);
            $n{ $r->{status} }++;
        }
        open my $fh, '>', $file or POSIX::_exit(1);
        print $fh join(' ', map { "$_=$n{$_}" } sort keys %n), "\n";
        close $fh;
        POSIX::_exit(0);
    }
    return $pid;
}

sub load_stop {
    my $pid = shift;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    my $out = slurp("$dir/load.out");
    chomp $out;
    my ($total, $bad) = (0, 0);
    while ($out =~ /(\d+)=(\d+)/g) {
        $total += $2;
        $bad += $2 if $1 != 200;
    }
    return ($total, $bad, $out);
}

sub check {
    my $out = `$cli --store $dir/store.mdb --key-file $keys check 2>&1`;
    return $? == 0 ? 'ok' : "FAILED ($out)";
}

sub report {
    my ($name, %f) = @_;
    printf "%-11s %s\n", $name,
        join '  ', map { "$_=$f{$_}" } grep { defined $f{$_} } @{ $f{_order} };
}

my %scenario;

$scenario{reload} = sub {
    $fake->reset;
    start_nginx();
    my @owners = connect_owners('r', 10);
    my $load = load_start(@owners);
    my $fails = 0;
    for (1 .. 10) { OAuthKit::reload(workers => 2) or $fails++; sleep 0.5 }
    my ($total, $bad, $st) = load_stop($load);
    report('reload', _order => [qw(requests failed statuses reloads_failed
                                   connections_lost check)],
           requests => $total, failed => $bad, statuses => $st,
           reloads_failed => $fails, connections_lost => missing(@owners),
           check => check());
    stop_nginx();
};

$scenario{upgrade} = sub {
    $fake->reset;
    start_nginx();
    my @owners = connect_owners('u', 10);
    my $load = load_start(@owners);
    my $old = OAuthKit::master_pid();
    kill 'USR2', $old;
    my $new = OAuthKit::wait_for(sub {
        my $p = OAuthKit::master_pid();
        return -f "$dir/logs/nginx.pid.oldbin" && $p && $p != $old ? $p : 0;
    }, 10);
    sleep 2;
    kill 'WINCH', $old;
    sleep 2;
    kill 'QUIT', $old;
    OAuthKit::wait_for(sub { !kill 0, $old }, 10);
    my $after = OAuthKit::connect_flow(owner => 'u-after',
                                       code => 'u-after-1');
    my ($total, $bad, $st) = load_stop($load);
    report('upgrade', _order => [qw(requests failed statuses new_master
                                    connect_after connections_lost check)],
           requests => $total, failed => $bad, statuses => $st,
           new_master => $new ? 'yes' : 'NO',
           connect_after => $after->{ok} ? 'ok' : 'FAILED',
           connections_lost => missing(@owners), check => check());
    stop_nginx();
};

$scenario{workerkill} = sub {
    $fake->reset;
    start_nginx();
    my @owners = connect_owners('w', 10);
    my $load = load_start(@owners);
    my $killer = fork;
    if ($killer == 0) {
        for my $i (1 .. 10) {
            sleep 0.5;
            my @w = OAuthKit::worker_pids();
            kill 'KILL', $w[ $i % @w ] if @w;
        }
        POSIX::_exit(0);
    }
    my @committed;
    my $tries = 0;
    while (waitpid($killer, WNOHANG) == 0) {
        $tries++;
        push @committed, connect_owners("wk$tries-", 1);
    }
    my ($total, $bad, $st) = load_stop($load);
    OAuthKit::wait_for(sub { OAuthKit::worker_pids() == 2 }, 10);
    report('workerkill', _order => [qw(requests failed statuses connects
                                       committed connections_lost check)],
           requests => $total, failed => $bad, statuses => $st,
           connects => $tries, committed => scalar @committed,
           connections_lost => missing(@owners, @committed), check => check());
    stop_nginx();
};

# the token still valid (due for a refresh ahead of time): the request that
# takes the lease goes on with it, and so does every request after the
# holder is killed
$scenario{leasevalid} = sub {
    $fake->reset(expires_in => 8, rotate => 0);
    start_nginx(http => 'oauth_background_refresh off; oauth_refresh_ahead 1h;');
    my @owners = connect_owners('v', 1);
    sleep 4.2;
    $fake->set(expires_in => 3600, delay => 6);
    my ($s0, $t0) = timed_get('/api/first', $owners[0]);
    my $holder = OAuthKit::wait_for(\&token_caller, 5);
    kill 'KILL', $holder if $holder;
    OAuthKit::wait_for(sub { !kill 0, $holder }, 5) if $holder;
    my ($ok, $max, @st) = (0, 0);
    for (1 .. 6) {
        my ($s, $t) = timed_get("/api/after-$_", $owners[0]);
        push @st, $s;
        $ok++ if $s == 200;
        $max = $t if $t > $max;
    }
    OAuthKit::wait_for(sub { $fake->count('refresh') >= 2 }, 10);
    my $c = conn_of($owners[0]);
    report('leasevalid', _order => [qw(holder_killed first_request_s
                                       answered_200 of statuses
                                       slowest_after_kill_s
                                       refresh_calls status grants_lost)],
           status => $c->{status} // 'none',
           holder_killed => $holder ? 'yes' : 'NOT FOUND',
           first_request_s => sprintf('%.2f', $t0) . " ($s0)",
           answered_200 => $ok, of => 6, statuses => join(',', @st),
           slowest_after_kill_s => sprintf('%.2f', $max),
           refresh_calls => $fake->count('refresh'),
           grants_lost => in_error(@owners));
    stop_nginx();
};

# an expired token, a provider that keeps refresh tokens: the takeover is
# at once, and nothing is lost
$scenario{leasekill} = sub {
    $fake->reset(expires_in => 1, rotate => 0);
    start_nginx();
    my @owners = connect_owners('l', 1);
    sleep 1.2;
    $fake->set(expires_in => 3600, delay => 1);
    my $storm = OAuthKit::storm_start(8, '/api/x', owner => $owners[0]);
    my $holder = OAuthKit::wait_for(\&token_caller, 5);
    my $t0 = time;
    kill 'KILL', $holder if $holder;
    my @r = OAuthKit::storm_wait($storm, 40);
    my ($s) = timed_get('/api/next', $owners[0]);
    my $took = time - $t0;
    report('leasekill', _order => [qw(holder_killed answered_200 of
                                      killed_with_holder next
                                      all_answered_after_kill_s refresh_calls
                                      grants_lost)],
           holder_killed => $holder ? 'yes' : 'NOT FOUND',
           answered_200 => scalar(grep { $_->{status} == 200 } @r),
           of => scalar @r,
           killed_with_holder => scalar(grep { !$_->{status} } @r),
           next => $s, all_answered_after_kill_s => sprintf('%.1f', $took),
           refresh_calls => $fake->count('refresh'),
           grants_lost => in_error(@owners));
    stop_nginx();
};

# an expired token, a provider that rotates and revokes on reuse: the new
# refresh token died with the holder; one careful attempt, then the user
# must connect again, and the API says why
$scenario{leaserotate} = sub {
    $fake->reset(expires_in => 1, rotate => 1);
    start_nginx();
    my @owners = connect_owners('lr', 1);
    sleep 1.2;
    $fake->set(expires_in => 3600, delay => 1.5);
    my $storm = OAuthKit::storm_start(6, '/api/x', owner => $owners[0]);
    my $holder = OAuthKit::wait_for(\&token_caller, 5);
    kill 'KILL', $holder if $holder;
    my @r = OAuthKit::storm_wait($storm, 40);
    OAuthKit::wait_for(sub { OAuthKit::worker_pids() == 2 }, 10);
    my ($s) = timed_get('/api/next', $owners[0]);
    my $calls = $fake->count('refresh');
    timed_get('/api/again', $owners[0]) for 1 .. 3;
    my $c = conn_of($owners[0]);
    report('leaserotate', _order => [qw(holder_killed answered_200 of next
                                        status last_error refresh_calls
                                        calls_later reuse grants_lost)],
           holder_killed => $holder ? 'yes' : 'NOT FOUND',
           answered_200 => scalar(grep { $_->{status} == 200 } @r),
           of => scalar @r, next => $s, status => $c->{status},
           last_error => $c->{last_error}, refresh_calls => $calls,
           calls_later => $fake->count('refresh') - $calls,
           reuse => $fake->count('reuse'), grants_lost => in_error(@owners));
    stop_nginx();
};

$scenario{storefull} = sub {
    $fake->reset;
    start_nginx(store_opts => 'max_size=256k');
    my @owners = connect_owners('s', 5);
    my ($flows, $full) = (0, 0);
    while ($flows < 5000) {
        my $r = OAuthKit::request('GET',
                                  '/connect/demo?return_to=/' . ('x' x 1500),
                                  owner => "flooder$flows");
        if ($r->{status} != 302) { $full = $r->{status}; last }
        $flows++;
    }
    my $inject = OAuthKit::request('GET', '/api/x',
                                   owner => $owners[0])->{status};
    my $ds = OAuthKit::api('DELETE', "connections/demo/$owners[1]-1",
                           owner => $owners[1])->{status};
    my $rs = OAuthKit::api('POST', "connections/demo/$owners[2]-1/refresh",
                           owner => $owners[2])->{status};
    my $other = OAuthKit::request('GET', '/connect/demo',
                                  owner => 'someone')->{status};
    my $purge = `$cli --store $dir/store.mdb --key-file $keys purge 2>&1`;
    report('storefull', _order => [qw(flows_started then inject_existing
                                      delete refresh start_by_other purge
                                      check)],
           flows_started => $flows, then => $full,
           inject_existing => $inject, delete => $ds, refresh => $rs,
           start_by_other => $other, purge => $? == 0 ? 'ok' : 'FAILED',
           check => check());
    stop_nginx();
};

$scenario{crash} = sub {
    $fake->reset(expires_in => 2, rotate => 1, delay => 0.05);
    my $bg = 'oauth_background_refresh on; oauth_refresh_ahead 4s;';
    start_nginx(http => $bg);
    my (@committed, $kills);
    for my $round (1 .. 3) {
        my $end = time + 3;
        my $i = 0;
        while (time < $end) {
            $i++;
            push @committed, connect_owners("c$round-$i-", 1);
        }
        my @all = (OAuthKit::master_pid(), OAuthKit::worker_pids());
        kill 'KILL', @all;
        $kills++;
        OAuthKit::wait_for(sub { !grep { kill 0, $_ } @all }, 5);
        unlink "$dir/logs/nginx.pid";
        start_nginx(http => $bg, keep => 1);
    }
    sleep 3;
    report('crash', _order => [qw(kills committed connections_lost
                                  refresh_tokens_lost reuse check)],
           kills => $kills, committed => scalar @committed,
           connections_lost => missing(@committed),
           refresh_tokens_lost => in_error(@committed),
           reuse => $fake->count('reuse'), check => check());
    stop_nginx();
};

for my $name (qw(reload upgrade workerkill leasevalid leasekill leaserotate
                  storefull crash)) {
    next if @only && !grep { $_ eq $name } @only;
    eval { $scenario{$name}->(); 1 } or do {
        print "$name: error: $@";
        eval { stop_nginx() };
    };
}
