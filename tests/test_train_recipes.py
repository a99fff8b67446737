"""The paper's editor-training recipe: stretched pairs, flips on both images, epochs, gradient accumulation."""

import json
import math
import os

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from u2s_datasets import columns as C
from u2s_datasets.cli import main as cli
from u2s_datasets.train import build_pairs, save_pairs
from u2s_datasets.train.data import PairsDataset, flip_pairs
from u2s_datasets.train.finetune import FinetuneConfig
from u2s_datasets.train.loop import LOG_FILE, make_accelerator, train_loop
from u2s_datasets.train.pairs import SOURCE_IMAGE, TARGET_IMAGE
from u2s_datasets.train.recipes import recipe_settings

from train_data import folders, one_thread  # noqa: F401  (one_thread: autouse)

RED, BLUE, GREY = (255, 0, 0), (0, 0, 255), (128, 128, 128)


def _banded(width=64, height=32, band=16) -> Image.Image:
    """Red left band, blue right band, grey between: what a centre crop cuts and a stretch keeps."""
    array = np.full((height, width, 3), GREY, dtype=np.uint8)
    array[:, :band] = RED
    array[:, -band:] = BLUE
    return Image.fromarray(array)


def _pairs(sources, targets) -> datasets.Dataset:
    return datasets.Dataset.from_dict({SOURCE_IMAGE: sources, TARGET_IMAGE: targets,
                                       C.EDIT_INSTRUCTION: ["edit"] * len(sources), C.PUBLIC_CAPTION: ["a scene"] * len(sources)},
                                      features=datasets.Features({SOURCE_IMAGE: datasets.Image(), TARGET_IMAGE: datasets.Image(),
                                                                  C.EDIT_INSTRUCTION: datasets.Value("string"),
                                                                  C.PUBLIC_CAPTION: datasets.Value("string")}))


