# Self-test of the Test::Nginx runner with a master process and two workers,
# each block repeated twice on the same nginx (repeat_each).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket;

workers(2);
master_on();
repeat_each(2);

# Counted like the real framework: per repetition, one status code check and
# one body check per block, plus one per error_log / no_error_log pattern and
# grep_error_log.
plan tests => repeat_each() * (2 * blocks() + 3);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the master starts two workers (logged once, seen by the first repetition)
--- config
    location = /t {
        return 200 "pid=$pid\n";
    }
--- request
GET /t
--- response_body_like: ^pid=\d+$
--- grep_error_log eval
qr/start worker process(?= \d)/
--- grep_error_log_out eval
["start worker process\nstart worker process\n", ""]



=== TEST 2: requests are served by the workers, not by the master
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- no_error_log
[error]
[alert]
