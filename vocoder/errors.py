"""The base of every error that is the user's input, not a bug: the CLI prints these without a traceback."""


class VocoderError(ValueError):
    """Bad input: a file, a field or a value that cannot be used. The message says which and why."""
