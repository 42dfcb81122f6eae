"""Message contracts between services: RPC request/reply models and event payloads.

A service validates what it receives with these models; the gateway builds its REST schemas on
them. Fields may be added freely; renaming or removing one is a versioned change.
"""
