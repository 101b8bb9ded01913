"""npppd.conf: the IPCP pools, from the stock sample and the forms parse.y accepts."""

from __future__ import annotations

import ipaddress

import pytest

from conftest import fixture
from obsdvpn_agent.parsers import ParseError
from obsdvpn_agent.parsers.npppd_conf import parse_pools


def test_the_stock_sample():
    pools = parse_pools(fixture("npppd-conf/sample-npppd.conf"))
    assert pools.ranges == ("10.0.0.2-10.0.0.254",)
    assert pools.covering() == ipaddress.ip_network("10.0.0.0/24")
    nets = [ipaddress.ip_network(n) for n in pools.networks]
    assert ipaddress.ip_address("10.0.0.2") in nets[0]
    assert all(ipaddress.ip_address("10.0.0.1") not in n for n in nets)


def test_networks_single_addresses_quotes_comments_and_continuations():
    text = ('ipcp A {\n  pool-address "10.1.0.0/24" for dynamic  # clients\n'
            '  pool-address \\\n 10.1.1.7\n}\n# pool-address 192.0.2.0/24\n'
            'interface pppac0 address 10.1.0.1 ipcp A\n')
    pools = parse_pools(text)
    assert pools.ranges == ("10.1.0.0/24", "10.1.1.7")
    assert pools.covering() == ipaddress.ip_network("10.1.0.0/23")


def test_pool_address_outside_an_ipcp_block_is_not_a_pool():
    assert parse_pools("tunnel L2TP protocol l2tp {\n  pool-address 10.0.0.0/24\n}\n").ranges \
        == ()
    assert parse_pools("").covering() is None


@pytest.mark.parametrize("text", ["ipcp A {\n pool-address 10.0.0.9-10.0.0.1\n}\n",
                                  "ipcp A {\n pool-address 10.0.0.300\n}\n",
                                  "ipcp A {\n pool-address\n}\n", "ipcp A {\n",
                                  'ipcp A {\n pool-address "10.0.0.0/24\n}\n'])
def test_what_npppd_would_refuse_is_an_error_naming_the_line(text):
    with pytest.raises(ParseError) as e:
        parse_pools(text)
    assert "npppd.conf" in str(e.value)
