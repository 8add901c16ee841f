package WebhookReceiver;

# A scripted webhook receiver for t/08x-webhook.t: an HTTP listener on
# 127.0.0.1 in a process of its own (forking per connection, so a slow
# answer never holds the next one up) that logs every request it gets and
# answers with the status the test sets.
#
#   my $rx = WebhookReceiver->start;        # or start(port => $p)
#   $rx->set(status => 500, delay => 2);    # the next answers
#   $rx->requests;                          # what arrived, oldest first
#   $rx->stop;                              # down; start(port =>) again
#   WebhookReceiver::verify($secret, $req)  # the receiver's signature check
#
# A logged request: { method, path, headers => { lc name => value },
# body, json (the body decoded, or undef), at (arrival time) }.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_hex);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

our @Started;

my $JSON = JSON::PP->new->canonical->utf8;

sub start {
    my ($class, %opt) = @_;

    my $dir = $opt{dir} // tempdir('webhookrx-XXXXXX', TMPDIR => 1,
                                   CLEANUP => 1);
    my $self = bless { dir => $dir, owner => $$ }, $class;

    my $listen;
    for (1 .. 50) {
        $listen = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $opt{port} // 0,
            Proto     => 'tcp',
            Listen    => 128,
            ReuseAddr => 1,
        ) and last;
        sleep 0.1;
    }
    die "WebhookReceiver: cannot listen: $!\n" unless $listen;

    $self->{port} = $listen->sockport;

    my $pid = fork;
    die "WebhookReceiver: fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        setpgrp(0, 0);
        @Started = ();
        $self->_serve($listen);
        POSIX::_exit(0);
    }

    close $listen;
    $self->{pid} = $pid;
    push @Started, $self;

    return $self;
}

sub port { $_[0]->{port} }
sub dir  { $_[0]->{dir} }

sub stop {
    my $self = shift;
    return unless $self->{pid} && $$ == $self->{owner};
    my $pid = delete $self->{pid};
    local $?;           # an END block's waitpid must not set the exit code
    kill 'KILL', -$pid;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

END {
    $_->stop for @Started;
}

# knobs: status (default 200), delay (seconds before answering)
sub set {
    my ($self, %k) = @_;
    for my $name (keys %k) {
        my $f = "$self->{dir}/$name";
        open my $o, '>', "$f.tmp" or die "$f: $!";
        print $o $k{$name};
        close $o;
        rename "$f.tmp", $f or die "$f: $!";
    }
}

sub reset {
    my $self = shift;
    unlink "$self->{dir}/log.jsonl", "$self->{dir}/status",
           "$self->{dir}/delay";
}

sub requests {
    my $self = shift;
    my @out;
    open my $fh, '<', "$self->{dir}/log.jsonl" or return ();
    while (my $line = <$fh>) {
        my $r = eval { $JSON->decode($line) } or next;
        $r->{json} = eval { $JSON->decode($r->{body}) };
        push @out, $r;
    }
    close $fh;
    return @out;
}

# polls until at least $n requests arrived; returns them
sub wait_requests {
    my ($self, $n, $timeout) = @_;
    my $end = time + ($timeout // 10);
    my @r;
    while (1) {
        @r = $self->requests;
        return @r if @r >= $n || time > $end;
        sleep 0.1;
    }
}

# What a receiver does with X-OAuth-Signature: t=T,v1=HEX; the HMAC of
# "T.body" under the shared secret must match.
sub verify {
    my ($secret, $req) = @_;
    my $sig = $req->{headers}{'x-oauth-signature'} // return 0;
    my ($t, $v1) = $sig =~ /^t=(\d+),v1=([0-9a-f]{64})\z/ or return 0;
    return hmac_sha256_hex("$t.$req->{body}", $secret) eq $v1 ? 1 : 0;
}

sub _knob {
    my ($self, $name, $default) = @_;
    open my $fh, '<', "$self->{dir}/$name" or return $default;
    my $v = <$fh>;
    close $fh;
    return defined $v && length $v ? $v : $default;
}

sub _serve {
    my ($self, $listen) = @_;

    $SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };

    while (1) {
        my $c = $listen->accept or next;
        my $pid = fork;
        if (!defined $pid) {
            close $c;
            next;
        }
        if ($pid == 0) {
            close $listen;
            $self->_handle($c);
            POSIX::_exit(0);
        }
        close $c;
    }
}

sub _handle {
    my ($self, $c) = @_;

    binmode $c;
    local $/ = "\r\n";

    my $line = <$c> // return;
    my ($method, $path) = $line =~ m{^(\S+) (\S+) HTTP/} or return;
    my %h;

    while (my $l = <$c>) {
        last if $l eq "\r\n";
        $l =~ s/\r\n\z//;
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or next;
        $h{lc $k} = $v;
    }

    my $body = '';
    my $len = $h{'content-length'} // 0;
    while (length $body < $len) {
        my $n = read $c, my $buf, $len - length $body;
        last unless $n;
        $body .= $buf;
    }

    my $rec = $JSON->encode({ method => $method, path => $path,
                              headers => \%h, body => $body, at => time });

    open my $log, '>>', "$self->{dir}/log.jsonl" or return;
    syswrite $log, "$rec\n";
    close $log;

    my $delay = $self->_knob('delay', 0);
    sleep $delay if $delay > 0;

    my $status = $self->_knob('status', 200);
    print $c "HTTP/1.1 $status X\r\nContent-Type: text/plain\r\n"
             . "Content-Length: 2\r\nConnection: close\r\n\r\nok";
    close $c;
}

1;
