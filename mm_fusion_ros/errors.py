"""User-input errors: what `mm-fusion` reports as one line and exit code 2, with no traceback.

A file, directory or value given by the user that cannot be used (a corrupt checkpoint, a
training config with an unknown key, a cache without a manifest, ...) raises a subclass of
`UserInputError` where it is read, with a message that names the file / key / value and what
is wrong with it. `mm_fusion_ros.cli.main` is the one place that turns these into
`mm-fusion <command>: <message>` on stderr; anything else keeps its traceback (a bug).

The subclasses also derive from the builtin their module raised before (`CheckpointError` is a
RuntimeError, `CacheError` a ValueError, ...), so library callers catching those still work.
"""


class UserInputError(Exception):
    """A file, directory or value the user gave that cannot be used (see the module doc)."""


def one_line(exc: BaseException | str) -> str:
    """The message of `exc` on one line (multi-line listings joined with '; ')."""
    parts = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not parts:
        return type(exc).__name__
    text = parts[0]
    for part in parts[1:]:
        text += (' ' if text.endswith(':') else '; ') + part
    return text


def check_output_file(path: str, option: str) -> None:
    """Refuse, before a long run, an output file its end could not write (UserInputError)."""
    from pathlib import Path

    target = Path(path)
    parent = target.parent
    if target.is_dir():
        raise UserInputError(f'{option} {path} is a directory, not a file')
    if not parent.is_dir():
        raise UserInputError(f'{option} {path}: directory {parent} does not exist')
