# Makes conf/ importable as `gansweep.conf` (see pyproject.toml) so Hydra finds it via
# `pkg://gansweep.conf` in a checkout, an editable install and an installed wheel alike.
#
# Importing it (Hydra does, to find the files) also registers the `settings` config that
# conf/config.yaml composes first: gansweep/settings.py.
import gansweep.settings  # noqa: E402,F401
