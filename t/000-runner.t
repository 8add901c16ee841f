# Self-test of the Test::Nginx runner (t/lib) against plain nginx.
#
# Written against the Test::Nginx::Socket API only, so it also passes under
# openresty's real framework; the blocks that check behaviour specific to the
# project's runner (Test::Nginx::Compat) skip themselves under the real one.
# Honours TEST_NGINX_LOAD_MODULES like every suite, but needs no module.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: plain return, headers present and absent, status code
--- config
    location = /hello {
        add_header X-Test yes;
        return 200 "hello";
    }
--- request
GET /hello
--- response_headers
X-Test: yes
Content-Type: text/plain
!X-Absent
--- response_body: hello
--- error_code: 200
--- no_error_log
[error]
[alert]



=== TEST 2: response_body_like and response_headers_like
--- config
    location = /t {
        return 200 "abc 12345 xyz\n";
    }
--- request
GET /t
--- response_body_like: ^abc \d+ xyz$
--- response_headers_like
Server: nginx/[\d.]+
Content-Length: \d+



=== TEST 3: response_body_unlike
--- config
    location = /t {
        return 200 "nothing to see\n";
    }
--- request
GET /t
--- response_body_unlike: secret



=== TEST 4: eval array of requests on one nginx, arrays of expectations
--- config
    location = /a { return 200 "A\n"; }
    location = /b { return 403; }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[200, 403]
--- response_body_like eval
["^A\n\\z", "403 Forbidden"]



=== TEST 5: response_body eval with a regex
--- config
    location = /t {
        return 200 "time=1234567890\n";
    }
--- request
GET /t
--- response_body eval
qr/^time=\d{10}\n\z/



=== TEST 6: more_headers reach nginx
--- config
    location = /echo {
        return 200 "foo=$http_x_foo bar=$http_x_bar";
    }
--- request
GET /echo
--- more_headers
X-Foo: hello
# a comment line is ignored
X-Bar: world
--- response_body: foo=hello bar=world



=== TEST 7: request body gets a Content-Length (body trimmed like the real framework)
--- config
    location = /len {
        return 200 "len=$http_content_length method=$request_method";
    }
--- request
POST /len
hello world
--- response_body: len=11 method=POST



=== TEST 8: missing file: 404 and the open() failure in the error log
--- config
    location /files/ {
        root html;
    }
--- request
GET /files/nope.txt
--- error_code: 404
--- error_log
open()
No such file or directory
--- no_error_log
[alert]



=== TEST 9: error_log with qr// and grep_error_log
--- config
    location /files/ {
        root html;
    }
--- request
GET /files/missing.txt
--- error_code: 404
--- error_log eval
qr/\[error\] \d+#\d+: \*\d+ open\(\) "[^"]+missing\.txt" failed/
--- grep_error_log eval
qr/open\(\) "[^"]+" failed/
--- grep_error_log_out eval
qr/^open\(\) "[^"]+\/files\/missing\.txt" failed\n\z/



=== TEST 10: user_files are written into the html dir
--- config
    location /static/ {
        root html;
    }
--- user_files
>>> static/a.txt
file A
>>> static/sub/b.txt
file B
--- request eval
["GET /static/a.txt", "GET /static/sub/b.txt"]
--- response_body eval
["file A\n", "file B\n"]



=== TEST 11: a second server on $TEST_NGINX_RAND_PORT_1 reached through proxy_pass
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location = /token {
            default_type application/json;
            return 200 '{"access_token":"abc","port":"$server_port"}';
        }
    }
--- config
    location = /proxy {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
    }
--- request
GET /proxy
--- response_headers
Content-Type: application/json
--- response_body_like: ^\{"access_token":"abc","port":"\d+"\}$
--- no_error_log
[error]



=== TEST 12: $TEST_NGINX_SERVER_PORT in config, $ServerPort in the expected body
--- config
    location = /port {
        return 200 "conf=$TEST_NGINX_SERVER_PORT var=$server_port\n";
    }
--- request
GET /port
--- response_body
conf=$ServerPort var=$ServerPort



=== TEST 13: chunked responses are decoded
--- config
    location = /chunked {
        sub_filter_types text/plain;
        sub_filter_once off;
        sub_filter 'a' 'b';
        return 200 "banana split\n";
    }
--- request
GET /chunked
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
bbnbnb split



=== TEST 14: pipelined requests on one connection
--- config
    location = /one { return 200 "one\n"; }
    location = /two { return 200 "two\n"; }
--- pipelined_requests eval
["GET /one", "GET /two"]
--- response_body eval
["one\n", "two\n"]



=== TEST 15: raw_request is sent as is
--- config
    location = /raw {
        return 200 "proto=$server_protocol host=$host\n";
    }
--- raw_request eval
"GET /raw HTTP/1.0\r\nHost: raw.example\r\n\r\n"
--- response_body
proto=HTTP/1.0 host=raw.example



=== TEST 16: init runs before the request (here: writes a file nginx serves)
--- config
    location = /init.txt {
        root html;
    }
--- init
my $file = html_dir() . '/init.txt';
open my $fh, '>', $file or die "cannot write $file: $!";
print $fh "written by init\n";
close $fh;
--- request
GET /init.txt
--- response_body
written by init



=== TEST 17: timeout and wait sections
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- timeout: 5s
--- wait: 0.1
--- response_body
ok
--- no_error_log
[error]



=== TEST 18: HEAD request has no body
--- config
    location = /head {
        return 200 "body not sent";
    }
--- request
HEAD /head
--- response_headers
Content-Length: 13
--- response_body eval
""



=== TEST 19: must_die: a bad directive makes nginx refuse to start
--- config
    bogus_directive_for_the_test on;
--- must_die
--- error_log
unknown directive "bogus_directive_for_the_test"



=== TEST 20: the server after must_die starts again
--- config
    location = /alive {
        return 200 "alive\n";
    }
--- request
GET /alive
--- response_body
alive



=== TEST 21: no config section: an empty server, not the previous block's one
--- skip_eval: 2: !defined $Test::Nginx::Compat::VERSION
--- request
GET /alive
--- error_code: 404
--- response_body_like: 404 Not Found
