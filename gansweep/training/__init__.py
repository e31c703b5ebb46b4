"""The training engine: the GAN as a Lightning module, its trainer, the callbacks that write a
run's files as it trains, signals, packed seeds, and the W&B logger."""
