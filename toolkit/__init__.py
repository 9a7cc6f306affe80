"""Infrastructure shared by every stage: paths, seeds, checkpoints, command line, errors."""
