"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class BikeshareError(Exception):
    """A failure the user can act on: the message says what went wrong and what to do next."""
