"""LPIPS (VGG) without torchvision: VGG16's feature layers written out in torch.

The backbone is torchvision's VGG16 layer for layer (so its state dict, ``features.<i>.*``,
loads as it is: ``timm/vgg16.tv_in1k`` on the Hub, or a local ``.safetensors``/``.pth``); the
five linear heads calibrated on human judgements ship inside the ``lpips`` wheel
(``lpips/weights/v0.1/vgg.pth``, BSD-2-Clause), which is read as a file and never imported
(its package imports torchvision). The distance is LPIPS v0.1 as published: inputs in [-1, 1],
the scaling layer, channel-normalised features, squared differences, 1x1 heads, spatial mean, sum.
"""

import glob
import importlib.util
import os
from typing import Optional

import torch
from torch import nn

VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
TAPS = (4, 9, 16, 23, 30)  # feature indices ending relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
CHANNELS = (64, 128, 256, 512, 512)
DEFAULT_BACKBONE = "timm/vgg16.tv_in1k"


def vgg16_features() -> nn.Sequential:
    layers, channels = [], 3
    for item in VGG16_LAYERS:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers)


def lpips_heads_file() -> str:
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the LPIPS linear heads ship in the 'lpips' wheel: pip install --no-deps lpips==0.1.4")
    return os.path.join(list(spec.submodule_search_locations)[0], "weights", "v0.1", "vgg.pth")


def _backbone_state(source: str, revision: Optional[str], local_files_only: bool) -> dict:
    if os.path.isdir(source):
        files = sorted(glob.glob(os.path.join(source, "*.safetensors"))) or sorted(glob.glob(os.path.join(source, "*.pth")))
        if not files:
            raise FileNotFoundError(f"no .safetensors or .pth weights of VGG16 in {source!r}")
        source = files[0]
    elif not os.path.isfile(source):
        from huggingface_hub import hf_hub_download

        source = hf_hub_download(source, "model.safetensors", revision=revision, local_files_only=local_files_only)
    if source.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(source)
    else:
        state = torch.load(source, map_location="cpu", weights_only=True)
    return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}


class LPIPSVGG(nn.Module):
    """LPIPS v0.1 with the VGG16 backbone: ``forward(a, b)`` on RGB tensors in [0, 1], one distance per pair."""

    def __init__(self):
        super().__init__()
        self.features = vgg16_features()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, backbone: str = DEFAULT_BACKBONE, revision: Optional[str] = None,
                        heads: Optional[str] = None, local_files_only: bool = False) -> "LPIPSVGG":
        model = cls()
        model.features.load_state_dict(_backbone_state(backbone, revision, local_files_only))
        lins = torch.load(heads or lpips_heads_file(), map_location="cpu", weights_only=True)
        for i, head in enumerate(model.heads):
            head.weight.copy_(lins[f"lin{i}.model.1.weight"])
        model.backbone_id, model.backbone_revision = backbone, revision
        return model.eval()

    def taps(self, x: torch.Tensor) -> list:
        outputs, start = [], 0
        for end in TAPS:
            x = self.features[start:end](x)
            outputs.append(x)
            start = end
        return outputs

    @torch.inference_mode()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = (2 * a - 1 - self.shift) / self.scale, (2 * b - 1 - self.shift) / self.scale
        total = 0
        for head, fa, fb in zip(self.heads, self.taps(a), self.taps(b)):
            fa = fa / (fa.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fb = fb / (fb.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + head((fa - fb) ** 2).mean(dim=(2, 3))
        return total.view(-1)
