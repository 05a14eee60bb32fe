"""infir: the InfiR recipe for small reasoning models, as one toolkit."""

__version__ = "0.1.0"
