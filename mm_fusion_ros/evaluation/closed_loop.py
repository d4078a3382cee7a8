"""Closed-loop driving evaluation without ROS: the model drives the simulator.

The policy runs the node graph's logic in-process, in the same order: radar preprocessing and
history (FusionPipeline), the model, then the safety layer (SafetyLayer), so the figures match
what `mm-fusion demo` measures through DDS, minus transport.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
import math

import numpy as np

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import Decision, DecisionSource
from mm_fusion_ros.pipeline import FusionPipeline, PipelineConfig
from mm_fusion_ros.safety import SafetyConfig, SafetyLayer
from mm_fusion_ros.sensors.radar_preprocess import preprocess_radar
from mm_fusion_ros.sim.camera import CameraModel
from mm_fusion_ros.sim.metrics import EpisodeMetrics
from mm_fusion_ros.sim.scenarios import ScenarioConfig
from mm_fusion_ros.sim.simulator import SimFrame, SimOptions, Simulator

NS = 1_000_000_000


class ModelPolicy:
    """SimFrame -> final Decision through pipeline, model and safety layer.

    `model_decision` holds the model's own decision for the last frame (before the safety
    layer's overrides, dwell and rate limit), which the on-policy ablation scores.
    """

    def __init__(
        self,
        predictor,
        modality: str = 'fused',
        pipeline_config: PipelineConfig | None = None,
        safety_config: SafetyConfig | None = None,
    ) -> None:
        self.predictor = predictor
        self.modality = modality
        self.pipeline_config = pipeline_config or PipelineConfig()
        self.safety_config = safety_config or SafetyConfig()
        self.reset()

    def reset(self) -> None:
        self.pipeline = FusionPipeline(self.predictor, self.pipeline_config)
        self.safety = SafetyLayer(self.safety_config)
        self.model_decision: Decision | None = None

    def __call__(self, frame: SimFrame) -> Decision:
        now = round(frame.stamp * NS)
        if frame.radar is not None:
            points = preprocess_radar(frame.radar[:, :5], self.pipeline_config.preprocess)
            self.pipeline.add_radar(round(frame.radar_stamp * NS), points)
            self.safety.on_radar(now, points)
        speed = float(frame.ego.speed)  # the sim's odometry, as sim_node publishes it
        previous = self.pipeline.add_camera(now, frame.rgb)
        seq = self.pipeline.sequence(now)
        prediction = self.predictor.predict(frame.rgb, seq, self.modality, ego_speed=speed,
                                            previous_rgb=previous)
        reason = self.pipeline.degraded_reason(None if self.modality == 'camera' else seq, speed)
        self.model_decision = FusionPipeline.to_decision(now, prediction, reason)
        self.safety.on_model_decision(now, self.model_decision)
        return self.safety.decide(now)


@dataclass
class EpisodeOutcome:
    scenario: str
    condition: str
    seed: int
    collision: bool
    red_light_violation: bool
    min_ttc: float
    progress: float
    rms_jerk: float
    # per frame: the expert's label for the state this driver reached, the final decision,
    # and the model's own decision before the safety layer (empty for a driver without one)
    expert_actions: list[int]
    actions: list[int]
    model_actions: list[int]
    # per frame: the final decision's DecisionSource (empty for a driver without one) and the
    # true time-to-collision [s] of the state reached (inf: nothing in path)
    sources: list[int] = field(default_factory=list)
    ttcs: list[float] = field(default_factory=list)

    @classmethod
    def from_metrics(
        cls,
        config: ScenarioConfig,
        metrics: EpisodeMetrics,
        expert_actions: Sequence[int],
        actions: Sequence[int],
        model_actions: Sequence[int] = (),
        sources: Sequence[int] = (),
        ttcs: Sequence[float] = (),
    ) -> 'EpisodeOutcome':
        return cls(
            scenario=config.scenario.value,
            condition=config.condition.value,
            seed=config.seed,
            collision=metrics.collision,
            red_light_violation=metrics.red_light_violation,
            min_ttc=metrics.min_ttc,
            progress=metrics.progress,
            rms_jerk=metrics.rms_jerk,
            expert_actions=list(map(int, expert_actions)),
            actions=list(map(int, actions)),
            model_actions=list(map(int, model_actions)),
            sources=list(map(int, sources)),
            ttcs=list(map(float, ttcs)),
        )

    @property
    def agreement(self) -> float:
        """Share of frames whose final decision matched the expert's label."""
        pairs = zip(self.expert_actions, self.actions, strict=True)
        return sum(a == b for a, b in pairs) / max(len(self.actions), 1)


