"""harness: benchmarking and profiling for the ResNet family of image classifiers."""

__version__ = "0.1.0"
