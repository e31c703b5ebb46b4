"""What a sweep's runs say: the table and its comparisons (`python -m gansweep.report`), the
effect sizes and their tests, training stability, the paper's numbers, the W&B Report."""
