"""pytest fixtures (filled in with the emulator)."""
