"""The one exception type for mistakes a user can fix; the CLI prints it on one line and exits 2."""


class UserError(Exception):
    """Bad input: the message names the file, line or config key and says how to fix it."""
