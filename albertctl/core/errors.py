"""The one user-facing exception: a mistake the user can fix, told in one line."""


class AlbertError(Exception):
    """What was wrong, where, and what would be accepted. The CLI prints it and exits 2."""
