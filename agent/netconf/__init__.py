"""netconf layer."""
