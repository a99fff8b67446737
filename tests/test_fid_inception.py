"""FID on the Inception-v3 of published FIDs, in plain torch: the weights file loads by path, strictly, and FID behaves."""

import numpy as np
import pytest
import torch
from photos import astronaut, chelsea, coffee

from u2s_datasets.evaluation.fid_inception import WEIGHTS_FILE, FidInceptionV3, load_fid_inception
from u2s_datasets.evaluation.quality import _uint8_batch, compute_quality

# The published pt_inception-2015-12-05-6726825d.pth (and torch-fidelity's copy of it): 566 tensors,
# 23,885,392 weights besides the BatchNorm counters. torch-fidelity builds the same network from
# torchvision, which this package never installs, so its figures stand here.
PUBLISHED_TENSORS, PUBLISHED_WEIGHTS = 566, 23_885_392


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """Random weights saved the way the published file is: a plain state dict in a .pth file."""
    torch.manual_seed(0)
    model = FidInceptionV3()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):  # signal-preserving, so features still tell images apart
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial statistics, so loading them matters
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("inception") / WEIGHTS_FILE
    torch.save(model.state_dict(), path)
    return str(path)


def test_network_has_the_published_files_layout(weights_file):
    state = torch.load(weights_file, weights_only=True)
    assert len(state) == PUBLISHED_TENSORS
    assert sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked")) == PUBLISHED_WEIGHTS
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3) and state["fc.weight"].shape == (1008, 2048)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    loaded = load_fid_inception(weights_file)
    for key, value in loaded.state_dict().items():  # every tensor came from the file
        torch.testing.assert_close(value.cpu(), state[key], rtol=0, atol=0)


def test_a_foreign_or_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs the FID Inception weights.*fid_inception_weights="):
        load_fid_inception(None)
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="is not the FID Inception-v3 state dict"):
        load_fid_inception(str(tmp_path / "other.pth"))
    with pytest.raises(FileNotFoundError, match=f"Pass the path of the downloaded {WEIGHTS_FILE}"):
        load_fid_inception(str(tmp_path / "missing.pth"), local_files_only=True)


def test_fid_is_zero_for_the_same_images(weights_file):
    from torchmetrics.image.fid import FrechetInceptionDistance

    real = _uint8_batch([coffee(), chelsea()])
    fid = FrechetInceptionDistance(feature=load_fid_inception(weights_file))
    fid.update(real, real=True)
    fid.update(real, real=False)
    assert abs(float(fid.compute())) < 1e-2  # 0 up to rounding of the matrix square root


def test_quality_metric_reads_inception_weights_by_path_and_tells_sets_apart(weights_file, tmp_path):
    from tiny_models import tiny_clip

    clip = tiny_clip(str(tmp_path / "clip"))
    originals, safes = [coffee(), chelsea()], [astronaut(), np.ascontiguousarray(chelsea()[::-1])]
    result = compute_quality(safes, originals, ["a cup of coffee", "a cat"], clip_model=clip,
                             fid_features="inception", fid_inception_weights=weights_file)
    assert result["fid"] > 1.0 and isinstance(result["kid_mean"], float)
    assert result["models"]["fid_features"] == "inception" and result["models"]["fid_inception_weights"] == weights_file
    with pytest.raises(ValueError, match="fid_features='incept' is not one of 'inception', 'clip'"):
        compute_quality([originals[0]], [originals[0]], ["x"], clip_model=clip, fid_features="incept")
