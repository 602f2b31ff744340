"""Running many experiments: matrices, the runner, ablation and timing tables, benchmarks."""
