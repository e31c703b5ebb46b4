"""Errors the user can fix. Their messages say what is wrong and how to fix it, so the
command line prints them without a traceback."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate


class GansweepError(Exception):
    """A problem with the user's data, configuration or files; the message is the help."""


def build(node, **kwargs):
    """`hydra.utils.instantiate`, but a `GansweepError` raised inside comes out as itself
    rather than wrapped in Hydra's InstantiationException."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, GansweepError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None
