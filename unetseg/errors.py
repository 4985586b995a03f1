"""The single error type for mistakes a user can fix (bad data, bad params)."""


class UserError(Exception):
    """A problem in the user's input; its message names the file or key and says how to fix it."""
