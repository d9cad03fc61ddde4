"""The stateful proxy core (RFC 3261 §16), sans-I/O: validation, routing, forking, response selection."""
