# Makes conf/ importable as `gansweep.conf` (see pyproject.toml) so Hydra finds it via
# `pkg://gansweep.conf` in a checkout, an editable install and an installed wheel alike.
