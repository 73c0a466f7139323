"""ca-agent: a NETCONF/YANG agent giving a host the PKI behaviour of an IOS XR router."""

__version__ = "0.1.0"
