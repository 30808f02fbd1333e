"""CreateSession: ARNs, endpoints, the protocol, HTTP transports, clients and refreshing
credentials (layer 2)."""
