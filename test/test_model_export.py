"""Export parity: ONNX (onnxruntime) and TorchScript match eager within tolerance."""

import numpy as np
import pytest
import torch

from mm_fusion_ros.model import (
    FusionModel,
    FusionModelConfig,
    export_onnx,
    export_torchscript,
    small_config,
)
from mm_fusion_ros.model.export import INPUT_NAMES, example_inputs

ort = pytest.importorskip('onnxruntime')


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return FusionModel(small_config()).eval()


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


@pytest.mark.parametrize('modality', ['fused', 'camera', 'radar'])
def test_onnx_matches_eager_dynamic_batch(model, tmp_path, modality):
    session = _session(export_onnx(model, tmp_path / f'{modality}.onnx', modality))
    names = [i.name for i in session.get_inputs()]  # a single-modality graph drops some
    assert names == [n for n in INPUT_NAMES if n in names] and 'frame_mask' in names
    for batch in (1, 3):
        args = example_inputs(model, batch_size=batch)
        args[3][0, :] = False if batch == 3 else args[3][0, :]  # one all-missing radar
        with torch.no_grad():
            ref = model(*args, modality=modality)
        feeds = {n: a.numpy() for n, a in zip(INPUT_NAMES, args, strict=True) if n in names}
        out = session.run(None, feeds)
        for got, want in zip(out, ref, strict=True):
            assert got.shape == tuple(want.shape)
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('temporal', ['transformer', 'gru'])
def test_onnx_default_config(tmp_path, temporal):
    torch.manual_seed(0)
    model = FusionModel(FusionModelConfig(temporal_encoder=temporal)).eval()
    session = _session(export_onnx(model, tmp_path / 'default.onnx'))
    args = example_inputs(model, batch_size=2)
    with torch.no_grad():
        ref = model(*args)
    out = session.run(None, {n: a.numpy() for n, a in zip(INPUT_NAMES, args, strict=True)})
    np.testing.assert_allclose(out[0], ref.logits.numpy(), rtol=1e-4, atol=1e-5)


def test_onnx_with_fovea_rows(tmp_path):
    torch.manual_seed(0)
    model = FusionModel(small_config(fovea_height=32)).eval()
    session = _session(export_onnx(model, tmp_path / 'fovea.onnx'))
    args = example_inputs(model, batch_size=2)
    assert args[0].shape[2] == 64 + 32
    with torch.no_grad():
        ref = model(*args)
    out = session.run(None, {n: a.numpy() for n, a in zip(INPUT_NAMES, args, strict=True)})
    np.testing.assert_allclose(out[0], ref.logits.numpy(), rtol=1e-4, atol=1e-5)


def test_torchscript_matches_eager(model, tmp_path):
    path = export_torchscript(model, tmp_path / 'model.ts')
    loaded = torch.jit.load(str(path))
    for batch in (1, 3):
        args = example_inputs(model, batch_size=batch)
        with torch.no_grad():
            ref = model(*args)
            out = loaded(*args)
        for got, want in zip(out, ref, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
