"""index.html of a bag evaluation renders as a page a person reads (headless Chromium).

The report is written from hand-built per-frame arrays (no model, no bag): two bags, one with
rejected camera frames and fallbacks, with camera thumbnails. Chromium takes a screenshot and
the test checks that it is not blank: it varies, has many colours, and shows the rejects block
in its own colour above the decision tables. Skipped where Chromium is not installed
(`tools/check_system_deps.sh` installs Debian's `chromium` when run as root).
"""

import shutil
import subprocess

import numpy as np
import pytest

from mm_fusion_ros.actions import Action
from mm_fusion_ros.decision import DecisionSource
from mm_fusion_ros.evaluation.metrics import REJECT_REASONS, reason_mask
from mm_fusion_ros.evaluation.replay import empty_frames
from mm_fusion_ros.evaluation.replay_report import (
    Thumbnail,
    compute_metrics,
    write_report,
)

CHROMIUM = next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome')
                 if shutil.which(n)), None)
ATTENTION_BG = (255, 246, 236)  # .attention background: the rejects block


def _frames(n: int, bag: int, broken: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(bag)
    f = empty_frames(n)
    f['bag'][:] = bag
    f['stamp_ns'][:] = 10**18 + np.arange(n) * 50_000_000
    f['truth_action'][:] = np.where(np.arange(n) < n // 2, Action.CRUISE, Action.STOP)
    f['model_action'][:] = f['truth_action']
    f['model_action'][rng.random(n) < 0.1] = Action.FOLLOW
    f['action'][:] = f['model_action']
    f['source'][:] = DecisionSource.MODEL
    f['degraded'][:] = 0
    f['reason'][:] = 0
    f['latency_s'][:] = rng.uniform(0.004, 0.012, n)
    for i in broken:
        f['model_action'][i] = -1
        f['action'][i] = Action.STOP
        f['source'][i] = DecisionSource.FALLBACK
        f['degraded'][i] = 1
        f['reason'][i] = reason_mask('camera frame rejected: bad bytes')
        f['reject'][i] = REJECT_REASONS.index('corrupt_compressed')
    return f


def _thumbs(frames: dict[str, np.ndarray]) -> list[Thumbnail]:
    from test.fuzz_cases import sim_frame

    rgb = sim_frame()
    radar = np.array([[20.0, 0.0, 0.5, -8.0, 10.0], [35.0, -2.0, 0.3, 0.0, 5.0]], np.float32)
    return [Thumbnail(int(s), rgb, radar) for s in frames['stamp_ns'][::20]]


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp('html')
    parts = [_frames(80, 0, (10, 11, 40)), _frames(60, 1, ())]
    frames = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    bags = [{'path': f'/bags/ep{i}', 'topics': 'sim', 'mode': 'offline',
             'frames': len(p['stamp_ns']), 'duration_s': len(p['stamp_ns']) / 20,
             'counts': {'camera_frames': len(p['stamp_ns']), 'radar_frames': len(p['stamp_ns']),
                        'image_rejected': 3 if i == 0 else 0, 'radar_rejected': 0,
                        'odometry_rejected': 0, 'fallback': 3 if i == 0 else 0,
                        'degraded': 3 if i == 0 else 0},
             'rejects': {'image': {'corrupt_compressed': 3}} if i == 0 else {},
             'thumbnails': _thumbs(p)} for i, p in enumerate(parts)]
    write_report(out, compute_metrics(frames, 7.0), frames, bags, title='html test')
    return out


def test_index_is_html_tables_with_thumbnails(report):
    page = (report / 'index.html').read_text()
    assert '<pre>' not in page and page.count('<table') >= 6
    assert page.index('class="attention"') < page.index('Model vs expert')
    assert len(list((report / 'bags').glob('bag00[01]_thumb*.png'))) == 4 + 3
    assert 'corrupt_compressed: 3' in page


@pytest.mark.skipif(CHROMIUM is None, reason='headless Chromium is not installed (Debian: '
                    'apt-get install chromium; tools/check_system_deps.sh does it as root)')
def test_index_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image

    shot = tmp_path / 'shot.png'
    cmd = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
           '--no-first-run', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', '--hide-scrollbars', f'--user-data-dir={tmp_path / "profile"}',
           f'--screenshot={shot}', '--window-size=1200,1800',
           (report / 'index.html').as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert('RGB'))
    assert img.shape == (1800, 1200, 3)
    assert img.std() > 20  # not a blank page
    colours = np.unique(img.reshape(-1, 3) // 16, axis=0)
    assert len(colours) > 100  # text, tables, shaded cells, plots and camera thumbnails
    top = img[:500].reshape(-1, 3)
    assert (np.abs(top.astype(int) - ATTENTION_BG).max(axis=1) <= 2).mean() > 0.05
