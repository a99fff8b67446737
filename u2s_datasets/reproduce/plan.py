"""What one reproduction runs with: the models of each role and the settings of each stage.

``paper_plan`` is the paper's protocol with its published models; ``tiny_plan`` is the same
protocol on tiny random models, with the few settings that make it finish in minutes on a CPU
(fewer diffusion steps, small images, a few optimizer steps). Both go through the same stages.
"""

from dataclasses import asdict, dataclass, field
from typing import Optional

PAPER_MODELS = {
    "vlm": "OpenGVLab/InternVL2_5-8B",  # stage 1: inspection and captions (the paper preset's)
    "llm": "Qwen/Qwen3-4B-Instruct-2507",  # stage 1: instructions
    "editor": "vinesmsuic/magicbrush-jul7",  # the zero-shot editor, and the base of the fine-tuned one
    "flowedit": "stabilityai/stable-diffusion-3-medium-diffusers",  # training targets
    "clip": "openai/clip-vit-large-patch14",  # the pair filter and the CLIP score
    "judge": "OpenGVLab/InternVL3_5-8B-HF",  # TextSim, race entropy, VLMScore
    "face_pack": None,  # InsightFace antelopev2 (non-commercial licence): a folder the user fetched
    "vgg": "timm/vgg16.tv_in1k",  # LPIPS
    "mae": "facebook/vit-mae-base",  # utility classifier
}


@dataclass
class Plan:
    models: dict
    tiny: bool = False
    device: Optional[str] = None
    stage1: dict = field(default_factory=dict)  # Unsafe2Safe settings over the paper preset, for every anonymization
    editing: dict = field(default_factory=dict)  # settings of the two InstructPix2Pix editors (zero-shot and fine-tuned)
    flowedit: dict = field(default_factory=dict)  # FlowEdit target settings over the paper's
    clip_threshold: float = 0.7  # the reference filter: clip_edit / clip_orig > 0.7
    pair_split: str = "95/5"  # the reference loader's cut of the SD editor's pairs
    finetune: dict = field(default_factory=dict)  # FinetuneConfig fields over recipe="paper"
    utility: dict = field(default_factory=dict)  # compute_utility options over recipe="paper"
    batch_size: int = 8  # rows per anonymization batch

    def to_dict(self) -> dict:
        return asdict(self)


def paper_plan(models: Optional[dict] = None, device: Optional[str] = None) -> Plan:
    chosen = {**PAPER_MODELS, **{k: v for k, v in (models or {}).items() if v}}
    if not chosen["face_pack"]:
        raise ValueError("the paper's FaceSim needs InsightFace's antelopev2 pack: give its folder with --face-pack "
                         "(scrfd_10g_bnkps.onnx and glintr100.onnx; non-commercial licence, fetch it yourself)")
    return Plan(models=chosen, device=device, stage1={"vlm_model": chosen["vlm"], "llm_model": chosen["llm"]})


def tiny_plan(models: dict) -> Plan:
    return Plan(
        models=models, tiny=True, device="cpu",
        # A random VLM cannot answer stage 1's questions: the offline detectors inspect, the template instructs.
        stage1={"stage1_backend": "detectors", "instructor": "template"},
        editing={"num_inference_steps": 2, "edit_resolution": 64},
        flowedit={"num_inference_steps": 4, "flowedit_n_max": 3, "edit_resolution": 64, "device": "cpu"},
        clip_threshold=-1e9,  # a random CLIP's ratios mean nothing: the filter runs and keeps every pair
        # A few optimizer steps on 32-px pairs; no EMA, whose 0.9999 decay would keep the base weights after so few.
        finetune={"resolution": 32, "batch_size": 2, "gradient_accumulation": 1, "epochs": None, "max_steps": 6,
                  "learning_rate": 5e-4, "ema": False, "cpu": True, "mixed_precision": "no", "checkpoint_every": 1000},
        utility={"epochs": 2, "batch_size": 4, "gradient_accumulation": 1},
        batch_size=4,
    )
