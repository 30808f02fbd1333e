"""httpx authentication: SigV4Auth (layer 3)."""
