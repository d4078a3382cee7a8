"""Where the package's data lives: config/, launch/ and the shipped checkpoint."""

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


def default_checkpoint() -> Path:
    return checkpoints_dir() / DEFAULT_CHECKPOINT
