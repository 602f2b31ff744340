"""The `d2m` command line, on top of every package."""
