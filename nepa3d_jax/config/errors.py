"""`ConfigError`: raised by validation and by derived values alike (neither imports the other)."""


class ConfigError(ValueError):
    """An invalid config; the message names every offending field."""
