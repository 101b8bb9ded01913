"""obsdvpn-agent: watch and repair an OpenBSD L2TP/IPsec VPN host."""

__version__ = "0.1.0"
