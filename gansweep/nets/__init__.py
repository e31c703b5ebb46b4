"""Architectures: one module each, exporting `Generator` and `Discriminator`."""
