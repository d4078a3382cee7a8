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
from mm_fusion_ros.evaluation.metrics import classification_report, phantom_brake_frames
from mm_fusion_ros.pipeline import FusionPipeline, PipelineConfig
from mm_fusion_ros.safety import SafetyConfig, SafetyLayer
from mm_fusion_ros.sensors.radar_preprocess import preprocess_radar
from mm_fusion_ros.sim.camera import CameraConfig, CameraModel
from mm_fusion_ros.sim.metrics import EpisodeMetrics
from mm_fusion_ros.sim.rig import RIGS, RigSensors, RigVariant
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
    rig: RigVariant | None = None,
) -> EpisodeOutcome:
    """One closed-loop episode; the policy's decisions move the ego.

    A policy with a `model_decision` attribute (`ModelPolicy`) also has its model's own
    decisions recorded. With a `rig` other than the training one, the simulator renders that
    rig's sensors (`sim.rig.RigSensors`, as `mm-fusion record --rig` does) and the policy sees
    its frames (`evaluation.rig_policy.RigPolicy` turns them back into the model's).
    """
    options = SimOptions(render_camera=render, render_radar=render)
    sensors = None
    if rig is not None and not rig.is_training:
        options = rig.sim_options(options)
        sensors = RigSensors(rig)
    sim = Simulator(config, options, camera)
    frame = sim.reset()
    expert, decided, model, sources, ttcs = [], [], [], [], []
    while not frame.done:
        decision = policy(frame if sensors is None else sensors.frame(frame))
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
        n_eb, n_stop = phantom_brake_frames(final, model, expert)
        phantom_eb[o.condition] += n_eb
        phantom_stop[o.condition] += n_stop
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


# -- episodes in bulk: serial or as Ray actors -------------------------------------------------
class EpisodeRunner:
    """Drives episodes for `mm-fusion closed-loop`; one per process (the serial loop, a Ray actor).

    Holds the predictor (loaded and warmed up once) and the camera the model was trained on
    (with a `rig` other than the training one: the camera that renders that rig's view).
    Every episode starts from a fresh `ModelPolicy` and a simulator seeded by its scenario
    config, so an episode's outcome does not depend on which runner drove it or after what:
    the Ray fan-out returns what the serial loop does.
    """

    def __init__(
        self,
        checkpoint: str | None,
        num_threads: int = 1,
        pipeline_config: PipelineConfig | None = None,
        safety_config: SafetyConfig | None = None,
        with_model: bool = True,
        rig: str = 'training',
    ) -> None:
        self.pipeline_config = pipeline_config
        self.safety_config = safety_config
        self.rig = RIGS[rig]
        self.predictor = None
        if with_model:
            from mm_fusion_ros.model.predictor import FusionPredictor
            from mm_fusion_ros.paths import resolve_checkpoint

            self.predictor = FusionPredictor.from_checkpoint(
                resolve_checkpoint(checkpoint), device='cpu', num_threads=num_threads)
            self.predictor.warmup(('fused', 'camera', 'radar'))
        # The camera the model was trained on (twice its view with a fovea).
        self.camera = CameraModel(CameraConfig() if self.predictor is None
                                  else CameraConfig.for_view(self.predictor.config))
        self.rig_camera = None if self.rig.is_training else CameraModel(
            self.rig.render_camera())

    def run(self, driver: str, config: ScenarioConfig) -> EpisodeOutcome:
        """One episode: driver 'expert', or a modality of the model ('fused', ...)."""
        if driver == 'expert':
            from mm_fusion_ros.sim.simulator import expert_policy

            return drive(config, expert_policy, self.camera, render=False)
        if self.predictor is None:
            raise ValueError(f'driver {driver!r} needs the model: runner built without it')
        if self.rig_camera is not None:
            return self._run_rig(driver, config)
        policy = ModelPolicy(self.predictor, driver, self.pipeline_config, self.safety_config)
        return drive(config, policy, self.camera)

    def _run_rig(self, driver: str, config: ScenarioConfig) -> EpisodeOutcome:
        """A model driver on `self.rig`: its sensors rendered, turned back by its geometry."""
        from mm_fusion_ros.evaluation.rig_policy import RigInputs, RigPolicy, rig_safety_config

        safety = rig_safety_config(self.rig, self.safety_config or SafetyConfig())
        policy = ModelPolicy(self.predictor, driver, self.pipeline_config, safety)
        inputs = RigInputs(self.rig, CameraConfig.for_view(self.predictor.config))
        return drive(config, RigPolicy(policy, inputs), self.rig_camera, rig=self.rig)


