"""The closed loop: scenario -> (camera, radar, expert label) frames -> decision -> ego motion.

The world has no randomness after it is built; camera and radar noise come from their own
generators seeded by the scenario, so an episode is reproducible and switching a sensor off
(for fast closed-loop checks) does not change what the world does.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
import math

import numpy as np

from mm_fusion_ros.actions import Action
from mm_fusion_ros.sim.camera import CameraConfig, CameraModel
from mm_fusion_ros.sim.conditions import CONDITIONS
from mm_fusion_ros.sim.dynamics import (
    Command,
    DecisionLike,
    DynamicsConfig,
    EgoDynamics,
    EgoState,
)
from mm_fusion_ros.sim.expert import Expert, ExpertConfig, ExpertLabel
from mm_fusion_ros.sim.metrics import EpisodeMetrics, MetricsRecorder, boxes_overlap, crossed_red
from mm_fusion_ros.sim.radar import RadarConfig, RadarModel
from mm_fusion_ros.sim.scenarios import SCENARIO_TYPES, ScenarioConfig, build_scenario
from mm_fusion_ros.sim.world import LightState, World


@dataclass(frozen=True)
class SimOptions:
    render_camera: bool = True
    render_radar: bool = True
    stop_on_collision: bool = True
    radar_jitter: float = 0.001  # [s] per-frame jitter on top of the episode's radar offset
    # [Hz] radar frame rate; 0: one radar frame per camera frame (the training rig). Otherwise
    # a camera period holds the radar tick that falls into it (if any), stamped at the tick.
    radar_rate: float = 0.0
    camera: CameraConfig = field(default_factory=CameraConfig)
    radar: RadarConfig = field(default_factory=RadarConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)


@dataclass
class SimFrame:
    """Everything observed and known at one camera stamp."""

    index: int
    stamp: float  # [s] camera stamp, episode time
    rgb: np.ndarray | None  # (H, W, 3) uint8, None when the camera is off
    radar: np.ndarray | None  # (N, 5|7) float32 canonical features; None: frame dropped/off
    radar_stamp: float  # [s] when the radar frame was (or would have been) taken
    label: ExpertLabel  # ground-truth expert decision for this frame
    ego: EgoState  # a copy
    light_state: LightState | None  # ground truth, None without a light
    collision: bool  # a collision happened in the step that led here
    done: bool


@dataclass
class EpisodeResult:
    config: ScenarioConfig
    frames: list[SimFrame]
    metrics: EpisodeMetrics


class Simulator:
    def __init__(
        self, config: ScenarioConfig, options: SimOptions | None = None,
        camera: CameraModel | None = None,
    ) -> None:
        """`camera` may be shared between simulators to reuse its precomputed backgrounds."""
        self.config = config
        self.options = options or SimOptions()
        self.camera = camera or CameraModel(self.options.camera)
        self.radar = RadarModel(self.options.radar)
        self.reset()

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the intrinsic matrix
        return self.camera.K

    @property
    def done(self) -> bool:
        return self._done

    @property
    def world(self) -> World:
        return self._world

    def reset(self) -> SimFrame:
        cfg, opt = self.config, self.options
        scenario = build_scenario(cfg)
        self._world = scenario.world
        self._ego = scenario.ego
        self._radar_offset = scenario.radar_offset
        self._dynamics = EgoDynamics(cfg.road, opt.dynamics)
        self._expert = Expert(scenario.desired_speed, opt.expert, opt.dynamics)
        seq = [int(cfg.seed), SCENARIO_TYPES.index(cfg.scenario),
               CONDITIONS.index(cfg.condition)]
        self._cam_rng = np.random.default_rng(seq + [1])
        self._radar_rng = np.random.default_rng(seq + [2])
        self._index = 0
        self._done = False
        self._ego_vy = 0.0
        self._metrics = MetricsRecorder(cfg.dt, self._ego.x)
        return self._observe(collision=False, red=False)

    def step(self, decision: DecisionLike) -> SimFrame:
        """Apply the decision for one period and return the next frame."""
        if self._done:
            raise RuntimeError('episode is over; call reset()')
        cfg, dyn = self.config, self.options.dynamics
        ego, world = self._ego, self._world
        front0 = ego.x + 0.5 * dyn.length
        y0 = ego.y
        light_state = world.light.state if world.light is not None else None
        self._dynamics.step(ego, decision, cfg.dt)
        self._ego_vy = (ego.y - y0) / cfg.dt
        front = ego.x + 0.5 * dyn.length
        world.step(cfg.dt, front)
        collision = any(
            boxes_overlap(ego.x, ego.y, dyn.length, dyn.width, a) for a in world.actors
        )
        red = world.light is not None and light_state is not None and crossed_red(
            front0, front, world.light.x_stop, light_state
        )
        self._index += 1
        return self._observe(collision, red)

    def _observe(self, collision: bool, red: bool) -> SimFrame:
        cfg, opt = self.config, self.options
        stamp = self._index * cfg.dt
        label = self._expert.label(self._world, self._ego)
        self._metrics.update(self._ego.x, self._ego.speed, self._ego.accel, label.ttc,
                             collision, red)
        end = stamp + 0.5 * cfg.dt >= cfg.duration
        self._done = end or (collision and opt.stop_on_collision)
        rgb = None
        if opt.render_camera:
            rgb = self.camera.render(self._world, self._ego, cfg.condition, self._cam_rng,
                                     episode_seed=cfg.seed)
        radar_stamp = stamp + self._radar_offset + opt.radar_jitter * (
            2.0 * self._radar_rng.random() - 1.0
        )
        radar = None
        render_radar = opt.render_radar
        if render_radar and opt.radar_rate > 0:
            period = 1.0 / opt.radar_rate
            tick = math.ceil((stamp - 0.5 * cfg.dt) / period - 1e-9) * period
            render_radar = tick < stamp + 0.5 * cfg.dt - 1e-9
            radar_stamp += tick - stamp
        if render_radar:
            radar = self.radar.detect(self._world, self._ego, self._radar_rng, cfg.condition,
                                      time_offset=radar_stamp - stamp, ego_vy=self._ego_vy)
        light = self._world.light
        return SimFrame(
            index=self._index, stamp=stamp, rgb=rgb, radar=radar, radar_stamp=radar_stamp,
            label=label, ego=replace(self._ego), light_state=light.state if light else None,
            collision=collision, done=self._done,
        )

    def metrics(self) -> EpisodeMetrics:
        return self._metrics.result()


Policy = Callable[[SimFrame], DecisionLike]


def expert_policy(frame: SimFrame) -> DecisionLike:
    """The baseline driver: act on the ground-truth label."""
    return frame.label


@dataclass(frozen=True)
class DrivingNoise:
    """A slowly varying offset on the expert's executed acceleration, for training data.

    A model trained only on the states the expert itself visits never sees the states its own
    errors lead to (braking late for a light, arriving fast behind a stopped car) and fails
    there. Executing the expert's decision with a perturbed acceleration (DART, Laskey et al.,
    2017) makes the data visit them; every label stays the expert's decision for the state
    actually reached. Emergency braking is executed unperturbed.

    An offset alone never produces the states a missed hazard leads to: a pedestrian on the
    road while the ego still drives at full speed. So the same episodes also react late: when
    the expert starts to brake (STOP or EMERGENCY_BRAKE after another action), the previous
    command is kept for a delay drawn from [0, `reaction_delay`] s. A model that misses the
    first frames of a hazard then still knows what to do in the states that follow (without
    these, the shipped model learned "fast means keep going", the inertia problem of
    behaviour cloning with a speed input, Codevilla et al., 2019).

    With `brake_pulse_rate` > 0 the ego also brakes for no reason the scene shows (another
    part of the stack intervening, a phantom emergency brake of the safety layer): pulses of
    2-8 m/s^2 lasting up to `brake_pulse_duration`, while the labels stay the expert's. On
    policy, a model that had only seen the expert brake for a cause went on calling STOP on a
    free road after a phantom brake: its own deceleration read as the cause (copycat).
    """

    sigma: float = 1.5  # [m/s^2] stationary std of the offset (Ornstein-Uhlenbeck)
    tau: float = 2.0  # [s] correlation time of the offset
    episode_share: float = 0.5  # share of episodes driven with the offset
    reaction_delay: float = 2.0  # [s] longest late reaction to a braking onset
    brake_pulse_rate: float = 0.0  # [1/s] unprompted brake pulses per second of driving
    brake_pulse_duration: float = 1.5  # [s] longest pulse

    def __post_init__(self) -> None:
        if self.sigma < 0 or self.tau <= 0 or not 0.0 <= self.episode_share <= 1.0 or \
                self.reaction_delay < 0 or self.brake_pulse_rate < 0 or \
                self.brake_pulse_duration <= 0:
            raise ValueError('need sigma >= 0, tau > 0, episode_share in [0, 1], '
                             'reaction_delay >= 0, brake_pulse_rate >= 0, '
                             'brake_pulse_duration > 0')


_BRAKING = (Action.STOP, Action.EMERGENCY_BRAKE)


class NoisyExpertPolicy:
    """The expert's decisions with `DrivingNoise` executed (seeded per episode)."""

    def __init__(self, noise: DrivingNoise, seed: int, dt: float) -> None:
        self._rng = np.random.default_rng([int(seed), 4])
        self.active = bool(self._rng.random() < noise.episode_share) and (
            noise.sigma > 0 or noise.reaction_delay > 0 or noise.brake_pulse_rate > 0)
        self._decay = float(np.exp(-dt / noise.tau))
        self._step_std = noise.sigma * float(np.sqrt(1.0 - self._decay ** 2))
        self.offset = noise.sigma * float(self._rng.standard_normal())
        self._dt = dt
        self._max_delay = noise.reaction_delay
        self._late = 0.0  # [s] left of the current late reaction
        self._previous: DecisionLike | None = None  # the expert's label one step ago
        self._command: DecisionLike | None = None  # the command executed one step ago
        self._pulse_rate, self._pulse_max = noise.brake_pulse_rate, noise.brake_pulse_duration
        self._pulse = 0.0  # [s] left of the current brake pulse
        self._pulse_decel = 0.0  # [m/s^2]

    def __call__(self, frame: SimFrame) -> DecisionLike:
        label = frame.label
        if not self.active:
            return label
        self.offset = self._decay * self.offset + self._step_std * self._rng.standard_normal()
        onset = label.action in _BRAKING and self._previous is not None and \
            self._previous.action not in _BRAKING
        self._previous = label
        if onset and self._command is not None:
            self._late = float(self._rng.uniform(0.0, self._max_delay))
        if self._late > 0.0:
            self._late -= self._dt
            return self._command  # still executing what it did before the hazard
        if label.action == Action.EMERGENCY_BRAKE:
            command: DecisionLike = label
        else:
            command = Command(label.action, label.target_acceleration + self.offset)
        self._command = command
        return self._brake_pulse(command)

    def _brake_pulse(self, command: DecisionLike) -> DecisionLike:
        """`command`, braking at least at the current pulse's deceleration while one runs."""
        if self._pulse_rate <= 0.0:  # no draws: episodes without pulses stay as they were
            return command
        if self._pulse <= 0.0 and self._rng.random() < self._pulse_rate * self._dt:
            self._pulse = float(self._rng.uniform(0.3, self._pulse_max))
            self._pulse_decel = float(self._rng.uniform(2.0, 8.0))
        if self._pulse <= 0.0:
            return command
        self._pulse -= self._dt
        return Command(command.action, min(command.target_acceleration, -self._pulse_decel))


def run_episode(
    config: ScenarioConfig, policy: Policy = expert_policy, options: SimOptions | None = None,
    keep_frames: bool = True, camera: CameraModel | None = None,
) -> EpisodeResult:
    """Drive one episode closed-loop with `policy` and score it."""
    sim = Simulator(config, options, camera)
    frame = sim.reset()
    frames = [frame] if keep_frames else []
    while not frame.done:
        frame = sim.step(policy(frame))
        if keep_frames:
            frames.append(frame)
    return EpisodeResult(config=config, frames=frames, metrics=sim.metrics())