def _pixels(tensor) -> np.ndarray:
    return ((tensor.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(int)


def test_stretch_keeps_the_whole_image_and_not_its_aspect():
    image = _banded()
    stretched = _pixels(PairsDataset(_pairs([image], [image]), None, 32, resize="stretch")[0]["source"])
    assert stretched.shape == (32, 32, 3)
    # 64 x 32 -> 32 x 32: the 16-pixel bands become 8 pixels wide, their height stays.
    assert (stretched[:, :7] == RED).all() and (stretched[:, -7:] == BLUE).all()
    assert (np.abs(stretched[:, 9:23] - GREY) <= 2).all()
    cropped = _pixels(PairsDataset(_pairs([image], [image]), None, 32, resize="crop")[0]["source"])
    assert (cropped == GREY).all(), "the centre crop of the same image loses both bands"
    with pytest.raises(ValueError, match="resize='pad'"):
        PairsDataset(_pairs([image], [image]), None, 32, resize="pad")


def test_flip_pairs_mirrors_source_and_target_together():
    source = torch.linspace(-1, 1, 8).expand(64, 3, 4, 8).clone()  # brighter to the right
    target = -source  # brighter to the left
    batch = {"source": source, "target": target}
    flipped = flip_pairs(batch, 0.5, torch.Generator().manual_seed(0))
    mirrored = flipped["source"][:, 0, 0, 0] > 0
    assert torch.equal(flipped["source"][mirrored], source[mirrored].flip(-1))
    assert torch.equal(flipped["target"][mirrored], target[mirrored].flip(-1)), "the target flips with its source"
    assert torch.equal(flipped["source"][~mirrored], source[~mirrored]) and torch.equal(flipped["target"][~mirrored], target[~mirrored])
    assert 16 <= int(mirrored.sum()) <= 48
    again = flip_pairs(batch, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(again["source"], flipped["source"]), "flips come from the run's generator: same seed, same flips"
    assert flip_pairs(batch, 0.0, torch.Generator()) is batch


class _Recorder(torch.nn.Module):
    """One weight, and a record of every training batch it was given."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def loss(self, model, batch, generator):
        self.seen.append({k: batch[k].detach().cpu().clone() for k in ("source", "target")})
        return ((model.weight - batch["source"].mean()) ** 2).sum()


def test_loop_counts_epochs_accumulates_and_shows_each_pair_both_ways(tmp_path):
    # Ten pairs, each source a banded image with its own grey level; the target is the source upside down.
    sources = []
    for i in range(10):
        array = np.asarray(_banded(32, 32, 8)).copy()
        array[:, 8:24] = 10 * i
        sources.append(Image.fromarray(array))
    targets = [Image.fromarray(np.asarray(s)[::-1].copy()) for s in sources]
    config = FinetuneConfig(base_model="unused", resolution=32, resize="stretch", flip_prob=0.5, batch_size=2,
                            gradient_accumulation=2, epochs=3, checkpoint_every=1000, ema=False, cpu=True)
    accelerator, _ = make_accelerator(config, str(tmp_path))
    recorder, optimizers = _Recorder(), []

    def adamw(params):
        optimizers.append(torch.optim.AdamW(params, lr=0.1))
        return optimizers[-1]

    train_loop(accelerator, recorder, [recorder.weight], recorder.loss, PairsDataset(_pairs(sources, targets), None, 32, "stretch"),
               config, str(tmp_path), resume=False, optimizer=adamw)
    with open(tmp_path / LOG_FILE) as f:
        log = [json.loads(line) for line in f]
    steps_per_epoch = math.ceil(10 / (2 * 2))  # 5 batches an epoch: windows of 2, 2 and 1
    assert [r["step"] for r in log] == list(range(1, 3 * steps_per_epoch + 1))
    assert [r["batches"] for r in log] == [2, 2, 1] * 3 and [r["epoch"] for r in log] == [0] * 3 + [1] * 3 + [2] * 3
    assert optimizers[0].state[recorder.weight]["step"].item() == 9, "the optimizer stepped once per window"

    orientation = {}  # pair -> orientations seen
    for batch in recorder.seen:
        for source, target in zip(batch["source"], batch["target"]):
            level = int(round((source[0, 16, 16].item() + 1) * 127.5 / 10))
            mirrored = source[0, 0, 0].item() < 0  # red (R = 1) on the left unless mirrored
            expected = torch.from_numpy(np.asarray(targets[level], dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
            assert torch.allclose(target, expected.flip(-1) if mirrored else expected, atol=1e-6), "target flipped with source"
            orientation.setdefault(level, set()).add(mirrored)
    assert len(orientation) == 10 and sum(len(o) == 2 for o in orientation.values()) >= 5, orientation


def test_paper_recipe_from_the_command_line(tmp_path):
    paths = folders()
    pairs, stats = build_pairs(datasets.load_from_disk(paths["anonymized"]), clip_model=None, split=(1.0, 0.0, 0.0), with_stats=True)
    pairs_dir = str(tmp_path / "pairs")
    save_pairs(pairs, pairs_dir, stats)
    out = str(tmp_path / "paper")
    # The paper's recipe, at a size that runs here: the options given override the recipe's values.
    assert cli(["finetune", pairs_dir, out, "--base-model", paths["ip2p"], "--recipe", "paper", "--resolution", "32",
                "--batch-size", "4", "--gradient-accumulation", "2", "--epochs", "1", "--clip-model", "none", "--cpu"]) == 0
    with open(os.path.join(out, "training_config.json")) as f:
        config = json.load(f)
    assert config["recipe"] == "paper" and config["resize"] == "stretch" and config["flip_prob"] == 0.5
    assert config["learning_rate"] == 1e-5 and config["lr_scheduler"] == "constant" and config["max_grad_norm"] == 0.0
    assert config["epochs"] == 1 and config["batch_size"] == 4 and config["gradient_accumulation"] == 2
    with open(os.path.join(out, LOG_FILE)) as f:
        log = [json.loads(line) for line in f]
    n = len(pairs["train"])
    assert len(log) == math.ceil(n / 8) and sum(r["batches"] for r in log) == math.ceil(n / 4)
    assert "- recipe: paper" in open(os.path.join(out, "README.md")).read()
    with pytest.raises(ValueError, match="recipe='fast'"):
        recipe_settings("ip2p", "fast", {})
