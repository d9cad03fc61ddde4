"""The server around the core: configuration, wiring, the driver and the routing engine."""
