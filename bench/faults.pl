#!/usr/bin/perl
# make faults: reruns the fault scenarios of the reliability review against
# a real nginx (master, 2 workers, daemon) and the scripted fake provider of
# the test suites, and prints what each one lost:
#
#   reload       10 reloads under load
#   upgrade      a binary upgrade (USR2, WINCH, QUIT) under load
#   workerkill   10 worker kills (-9) under load, while connects are written
#   leasekill    kill -9 of the worker holding a refresh lease, with a
#                provider that rotates and revokes on reuse
#   storefull    a small store filled with flows: what still commits
#   crash        kill -9 of the whole nginx during connects and background
#                refreshes, then a restart
#
# "lost" means: requests that failed, committed connections missing
# afterwards, connections whose refresh token was lost (the provider saw a
# spent one again, or the connection ended in error).  Figures, not
# assertions: the machine is shared.  FAULTS="reload crash" picks scenarios.

use strict;
use warnings;
no warnings qw(uninitialized);
use FindBin;
use lib "$FindBin::Bin/../t/lib";

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

use OAuthTest;

my $top    = "$FindBin::Bin/..";
my $module = "$top/build/ngx_http_oauth_module.so";
my $nginx  = $ENV{NGINX_BIN} || '/usr/sbin/nginx';
my $cli    = "$top/build/ngx-oauth";
my $fake   = OAuthTest::fake();
my $keys   = $ENV{TEST_NGINX_OAUTH_KEY_FILE};
my @only   = split ' ', ($ENV{FAULTS} // '');

-f $module && -x $cli or die "faults: build first (make)\n";

my ($dir, $port);

sub slurp {
    open my $fh, '<', shift or return '';
    local $/;
    return scalar <$fh>;
}

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
    $dir = tempdir('faults-XXXXXX', TMPDIR => 1, CLEANUP => 1) unless $o{keep};
    mkdir "$dir/logs";
    $port //= free_port();
    my $user = $> == 0 ? 'user root;' : '';
    my $prov = $OAuthTest::DemoProvider;
    $prov =~ s/\$TEST_NGINX_SERVER_PORT/$port/g;
    $prov =~ s/\$TEST_NGINX_FAKE_PORT/$ENV{TEST_NGINX_FAKE_PORT}/g;
    my $loc = $OAuthTest::BaseLocations;
    $loc =~ s/\$TEST_NGINX_FAKE_PORT/$ENV{TEST_NGINX_FAKE_PORT}/g;
    open my $fh, '>', "$dir/nginx.conf" or die $!;
    print $fh <<"_EOC_";
daemon on;
master_process on;
worker_processes 2;
$user
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log notice;
load_module $module;
events { worker_connections 1024; }
http {
    access_log off;
    oauth_store $dir/store.mdb @{[ $o{store_opts} // '' ]};
    oauth_key_file $keys;
    oauth_owner \$http_x_user;
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
    OAuthTest::wait_for(sub { OAuthTest::worker_pids() == 2 }, 10);
}

sub stop_nginx {
    for my $f ("$dir/logs/nginx.pid.oldbin", "$dir/logs/nginx.pid") {
        my $p = slurp($f);
        chomp $p;
        next unless $p;
        kill 'QUIT', $p;
        OAuthTest::wait_for(sub { !kill 0, $p }, 10);
    }
}

sub connect_owners {
    my ($prefix, $n) = @_;
    my @ok;
    for my $i (1 .. $n) {
        my $r = OAuthTest::connect(owner => "$prefix$i", code => "$prefix$i-1");
        push @ok, "$prefix$i" if $r->{ok};
    }
    return @ok;
}

sub missing {
    my $n = 0;
    for my $o (@_) {
        my ($s, $d) = OAuthTest::api('GET', 'connections', $o);
        $n++ unless $s == 200 && ref $d eq 'ARRAY' && @$d == 1;
    }
    return $n;
}

sub in_error {
    my $n = 0;
    for my $o (@_) {
        my ($s, $d) = OAuthTest::api('GET', 'connections', $o);
        $n++ if $s == 200 && ref $d eq 'ARRAY' && @$d
                && ($d->[0]{status} // '') ne 'connected';
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
            my $r = OAuthTest::get('/api/x',
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
    for (1 .. 10) { OAuthTest::reload(workers => 2) or $fails++; sleep 0.5 }
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
    my $old = OAuthTest::master_pid();
    kill 'USR2', $old;
    my $new = OAuthTest::wait_for(sub {
        my $p = OAuthTest::master_pid();
        return -f "$dir/logs/nginx.pid.oldbin" && $p && $p != $old ? $p : 0;
    }, 10);
    sleep 2;
    kill 'WINCH', $old;
    sleep 2;
    kill 'QUIT', $old;
    OAuthTest::wait_for(sub { !kill 0, $old }, 10);
    my $after = OAuthTest::connect(owner => 'u-after', code => 'u-after-1');
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
            my @w = OAuthTest::worker_pids();
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
    OAuthTest::wait_for(sub { OAuthTest::worker_pids() == 2 }, 10);
    report('workerkill', _order => [qw(requests failed statuses connects
                                       committed connections_lost check)],
           requests => $total, failed => $bad, statuses => $st,
           connects => $tries, committed => scalar @committed,
           connections_lost => missing(@owners, @committed), check => check());
    stop_nginx();
};

$scenario{leasekill} = sub {
    $fake->reset(expires_in => 2, rotate => 1);
    start_nginx();
    my @owners = connect_owners('l', 1);
    sleep 2.2;
    $fake->set(expires_in => 3600, delay => 2);
    my $t0 = time;
    my $storm = OAuthTest::storm_start(10, '/api/x', owner => $owners[0]);
    my $holder = OAuthTest::wait_for(sub {
        my $p = $fake->port;
        my $out = `ss -tnpH state established dst 127.0.0.1:$p 2>/dev/null`;
        my %w = map { $_ => 1 } OAuthTest::worker_pids();
        my ($pid) = grep { $w{$_} } $out =~ /pid=(\d+)/g;
        return $pid;
    }, 5);
    kill 'KILL', $holder if $holder;
    my @r = OAuthTest::storm_wait($storm, 40);
    my $ok = grep { $_->{status} == 200 } @r;
    my $first = OAuthTest::wait_for(sub {
        OAuthTest::get('/api/x', owner => $owners[0])->{status} == 200
            || time - $t0 > 40;
    }, 45);
    report('leasekill', _order => [qw(holder_killed answered_200 of
                                      first_200_after_s refresh_calls reuse
                                      grants_lost)],
           holder_killed => $holder ? 'yes' : 'NOT FOUND',
           answered_200 => $ok, of => scalar @r,
           first_200_after_s => sprintf('%.1f', time - $t0),
           refresh_calls => $fake->count('refresh'),
           reuse => $fake->count('reuse'), grants_lost => in_error(@owners));
    stop_nginx();
};

$scenario{storefull} = sub {
    $fake->reset;
    start_nginx(store_opts => 'max_size=256k');
    my @owners = connect_owners('s', 5);
    my ($flows, $full) = (0, 0);
    while ($flows < 5000) {
        my $r = OAuthTest::get('/connect/demo?return_to=/' . ('x' x 1500),
                               owner => 'flooder');
        if ($r->{status} != 302) { $full = $r->{status}; last }
        $flows++;
    }
    my $inject = OAuthTest::get('/api/x', owner => $owners[0])->{status};
    my ($ds) = OAuthTest::api('DELETE', "connections/demo/$owners[1]-1",
                              $owners[1]);
    my ($rs) = OAuthTest::api('POST', "connections/demo/$owners[2]-1/refresh",
                              $owners[2]);
    my $other = OAuthTest::get('/connect/demo', owner => 'someone')->{status};
    my $purge = `$cli --store $dir/store.mdb --key-file $keys purge 2>&1`;
    report('storefull', _order => [qw(flows_by_one_owner then inject_existing
                                      delete refresh start_by_other purge
                                      check)],
           flows_by_one_owner => $flows, then => $full,
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
        my @all = (OAuthTest::master_pid(), OAuthTest::worker_pids());
        kill 'KILL', @all;
        $kills++;
        OAuthTest::wait_for(sub { !grep { kill 0, $_ } @all }, 5);
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

for my $name (qw(reload upgrade workerkill leasekill storefull crash)) {
    next if @only && !grep { $_ eq $name } @only;
    eval { $scenario{$name}->(); 1 } or do {
        print "$name: error: $@";
        eval { stop_nginx() };
    };
}
