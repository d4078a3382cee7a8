"""The closed-loop demo through DDS: sim graph in one process, lockstep with /clock."""

from dataclasses import dataclass
import time

from mm_fusion_ros.evaluation.closed_loop import EpisodeOutcome, drive
from mm_fusion_ros.model.checkpoint import read_checkpoint
from mm_fusion_ros.model.config import FusionModelConfig
from mm_fusion_ros.paths import resolve_checkpoint
from mm_fusion_ros.ros.runner import DEFAULT_EXECUTOR, running_graph
from mm_fusion_ros.ros.view_node import attached_view
from mm_fusion_ros.sim.camera import CameraConfig
from mm_fusion_ros.sim.scenarios import SCENARIO_TYPES
from mm_fusion_ros.sim.simulator import expert_policy
from mm_fusion_ros.view.options import ViewOptions


@dataclass
class ClosedLoopResult:
    model: list[EpisodeOutcome]
    expert: list[EpisodeOutcome]
    fusion_stats: dict
    wall_s: float
    frames: int


def run_closed_loop_graph(
    episodes: int = 12,
    duration: float = 12.0,
    seed: int = 900_000,
    checkpoint: str | None = None,
    device: str = 'auto',
    executor: str = DEFAULT_EXECUTOR,
    timeout_s: float = 1800.0,
    view: ViewOptions | None = None,
) -> ClosedLoopResult:
    """Drive `episodes` held-out scenarios (one per type, cycling) through the node graph."""
    types = [t.value for t in SCENARIO_TYPES]
    camera = model_camera(resolve_checkpoint(checkpoint))
    sim_params = {
        'camera_width': camera.width,
        'camera_height': camera.height,
        'scenarios': types,
        'conditions': ['all'],
        'episodes': episodes,
        'seed': seed,
        'duration': duration,
        'lockstep': True,
        'publish_clock': True,
    }
    fusion_params = {'device': device}
    if checkpoint:
        fusion_params['checkpoint'] = checkpoint
    overrides = {'sim_node': sim_params, 'fusion_node': fusion_params}
    start = time.monotonic()
    with running_graph('sim', overrides=overrides, executor=executor, use_sim_time=True) as (
        exe,
        nodes,
    ), attached_view(view, exe, nodes['sim_node'].context, use_sim_time=True):
        sim = nodes['sim_node']
        while not sim.finished and time.monotonic() - start < timeout_s:
            exe.spin_once(timeout_sec=0.1)
        if not sim.finished:
            raise TimeoutError(f'closed loop did not finish within {timeout_s} s')
        stats = nodes['fusion_node'].stats()
        records = list(sim.records)
    wall = time.monotonic() - start
    model = [
        EpisodeOutcome.from_metrics(r.config, r.metrics, r.expert_actions, r.decided_actions)
        for r in records
    ]
    expert = [drive(r.config, expert_policy, render=False) for r in records]
    frames = sum(len(r.expert_actions) for r in records)
    return ClosedLoopResult(model, expert, stats, wall, frames)


def model_camera(checkpoint: str) -> CameraConfig:
    """The camera the checkpoint's model was trained on (twice its view with a fovea)."""
    return CameraConfig.for_view(
        FusionModelConfig.from_dict(read_checkpoint(checkpoint)['model_config']))

