"""Renderers: sockets in, text out. They never read the kernel and never pick a stream."""
