"""Benchmarks of gpulab's hot paths, each against a bare baseline measured in the same run."""
