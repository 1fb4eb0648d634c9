"""VPN configs: a user's panel user on one Marzban instance (rows in `configs`)."""
