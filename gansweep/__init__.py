"""gansweep: batch vs weight normalisation in GANs (Xiang & Li, arXiv 1704.03971), at scale."""

__version__ = "0.1.0"
