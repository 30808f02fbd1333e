"""X.509 identities: DER reader, sources, keys, certificates and the signing-key interface
(layer 1)."""
