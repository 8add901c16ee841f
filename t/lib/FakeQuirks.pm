package FakeQuirks;

# Named provider quirks for t/lib/FakeProvider.pm: what real platforms do
# that RFC 6749 does not say, reproduced so that the presets can be run
# end to end (t/070-platforms.t).  FakeProvider asks answer() first; an
# empty list lets it answer as it always does.
#
# Knob, set with $fake->set(code_shape => NAME): the shape of the answer
# to an authorization_code grant at /token:
#   meta_wrapped  Meta's {"data":[{"access_token":..,"user_id":..}]}, one
#                 short-lived token, no refresh token
#   slack_user    Slack's user-token install: no top-level access_token,
#                 the token under "authed_user", the team under "team"
#   ghl_company   a GoHighLevel agency install: companyId, no locationId
#   plain         the usual token, plus blog_id (WordPress.com) and
#                 stripe_user_id (Stripe) beside it
#   no_refresh    a token without refresh token (GitHub OAuth apps,
#                 Stripe, WordPress.com)
#   (unset)       FakeProvider's own answer
#
# Endpoints:
#   GET /q/userinfo              the bearer's account as JSON, under the
#                                names presets read (id, user_id, sub,
#                                shop.myshopify_domain, ...); 401 for an
#                                unknown or revoked token
#   GET /q/ig/access_token       Instagram's ig_exchange_token: the
#                                short-lived token in access_token becomes
#                                a 60-day one ("ig_exchange" counted)
#   GET /q/ig/refresh_access_token
#                                Instagram's ig_refresh_token: a new 60-day
#                                token for a valid one ("ig_refresh")
#   ANY /q/revoke...             a revocation endpoint of any style: 200
#                                ({} body), or q_revoke_status; revokes the
#                                grant of any token it names (form token,
#                                JSON token or access_token, Bearer)

use strict;
use warnings;

use JSON::PP;

my $JSON = JSON::PP->new->canonical->utf8;

sub _bearer {
    my $req = shift;
    my %h = map { (lc $_->[0] => $_->[1]) } @{ $req->{headers} };
    my $auth = $h{authorization};
    return $1 if defined $auth
                 && $auth =~ /^(?:Bearer|Zoho-oauthtoken) (\S+)$/;
    # Shopify's and Walmart's own headers carry the bare token
    return $h{'x-shopify-access-token'} // $h{'wm_sec.access_token'};
}

sub _query {
    return FakeProvider::_form(shift->{query});
}

sub _valid {
    my ($st, $tok) = @_;
    my $at = defined $tok ? $st->{access_tokens}{$tok} : undef;
    return undef unless $at && !$st->{revoked}{ $at->{grant} };
    return $at;
}

sub _code {
    my ($st, $req) = @_;
    my $shape = $st->{code_shape} or return;
    my $f = $req->{form} // {};
    return unless ($f->{grant_type} // '') eq 'authorization_code';

    $st->{counts}{code}++;
    my $account = $f->{code} // 'none';
    my $grant = 'g' . ($st->{seq} + 1);
    my $tok = FakeProvider::_issue($st, $account, $grant,
                                   $shape ne 'meta_wrapped'
                                   && $shape ne 'no_refresh');

    if ($shape eq 'meta_wrapped') {
        my %t = (access_token => $tok->{access_token}, user_id => $account,
                 permissions => 'instagram_business_basic');
        return FakeProvider::_json(200, { data => [ \%t ] });
    }

    if ($shape eq 'slack_user') {
        return FakeProvider::_json(200, {
            ok => JSON::PP::true,
            app_id => 'A1',
            team => { id => 'T-' . $account, name => 'Team' },
            authed_user => { id => $account, scope => 'search:read',
                             access_token => $tok->{access_token},
                             token_type => 'user' },
        });
    }

    if ($shape eq 'ghl_company') {
        $tok->{userType} = 'Company';
        $tok->{companyId} = $account;
        return FakeProvider::_json(200, $tok);
    }

    $tok->{user} = { id => $account, name => "User $account" };
    $tok->{blog_id} = "blog-$account";
    $tok->{stripe_user_id} = "acct_$account";
    return FakeProvider::_json(200, $tok);
}

sub _revoke {
    my ($st, $req) = @_;
    $st->{counts}{q_revoke}++;

    my @toks = (_bearer($req));
    my $f = $req->{form} // {};
    push @toks, $f->{token};
    my $body = eval { $JSON->decode($req->{body}) };
    push @toks, $body->{token}, $body->{access_token} if ref $body eq 'HASH';

    for my $t (grep { defined } @toks) {
        my $at = $st->{access_tokens}{$t} // $st->{refresh_tokens}{$t};
        $st->{revoked}{ $at->{grant} } = 1 if $at;
    }

    my $status = $st->{q_revoke_status} // 200;
    return ($status, 'application/json', $status == 204 ? '' : '{}');
}

sub answer {
    my ($st, $req) = @_;

    if ($req->{path} eq '/token' && $req->{method} eq 'POST') {
        return _code($st, $req);
    }

    return unless $req->{path} =~ m{^/q/};

    if ($req->{path} eq '/q/userinfo') {
        my $at = _valid($st, _bearer($req));
        $st->{counts}{q_userinfo}++;
        return FakeProvider::_json(401, { error => 'invalid_token' })
            unless $at;
        my $a = $at->{account};
        return FakeProvider::_json(200, {
            id => $a, user_id => $a, sub => $a, ID => $a, ZUID => $a,
            username => "user-$a", name => "User $a", login => "user-$a",
            email => "$a\@example.com",
            shop => { myshopify_domain => "$a.myshopify.com",
                      name => "Shop $a" },
            data => { id => $a, username => "user-$a",
                      user => { open_id => $a, display_name => "User $a" } },
        });
    }

    if ($req->{path} eq '/q/ig/access_token'
        || $req->{path} eq '/q/ig/refresh_access_token')
    {
        my $q = _query($req);
        my $refresh = $req->{path} =~ /refresh/;
        my $want = $refresh ? 'ig_refresh_token' : 'ig_exchange_token';
        my $at = _valid($st, $q->{access_token});
        $st->{counts}{ $refresh ? 'ig_refresh' : 'ig_exchange' }++;

        return FakeProvider::_json(400, { error => {
                   message => 'Invalid OAuth access token',
                   type => 'OAuthException', code => 190 } })
            unless $at && ($q->{grant_type} // '') eq $want
                   && ($refresh || defined $q->{client_secret});

        local $st->{expires_in} = 5184000;
        my $tok = FakeProvider::_issue($st, $at->{account}, $at->{grant}, 0);
        delete $tok->{scope};
        $tok->{token_type} = 'bearer';
        return FakeProvider::_json(200, $tok);
    }

    if ($req->{path} =~ m{^/q/revoke}) {
        return _revoke($st, $req);
    }

    return;
}

1;