def run_episodes_ray(
    jobs: Sequence[tuple[str, ScenarioConfig]],
    runner_args: dict,
    workers: int,
    on_result: Callable[[int, EpisodeOutcome], None] | None = None,
) -> list[EpisodeOutcome]:
    """(driver, config) jobs on `workers` Ray actors (`EpisodeRunner`), results in job order.

    Ray must be initialised (`ray_local.init_ray`). Each actor loads the model once and takes
    the next job when it is done with one; `on_result(index, outcome)` sees them in job order.
    """
    import ray
    from ray.util import ActorPool

    actor = ray.remote(num_cpus=1)(EpisodeRunner)
    pool = ActorPool([actor.remote(**runner_args) for _ in range(max(1, workers))])
    outcomes = []
    for i, outcome in enumerate(pool.map(lambda a, job: a.run.remote(*job), list(jobs))):
        outcomes.append(outcome)
        if on_result is not None:
            on_result(i, outcome)
    return outcomes


# -- rates with confidence intervals ------------------------------------------------------------
def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (no scipy)."""
    if k >= n or p <= 0.0:
        return 1.0
    if k < 0 or p >= 1.0:
        return 0.0
    j = np.arange(1, k + 1, dtype=float)
    log_choose = np.concatenate([[0.0], np.cumsum(np.log((n - j + 1) / j))])
    i = np.arange(k + 1, dtype=float)
    terms = log_choose + i * math.log(p) + (n - i) * math.log1p(-p)
    top = terms.max()
    return float(min(1.0, math.exp(top) * np.exp(terms - top).sum()))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval of a binomial rate k / n.

    For k = 0 the lower bound is 0 and the upper bound 1 - (alpha / 2)^(1 / n): 0 events in
    1,000 trials bound the rate at 0.37 %.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f'{k} events in {n} trials')
    tail = (1.0 - confidence) / 2.0

    def solve(f) -> float:  # f decreasing in p: the p where f(p) = tail, by bisection
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if f(mid) > tail else (lo, mid)
        return 0.5 * (lo + hi)

    low = 0.0 if k == 0 else 1.0 - solve(lambda p: 1.0 - _binomial_cdf(k - 1, n, 1.0 - p))
    high = 1.0 if k == n else solve(lambda p: _binomial_cdf(k, n, p))
    return low, high


def rate(events: int, trials: int, confidence: float = 0.95) -> dict:
    """{events, trials, rate, low, high}: the rate with its exact confidence interval."""
    low, high = clopper_pearson(events, trials, confidence)
    return {'events': int(events), 'trials': int(trials),
            'rate': events / trials if trials else 0.0, 'low': low, 'high': high}


def rate_text(r: dict) -> str:
    """'0/1000 (<= 0.37 %)' or '3/1000 = 0.30 % [0.06, 0.87]' (percent, 95 % interval)."""
    if r['events'] == 0:
        return f"0/{r['trials']} (<= {100 * r['high']:.2f} %)"
    return (f"{r['events']}/{r['trials']} = {100 * r['rate']:.2f} % "
            f"[{100 * r['low']:.2f}, {100 * r['high']:.2f}]")


def driver_rates(outcomes: Sequence[EpisodeOutcome]) -> dict[str, dict]:
    """Per-episode and per-frame rates of a driver, each with its 95 % exact interval.

    Episode rates (collision, red-light violation, an episode with any phantom emergency
    brake) treat episodes as independent trials, which they are. Frame rates treat frames as
    independent too, which they are not (a phantom brake lasts several frames): their
    interval is too narrow and reads as a lower bound on the uncertainty.
    """
    n = len(outcomes)
    out = {
        'collision_episodes': rate(sum(o.collision for o in outcomes), n),
        'red_light_episodes': rate(sum(o.red_light_violation for o in outcomes), n),
    }
    scored = [o for o in outcomes if o.model_actions and o.sources]
    if not scored:
        return out
    report = decision_report(scored)
    frames = report['frames']
    clutter = report['by_condition'].get('radar_clutter', {'frames': 0,
                                                           'phantom_emergency_brake': 0})
    eb = int(Action.EMERGENCY_BRAKE)
    phantom_episodes = sum(
        bool(np.any((np.asarray(o.actions) == eb) & (np.asarray(o.model_actions) != eb)
                    & (np.asarray(o.expert_actions) != eb))) for o in scored)
    out.update({
        'phantom_eb_episodes': rate(phantom_episodes, len(scored)),
        'phantom_eb_frames': rate(report['phantom_emergency_brake_frames'], frames),
        'phantom_eb_clutter_frames': rate(clutter['phantom_emergency_brake'], clutter['frames']),
        'phantom_stop_frames': rate(report['phantom_stop_frames'], frames),
    })
    return out


def model_macro_f1(outcomes: Sequence[EpisodeOutcome]) -> float:
    """On-policy macro-F1 of the model's own decisions against the expert's labels (nan: none)."""
    scored = [o for o in outcomes if o.model_actions]
    if not scored:
        return math.nan
    y_true = np.concatenate([np.asarray(o.expert_actions, np.int64) for o in scored])
    y_pred = np.concatenate([np.asarray(o.model_actions, np.int64) for o in scored])
    return classification_report(y_true, y_pred).macro_f1
