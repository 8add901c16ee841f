package Recorder;

# An "evil" listener for attacks that would make nginx send something where
# it must not: it accepts TCP connections on 127.0.0.1, records that one
# arrived and the bytes it sent, and answers nothing (or a fixed HTTP
# answer).  A test then asserts that nothing arrived.
#
#   my $evil = Recorder->start;             # port: $evil->port
#   my $evil = Recorder->start(answer => "HTTP/1.1 200 OK\r\n...");
#   $evil->connections;                     # how many arrived
#   $evil->bytes;                           # everything they sent
#   $evil->reset;
#
# Its own process (group), stopped in an END block.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

our @Started;

sub start {
    my ($class, %opt) = @_;

    my $dir = tempdir('recorder-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $self = bless { log => "$dir/conns", owner => $$ }, $class;

    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $opt{port} // 0,
        Proto => 'tcp', Listen => 64, ReuseAddr => 1,
    ) or die "Recorder: cannot listen: $!\n";

    $self->{port} = $listen->sockport;
    $self->reset;

    my $pid = fork;
    die "Recorder: fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        setpgrp(0, 0);
        @Started = ();
        $SIG{TERM} = sub { POSIX::_exit(0) };
        while (my $c = $listen->accept) {
            $self->_record($c, $opt{answer});
        }
        POSIX::_exit(0);
    }

    close $listen;
    $self->{pid} = $pid;
    push @Started, $self;

    return $self;
}

sub _record {
    my ($self, $c, $answer) = @_;
    my $buf = '';
    my $sel = IO::Select->new($c);
    my $end = time + 1;

    # "one arrived" is written first: a TLS client sends its hello and
    # waits, and the test may look before the timeout here
    $self->_append("conn\n");

    while (time < $end && $sel->can_read($end - time)) {
        my $n = sysread $c, $buf, 65536, length $buf;
        last unless $n;
        last if $answer && $buf =~ /\r\n\r\n/;
    }

    # the bytes are on record before the answer: a test that got the
    # answer through nginx reads them at once
    $self->_append(sprintf "bytes %d\n%s\n", length $buf, $buf);

    syswrite $c, $answer if defined $answer;
    close $c;
}

sub _append {
    my ($self, $what) = @_;
    open my $fh, '>>', $self->{log} or return;
    print $fh $what;
    close $fh;
}

sub port { $_[0]->{port} }

sub reset {
    my $self = shift;
    open my $fh, '>', $self->{log} or die "Recorder: $self->{log}: $!\n";
    close $fh;
}

sub _slurp {
    my $self = shift;
    open my $fh, '<', $self->{log} or return '';
    local $/;
    return scalar <$fh>;
}

sub connections {
    my $self = shift;
    my $n = () = $self->_slurp =~ /^conn$/mg;
    return $n;
}

sub bytes { $_[0]->_slurp }

sub stop {
    my $self = shift;
    return unless $self->{pid} && $$ == $self->{owner};
    my $pid = delete $self->{pid};
    kill 'TERM', -$pid;
    kill 'TERM', $pid;
    for (1 .. 40) {
        return if waitpid($pid, WNOHANG) != 0;
        sleep 0.05;
    }
    kill 'KILL', -$pid;
    waitpid $pid, 0;
}

END { $_->stop for @Started }

1;
