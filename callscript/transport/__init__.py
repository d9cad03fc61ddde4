"""Asyncio adapters: UDP, TCP and TLS transports, name resolution, the driver."""
