"""The model card of a fine-tuned editor: where it came from, on what data, with which settings."""

import dataclasses
import importlib.metadata
import os

import yaml

from .. import __version__

EDITORS = {"InstructPix2Pix": "ip2p", "FLUX.1 Kontext": "flux-kontext", "FLUX.1 OminiControl": "flux-omini"}
PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "peft", "datasets")


def package_versions() -> dict:
    versions = {"u2s-datasets": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_model_card(output_dir: str, config, pair_stats: dict, train, precision: str, processes: int, architecture: str) -> str:
    """``README.md`` in ``output_dir``: base model and revision, data fingerprint and counts, filter, split, every setting."""
    settings = dataclasses.asdict(config)
    local_base = os.path.isdir(config.base_model)
    header = {
        "library_name": "diffusers",
        "pipeline_tag": "image-to-image",
        "tags": [architecture.lower().replace(".", ""), "unsafe2safe", "privacy", f"dual-prompt-{config.dual_prompt}"]
        + (["lora"] if config.lora else []),
    }
    if not local_base:
        header["base_model"] = config.base_model
    data = {
        "training pairs": len(train),
        "data fingerprint": getattr(train, "_fingerprint", None),
        **{k: v for k, v in pair_stats.items()},
    }
    lines = [
        "---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
        "# Unsafe2Safe editor", "",
        f"An {architecture} editor fine-tuned from `{config.base_model}` (revision `{config.base_revision or ('local folder' if local_base else 'main')}`) "
        "on Unsafe2Safe triplets: source image, edit instruction, public caption, privacy-safe target.",
        f"Dual prompts: `{config.dual_prompt}`" + (" (SafeAttention)" if config.dual_prompt == "paper" else "") + "; "
        + (f"LoRA rank {config.lora}, " + ("on the condition branch (omini_lora/)." if EDITORS[architecture] == "flux-omini"
                                           else "merged into the denoiser.") if config.lora else "full UNet fine-tuning."), "",
        "```python", "from u2s_datasets import Unsafe2Safe", f'safe = ds.map(Unsafe2Safe(preset="paper", editor={EDITORS[architecture]!r}, editor_model="<this folder>"), batched=True)',
        "```", "", "## Data", "",
    ]
    lines += [f"- {k}: {v}" for k, v in data.items()]
    lines += ["", "## Training settings", "", f"- processes: {processes}", f"- mixed precision: {precision}"]
    lines += [f"- {k}: {v}" for k, v in settings.items()]
    lines += ["", "## Software", ""] + [f"- {k}: {v}" for k, v in package_versions().items()]
    path = os.path.join(output_dir, "README.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
