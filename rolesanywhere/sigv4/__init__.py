"""AWS Signature Version 4: canonicalisation and the HMAC signer and presigner (layer 1)."""
