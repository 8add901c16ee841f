# Kind aws_sigv4 (the "aws" preset): access keys stored through the API,
# every proxied request signed with AWS Signature Version 4.  The fake's
# "sigv4" scenario recomputes the signature from what it received, the
# way AWS does, and answers 403 with the canonical request when it does
# not match.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

package T;

use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);
use JSON::PP ();

our %Keys = (
    AKIDEXAMPLE => 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    ASIATEMP => 'tmp/Secret+Key/EXAMPLE',
);

sub enc {
    my $s = shift;
    $s =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub unesc {
    my $s = shift // '';
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# The canonical path as AWS documents it: S3 encodes each segment once
# and keeps the path as it is; other services drop "." and empty
# segments, resolve "..", and encode each segment twice.
sub cpath {
    my ($path, $service) = @_;
    my @seg = split m{/}, $path, -1;
    shift @seg;
    return '/' . join '/', map { enc(unesc($_)) } @seg if $service =~ /^s3/;
    my @out;
    for (@seg) {
        next if $_ eq '' || $_ eq '.';
        if ($_ eq '..') { pop @out; next }
        push @out, $_;
    }
    my $p = '/' . join '/', map { enc(enc(unesc($_))) } @out;
    return @out && $path =~ m{/$} ? "$p/" : $p;
}

# AWS's side: the signature of what arrived, or why not
sub check {
    my $req = shift;
    my $h = sub { FakeProvider::header($req, shift) };
    my $auth = $h->('authorization') // return 'no Authorization';
    my ($id, $date, $region, $service, $signed, $sig) = $auth =~
        m{^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$}
        or return "malformed Authorization: $auth";
    my $secret = $Keys{$id} // return "unknown key $id";
    my $amz = $h->('x-amz-date') // return 'no X-Amz-Date';
    return 'X-Amz-Date not today' unless substr($amz, 0, 8) eq $date;
    my ($y, $mo, $d, $hh, $mm, $ss) = $amz =~ /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/
        or return 'bad X-Amz-Date';
    require Time::Local;
    my $t = Time::Local::timegm($ss, $mm, $hh, $d, $mo - 1, $y);
    return 'X-Amz-Date off by more than 5 minutes' if abs(time - $t) > 300;

    my $ph = $h->('x-amz-content-sha256') // return 'no X-Amz-Content-Sha256';
    return 'payload hash does not match the body'
        unless $ph eq 'UNSIGNED-PAYLOAD' || $ph eq sha256_hex($req->{body});

    my %sh = map { $_ => 1 } split /;/, $signed;
    for my $need ('host', 'x-amz-date', 'x-amz-content-sha256',
                  grep { /^x-amz-|^content-type$/ }
                  map { lc $_->[0] } @{ $req->{headers} })
    {
        return "$need not signed" unless $sh{$need};
    }

    my @q = map { my ($k, $v) = split /=/, $_, 2;
                  [ enc(unesc($k)), enc(unesc($v)) ] }
            grep { length } split /&/, $req->{query};
    my $cq = join '&', map { "$_->[0]=$_->[1]" }
             sort { $a->[0] cmp $b->[0] || $a->[1] cmp $b->[1] } @q;
    my $ch = join '', map {
        my $n = $_;
        my $v = join ',', map { (my $x = $_) =~ s/^\s+|\s+$//g; $x =~ s/\s+/ /g; $x }
                          $h->($n);
        "$n:$v\n" } split /;/, $signed;
    my $creq = join "\n", $req->{method}, cpath($req->{path}, $service), $cq, $ch, $signed, $ph;
    my $sts = join "\n", 'AWS4-HMAC-SHA256', $amz,
              "$date/$region/$service/aws4_request", sha256_hex($creq);
    my $k = hmac_sha256($date, "AWS4$secret");
    $k = hmac_sha256($_, $k) for $region, $service, 'aws4_request';
    return "signature does not match; canonical request:\n$creq"
        unless hmac_sha256_hex($sts, $k) eq $sig;
    return (undef, { key => $id, scope => "$region/$service",
                     signed => $signed, payload => $ph,
                     session => $h->('x-amz-security-token') // '',
                     body_length => length $req->{body} });
}

FakeProvider::scenario(sigv4 =>
    api => sub {
        my ($st, $req) = @_;
        my ($why, $ok) = check($req);
        for my $s (values %Keys) {
            $why = 'the secret key reached the upstream'
                if index($req->{head} . $req->{body}, $s) >= 0;
        }
        return FakeProvider::reply(403, body => "$why\n") if $why;
        return FakeProvider::reply(200, json => $ok);
    });

sub store {
    my ($account, %c) = @_;
    my $r = OAuthKit::api('POST', 'connections/' . ($c{provider} // 'aws'),
                          owner => 'alice',
                          json => { account => $account,
                                    credentials => $c{credentials} });
    die "store: $r->{status} $r->{content}" unless $r->{status} == 201
                                                || $r->{status} == 200;
}

sub keys_prod {
    store('prod', credentials => { access_key_id => 'AKIDEXAMPLE',
                                   secret_access_key => $Keys{AKIDEXAMPLE} },
          @_);
}

package main;

$ENV{TEST_NGINX_AWS_PROVIDERS} = <<'_EOC_';
    oauth_provider aws {
        preset aws;
        aws_region eu-west-3;
        aws_service execute-api;
        api_base_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }

    oauth_provider s3 {
        preset aws;
        aws_region us-east-1;
        aws_service s3;
        aws_unsigned_payload on;
        api_base_url http://127.0.0.1:$TEST_NGINX_FAKE_PORT/;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->http_config) {
        $block->set_value(http_config => $ENV{TEST_NGINX_AWS_PROVIDERS});
    }
    OAuthKit::demo_defaults($block);
});

run_tests();

__DATA__

=== TEST 1: GET: the stored keys sign method, path (encoded twice: not S3), sorted query, host and the client's x-amz-* headers (sorted by name, a repeated one once); the client's own Authorization goes
--- config
    location /sigv4/ {
        oauth_token aws;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
T::keys_prod();
--- request
GET /sigv4/api/items%20x:y?b=2&a=1&c=x%2Fy&a=0&a-b=3
--- more_headers
X-Owner: alice
Authorization: Bearer client-own
X-Amz-Meta-Color-Name: sky
X-Amz-Meta-Color: blue
X-Amz-Date: 19990101T000000Z
X-Amz-Meta-Color:  light   green
--- response_body_like: "key":"AKIDEXAMPLE".*"payload":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".*"scope":"eu-west-3/execute-api".*"signed":"host;x-amz-content-sha256;x-amz-date;x-amz-meta-color;x-amz-meta-color-name"
--- error_code: 200

=== TEST 2: POST: the body is read without blocking and its SHA-256 signed, with Content-Type
--- config
    location /sigv4/ {
        oauth_token aws;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
T::keys_prod();
--- request
POST /sigv4/api/put
{"Item":{"id":{"S":"1"}}}
--- more_headers
X-Owner: alice
Content-Type: application/x-amz-json-1.0
X-Amz-Target: DynamoDB_20120810.PutItem
--- response_body_like: "body_length":25,.*"payload":"[0-9a-f]{64}".*"signed":"content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target"
--- error_code: 200

=== TEST 3: POST of a body larger than client_body_buffer_size (hashed from nginx's temporary file), in chunks
--- config
    location /sigv4/ {
        client_body_buffer_size 1k;
        oauth_token aws;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
T::keys_prod();
--- request eval
"POST /sigv4/api/upload\n" . ("0123456789abcdef" x 4096)
--- more_headers
X-Owner: alice
--- response_body_like: "body_length":65536,
--- error_code: 200

=== TEST 4: temporary credentials: the session token goes in X-Amz-Security-Token, signed
--- config
    location /sigv4/ {
        oauth_token aws;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
T::store('tmp', credentials => { access_key_id => 'ASIATEMP',
                                 secret_access_key => $T::Keys{ASIATEMP},
                                 session_token => 'FwoGZXIvYXdzEXAMPLE//token=' });
--- request
GET /sigv4/api/who
--- more_headers
X-Owner: alice
X-Amz-Security-Token: client-forged
--- response_body_like: "key":"ASIATEMP".*"session":"FwoGZXIvYXdzEXAMPLE//token=".*"signed":"host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
--- error_code: 200

=== TEST 5: aws_unsigned_payload (S3): UNSIGNED-PAYLOAD, the body is not read first; a URI changed by rewrite is signed as proxy_pass sends it
--- config
    location /s3/ {
        oauth_token s3;
        rewrite ^/s3(/.*)$ $1 break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
T::keys_prod(provider => 's3');
--- request
PUT /s3/sigv4/api/bucket/a%20key?x-id=PutObject
hello
--- more_headers
X-Owner: alice
--- response_body_like: "body_length":5,.*"payload":"UNSIGNED-PAYLOAD","scope":"us-east-1/s3"
--- error_code: 200

=== TEST 6: the keys never show: $oauth_access_token is empty, $oauth_authorization is the signature
--- config
    location /sigv4/ {
        oauth_token aws;
        add_header X-Token "[$oauth_access_token]" always;
        add_header X-Auth $oauth_authorization always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
T::keys_prod();
--- request
GET /sigv4/api/items
--- more_headers
X-Owner: alice
--- response_headers_like
X-Token: ^\[\]$
X-Auth: ^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\d{8}/eu-west-3/execute-api/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$
--- error_code: 200

=== TEST 7: the API wants both keys, without a colon; the session token is optional
--- config
--- init
my @r = map { OAuthKit::api('POST', 'connections/aws', owner => 'alice',
                            json => { account => 'x', credentials => $_ }) }
    { access_key_id => 'AKIDEXAMPLE' },
    { access_key_id => 'AK:ID', secret_access_key => 's' },
    { access_key_id => 'AKIDEXAMPLE', secret_access_key => 's', session_token => 7 };
Test::More::is(join(' ', map { "$_->{status}" } @r), '400 400 400',
               'missing secret, a colon, a session token not a string');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_unlike: "account":"x"
--- no_error_log
[alert]

=== TEST 8: nginx -t: kind aws_sigv4 needs aws_region
--- http_config
    oauth_provider aws {
        preset aws;
        aws_service s3;
        api_base_url https://s3.amazonaws.com;
    }
--- config
--- must_die
--- error_log
kind aws_sigv4 needs "aws_region"

=== TEST 9: nginx -t: kind aws_sigv4 takes no userinfo_url
--- http_config
    oauth_provider aws {
        preset aws;
        aws_region us-east-1;
        aws_service s3;
        api_base_url https://s3.amazonaws.com;
        userinfo_url https://sts.amazonaws.com/;
    }
--- config
--- must_die
--- error_log
cannot have a "userinfo_url"
