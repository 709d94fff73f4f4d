"""``tcpstates kill``: destroy the sockets a filter selects, through sock_diag (as ss -K)."""
