"""kws: edge keyword spotting.

data -> features -> models -> train -> growth -> budget -> export -> stream
"""

__version__ = "0.1.0"
