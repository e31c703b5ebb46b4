"""The method: the paper's layers and norms, the GAN losses and penalties, and its metric
(test-set reconstruction). Pure torch: no Lightning, no files, nothing of a run."""