def drive(
    config: ScenarioConfig,
    policy: Callable[[SimFrame], object],
    camera: CameraModel | None = None,
    render: bool = True,
) -> EpisodeOutcome:
    """One closed-loop episode; the policy's decisions move the ego.

    A policy with a `model_decision` attribute (`ModelPolicy`) also has its model's own
    decisions recorded.
    """
    options = SimOptions(render_camera=render, render_radar=render)
    sim = Simulator(config, options, camera)
    frame = sim.reset()
    expert, decided, model, sources, ttcs = [], [], [], [], []
    while not frame.done:
        decision = policy(frame)
        expert.append(int(frame.label.action))
        decided.append(int(decision.action))
        ttcs.append(float(frame.label.ttc))
        if (source := getattr(decision, 'source', None)) is not None:
            sources.append(int(source))
        if (proposal := getattr(policy, 'model_decision', None)) is not None:
            model.append(int(proposal.action))
        frame = sim.step(decision)
    return EpisodeOutcome.from_metrics(config, sim.metrics(), expert, decided, model,
                                       sources, ttcs)


def summarize(outcomes: Sequence[EpisodeOutcome]) -> dict:
    """Collisions, violations and the min-TTC distribution over episodes."""
    ttc = np.array([o.min_ttc for o in outcomes], float)
    finite = ttc[np.isfinite(ttc)]
    quantiles = (
        {f'p{q}': float(np.percentile(finite, q)) for q in (5, 25, 50)} if finite.size else {}
    )
    return {
        'episodes': len(outcomes),
        'collisions': int(sum(o.collision for o in outcomes)),
        'red_light_violations': int(sum(o.red_light_violation for o in outcomes)),
        'min_ttc': quantiles,
        'min_ttc_below_1s': int(np.sum(finite < 1.0)),
        'mean_progress_m': float(np.mean([o.progress for o in outcomes])) if outcomes else 0.0,
        'mean_rms_jerk': float(np.mean([o.rms_jerk for o in outcomes])) if outcomes else 0.0,
        'mean_agreement': float(np.mean([o.agreement for o in outcomes])) if outcomes else 0.0,
    }


def outcomes_to_rows(outcomes: Sequence[EpisodeOutcome]) -> list[dict]:
    """JSON-ready rows (non-finite floats as null); per-frame actions as strings of digits."""
    return [{k: _json_value(v) for k, v in {**asdict(o), 'agreement': o.agreement}.items()}
            for o in outcomes]


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list) and v and all(isinstance(x, float) for x in v):
        return [_json_value(x) for x in v]
    if isinstance(v, list):  # Action / source values are single digits: '0022...' per episode
        return ''.join(map(str, v))
    return v


_BRAKES = (int(Action.STOP), int(Action.EMERGENCY_BRAKE))


def decision_report(outcomes: Sequence[EpisodeOutcome]) -> dict:
    """Where the published decision is not the model's, and what the safety layer cost.

    - phantom emergency brakes: final EMERGENCY_BRAKE where neither the model nor the expert
      calls one; phantom stops: final STOP where neither calls STOP or EMERGENCY_BRAKE; both
      overall and per condition (frames, phantom frames);
    - final != model: frames per `DecisionSource` label of the final decision (override,
      fallback, dwell, radar-out caution; 'model' would be a difference nobody accounts for);
    - the true time to collision at each episode's first emergency brake (per scenario).
    Drivers without model decisions or sources (the expert) are skipped.
    """
    frames, phantom_eb, phantom_stop = Counter(), Counter(), Counter()
    differs: Counter = Counter()
    first_eb: dict[str, list[float]] = {}
    for o in outcomes:
        if not o.model_actions or not o.sources:
            continue
        final, model, expert = (np.asarray(v) for v in (o.actions, o.model_actions,
                                                         o.expert_actions))
        eb = int(Action.EMERGENCY_BRAKE)
        frames[o.condition] += len(final)
        phantom_eb[o.condition] += int(np.sum((final == eb) & (model != eb) & (expert != eb)))
        phantom_stop[o.condition] += int(np.sum((final == int(Action.STOP))
                                                & ~np.isin(model, _BRAKES)
                                                & ~np.isin(expert, _BRAKES)))
        for i in np.flatnonzero(final != model):
            differs[DecisionSource(o.sources[i]).label] += 1
        hits = np.flatnonzero(final == eb)
        if len(hits) and o.ttcs:
            first_eb.setdefault(o.scenario, []).append(float(o.ttcs[hits[0]]))
    total = sum(frames.values())
    return {
        'frames': total,
        'phantom_emergency_brake_frames': sum(phantom_eb.values()),
        'phantom_stop_frames': sum(phantom_stop.values()),
        'by_condition': {c: {'frames': frames[c], 'phantom_emergency_brake': phantom_eb[c],
                             'phantom_stop': phantom_stop[c]} for c in sorted(frames)},
        'final_differs_by_source': dict(differs.most_common()),
        'first_emergency_brake_ttc_s': first_eb,
    }
