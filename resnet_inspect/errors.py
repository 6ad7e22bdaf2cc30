"""The one error type for bad input; the CLI turns it into one line and exit status 2."""


class InspectError(ValueError):
    """Bad input from the user: an unknown name, an impossible size, a malformed spec."""
