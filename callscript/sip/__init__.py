"""The sans-I/O SIP core: messages, transactions, proxy logic. No sockets, clocks or threads."""
