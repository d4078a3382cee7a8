"""Procedural driving-scenario simulator: world, camera and radar models, expert, metrics.

Pure numpy (no rclpy, no torch). Entry points: `ScenarioConfig`, `Simulator`, `run_episode`.
"""

from mm_fusion_ros.sim.conditions import CONDITIONS, Condition
from mm_fusion_ros.sim.expert import ExpertLabel
from mm_fusion_ros.sim.metrics import EpisodeMetrics
from mm_fusion_ros.sim.scenarios import SCENARIO_TYPES, ScenarioConfig, ScenarioType, scenario_mix
from mm_fusion_ros.sim.simulator import (
    EpisodeResult,
    SimFrame,
    SimOptions,
    Simulator,
    expert_policy,
    run_episode,
)

__all__ = [
    'CONDITIONS', 'Condition', 'EpisodeMetrics', 'EpisodeResult', 'ExpertLabel',
    'SCENARIO_TYPES', 'ScenarioConfig', 'ScenarioType', 'SimFrame', 'SimOptions', 'Simulator',
    'expert_policy', 'run_episode', 'scenario_mix',
]
