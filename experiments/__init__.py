"""Running one experiment: configs, stages, run directories, generation."""
