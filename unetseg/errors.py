"""The single error type for mistakes a user can fix (bad data, bad params), and how commands report it."""

import errno
import sys


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # errnos of a full disk, or of a full quota
# numpy's np.save reports a short write with one of these and no errno
NUMPY_SHORT_WRITE = ("requested and", "Not enough free space to write")


def is_disk_full(exc: OSError) -> bool:
    """A full disk or quota, as the OS reports it (ENOSPC, EDQUOT) or as numpy does (a message only)."""
    return exc.errno in DISK_FULL or (exc.errno is None and any(text in str(exc) for text in NUMPY_SHORT_WRITE))


class UserError(Exception):
    """A problem in the user's input; its message names the file or key and says how to fix it."""


def exit_on_user_error(main, argv) -> None:
    """Run a command's main; a UserError (or a full disk) becomes one `error:` line on stderr and exit
    status 2, after any progress bar has ended its line."""
    try:
        main(argv)
    except (UserError, OSError) as exc:
        if isinstance(exc, OSError) and not is_disk_full(exc):
            raise
        from tqdm import tqdm

        for bar in list(tqdm._instances):
            bar.close()
        message = exc if isinstance(exc, UserError) else (
            f"{exc.filename or 'an output'}: no space left on the device; free some space and rerun")
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
