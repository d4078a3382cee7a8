"""Live view of the running graph in a browser: camera, radar, decision, safety (Rerun).

`mm-fusion up GRAPH --view` and `mm-fusion demo --view` add `ros/view_node.py` to the graph;
it forwards the public topics to a Rerun server (`server.py`) whose web viewer is served from
the installed wheel, on loopback unless asked otherwise. `geometry.py` (mounts, radar ->
image projection) is pure numpy; `scene.py` turns the pipeline's data into Rerun entities.

rerun-sdk is an optional dependency (the `view` extra, installed by `make`): everything that
needs it imports it through `require_rerun()`, so the package works without it.
"""

from mm_fusion_ros.errors import UserInputError

INSTALL_HINT = (
    "install the view extra: pip install -e '.[view]' -c requirements/constraints.txt"
    ' (make installs it with requirements/venv.txt)'
)


class ViewUnavailableError(UserInputError, ImportError):
    """--view was asked for, but rerun-sdk is not installed."""


def require_rerun():
    """The `rerun` module, or ViewUnavailableError saying how to install it."""
    try:
        import rerun
    except ImportError as exc:
        raise ViewUnavailableError(f'--view needs rerun-sdk ({exc}); {INSTALL_HINT}') from exc
    return rerun
