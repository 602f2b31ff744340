"""What every package shares: the one bad-input error and atomic file writes (the lowest layer)."""
