"""Data sets, the fixed held-out split, and the DataModule that serves them."""
