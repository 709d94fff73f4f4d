"""tcpstates: which sockets are in which TCP state, who owns them, and what it means."""

__version__ = "0.1.0"
