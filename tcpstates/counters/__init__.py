"""``tcpstates counters``: the kernel's TCP counters, as nstat shows them, with what each means."""
