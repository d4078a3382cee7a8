"""Where the package's data lives, and the one place for "empty means the default" rules.

`resolve_checkpoint` and `resolve_params_file` turn a user's value (empty or a path) into the
file to read; every node, command and launch file calls them instead of its own fallback.
"""

from pathlib import Path

PACKAGE = 'mm_fusion_ros'
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_dir() -> Path:
    """The package share directory: the ament index in a workspace, else the source tree."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            share = Path(get_package_share_directory(PACKAGE))
            if (share / 'config').is_dir():
                return share
        except (PackageNotFoundError, LookupError, OSError):
            pass  # not in an ament workspace (a plain venv has no AMENT_PREFIX_PATH)
    except ImportError:
        pass
    return _SOURCE_ROOT


def config_dir() -> Path:
    return share_dir() / 'config'


def launch_dir() -> Path:
    return share_dir() / 'launch'


def checkpoints_dir() -> Path:
    return Path(__file__).resolve().parent / 'checkpoints'


DEFAULT_CHECKPOINT = 'fusion_default.pt'
PARAMS_FILE = 'params.yaml'  # the node parameters of every graph (config/params.yaml)


def default_checkpoint() -> Path:
    return checkpoints_dir() / DEFAULT_CHECKPOINT


def resolve_checkpoint(value: str | Path | None) -> Path:
    """The checkpoint to load: empty or None means the one shipped in the package."""
    return Path(value).expanduser() if value not in (None, '') else default_checkpoint()


def resolve_params_file(value: str | Path | None) -> Path:
    """The node parameters file: empty or None means the shipped `config/params.yaml`."""
    return Path(value).expanduser() if value not in (None, '') else config_dir() / PARAMS_FILE
