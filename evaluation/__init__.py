"""Metrics, the dance-style classifier the metrics use, and rendering of dances to video."""
