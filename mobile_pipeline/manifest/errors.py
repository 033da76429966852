"""The manifest build's error type, in a module of its own.

Both :mod:`.builder` and :mod:`.tier_source` raise it; keeping it here (importing nothing
of the package) is what lets ``builder`` import ``tier_source`` at module level without a
cycle.
"""

from __future__ import annotations


class ManifestBuildError(ValueError):
    """The artifacts cannot make a valid manifest; the message says which and what to do."""
