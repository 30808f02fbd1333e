"""AWS config and credentials files, and the identity and CreateSession settings (layer 3)."""
