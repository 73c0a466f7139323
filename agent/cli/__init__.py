"""``ca-cli``: an IOS XR-style command line for the agent, speaking only NETCONF (ncclient)."""
