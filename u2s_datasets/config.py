"""Frozen settings per stage, named presets, and a stable config hash.

Every keyword of ``Unsafe2Safe(**overrides)`` is a field of exactly one section, so an
override lands in its stage without the caller naming the stage.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class InspectConfig:
    """Stage 1, inspection: which backend decides what is private."""

    stage1_backend: str = "detectors"  # "detectors" | "transformers" | "openai"
    # detectors backend (offline, weights ship with the packages)
    detect_faces: bool = True
    detect_text: bool = True
    face_threshold: float = 0.5
    text_threshold: float = 0.5
    detector_max_side: int = 1024  # images are scaled down to this longest side for detection
    read_text: bool = True  # OCR recognition of found text, so the private caption can quote it
    # Small, turned and inverse faces and text (docs/detection.md). Recall first: turning
    # these off gives the single scaled-down pass of earlier versions, several times faster.
    face_min_size: int = 16  # smallest face width (input pixels) to find: finer pyramid levels; 0: one pass at detector_max_side
    face_angles: tuple = (-45, 45)  # in-plane turns (degrees) also tried on the whole image and on weak faces
    face_proposal_threshold: float = 0.1  # weaker faces down to this score are checked again on a zoomed, turned crop
    detector_tile_size: int = 1024  # finer levels of large images are seen in tiles of this side (0: whole)
    detector_tile_overlap: int = 128  # pixels neighbouring tiles share (a face or line this big is never cut)
    text_min_side: int = 736  # smaller images are scaled up to this shorter side for text detection (0: never)
    text_inverse: bool = False  # a second text detection pass on the inverted image (PP-OCR finds light-on-dark text without it)
    text_orientations: bool = True  # read each line turned by 0/180 (90/270 when tall) and keep the best reading
    # model backends ("transformers", "openai"): one VLM answer per image
    vlm_model: Optional[str] = None  # hub id or local folder
    vlm_revision: Optional[str] = None
    max_new_tokens: int = 512
    vlm_box_format: str = "normalized_1000"  # how the VLM writes boxes: "normalized_1000" | "pixels" (of the image as sent)
    vlm_max_image_side: int = 1024  # images are scaled down to this longest side before the VLM sees them
    stage1_batch_size: int = 8  # conversations per generate() call (transformers backends)
    # openai-compatible endpoint (vLLM, SGLang, TGI, Ollama)
    openai_base_url: Optional[str] = None  # e.g. "http://localhost:8000/v1"
    openai_model: Optional[str] = None  # the VLM's name on the server; None: vlm_model
    openai_api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key
    openai_concurrency: int = 4
    openai_timeout: float = 120.0  # seconds per request
    openai_max_retries: int = 2  # retries after a timeout, connection error, 429 or 5xx


@dataclass(frozen=True)
class InstructConfig:
    """Stage 1, instruction: who writes the edit instruction."""

    instructor: str = "template"  # "template" | "llm" (the LM of stage1_backend) | "transformers" | "openai" | "same"
    llm_model: Optional[str] = None  # hub id or local folder (or the model's name on the endpoint)
    llm_revision: Optional[str] = None
    llm_base_url: Optional[str] = None  # openai instructor: None means openai_base_url
    instruct_max_new_tokens: int = 192


@dataclass(frozen=True)
class EditConfig:
    """Stage 2: which editor changes the private content, and where."""

    editor: str = "blur"  # "blur" | "pixelate" | "fill" | "inpaint" | model-backed editors
    editor_model: Optional[str] = None
    editor_revision: Optional[str] = None
    edit_scope: str = "regions"  # "regions": composite through the region mask; "global": keep the editor's whole output
    region_margin: float = 0.25  # regions grow by this fraction of their size before editing
    feather: int = 8  # width in pixels of the soft edge around each region
    blur_strength: float = 0.25  # gaussian sigma as a fraction of the region's shorter side
    pixel_blocks: int = 3  # pixelate: blocks along the region's shorter side (few: text and faces stay unreadable)
    fill_color: tuple = (128, 128, 128)
    seed: int = 0
    # diffusion editors (None: the editor's own default, see docs/stage2.md)
    num_inference_steps: Optional[int] = None
    guidance_scale: Optional[float] = None  # text guidance
    image_guidance_scale: float = 1.5  # ip2p: how closely the output follows the input image
    scheduler: Optional[str] = None  # a diffusers scheduler class name, e.g. "DDIMScheduler"; None keeps the model's
    edit_resolution: Optional[int] = None  # the longer side the editor works at (aspect kept, grid-rounded)
    edit_batch_size: int = 8  # images per pipeline call
    dual_prompt: Optional[bool] = None  # ip2p: None uses dual-prompt weights when the model ships them
    vae_tiling: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """How model-backed stages load and run (shared by every backend that loads weights)."""

    device: Optional[str] = None  # None: cuda:{rank % n} when CUDA is there, else cpu
    dtype: str = "auto"  # "auto": bf16 on CUDA, fp32 on CPU
    local_files_only: bool = False
    trust_remote_code: bool = False
    device_map: Optional[str] = None
    cpu_offload: bool = False
    torch_compile: bool = False  # compile the denoiser of diffusion editors (pays off on long runs)


@dataclass(frozen=True)
class OutputConfig:
    """What happens to rows, good and bad."""

    on_error: str = "redact"  # "redact" | "drop" | "raise"
    image_format: str = "auto"  # edited images: "auto" (JPEG stays JPEG, else PNG) | "png" (lossless) | "jpeg"
    jpeg_quality: int = 95
    max_image_pixels: int = 89_478_485  # Pillow's own decompression-bomb limit


SECTIONS = {"inspect": InspectConfig, "instruct": InstructConfig, "edit": EditConfig, "model": ModelConfig, "output": OutputConfig}
_CHOICES = {
    "stage1_backend": ("detectors", "transformers", "openai"),
    "vlm_box_format": ("normalized_1000", "pixels"),
    "edit_scope": ("regions", "global"),
    "on_error": ("redact", "drop", "raise"),
    "image_format": ("auto", "png", "jpeg"),
    "dtype": ("auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32"),
}


@dataclass(frozen=True)
class U2SConfig:
    preset: str = "local"
    inspect: InspectConfig = field(default_factory=InspectConfig)
    instruct: InstructConfig = field(default_factory=InstructConfig)
    edit: EditConfig = field(default_factory=EditConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def replace(self, **overrides) -> "U2SConfig":
        """A copy with keyword overrides routed to the section that owns each keyword."""
        per_section = {name: {} for name in SECTIONS}
        for key, value in overrides.items():
            owner = next((name for name, cls in SECTIONS.items() if key in _field_names(cls)), None)
            if owner is None:
                known = sorted(k for cls in SECTIONS.values() for k in _field_names(cls))
                raise TypeError(f"Unknown setting {key!r}. Known settings: {', '.join(known)}")
            if key in _CHOICES and value not in _CHOICES[key]:
                raise ValueError(f"{key}={value!r} is not one of {_CHOICES[key]}")
            if isinstance(value, list):
                value = tuple(value)
            per_section[owner][key] = value
        changes = {name: dataclasses.replace(getattr(self, name), **kw) for name, kw in per_section.items() if kw}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Stable across processes and machines: a digest of the sorted JSON of every setting."""
        payload = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _field_names(cls) -> set:
    return {f.name for f in dataclasses.fields(cls)}


PRESETS = {
    # Offline default: real face and text detectors, template captions, classical region editing.
    "local": U2SConfig(preset="local"),
    # The method of the paper: a VLM inspects, an LLM writes the instruction, a diffusion editor edits.
    # Revisions are pinned by field; "main" until a release fixes commit hashes (docs/stage1.md).
    "paper": U2SConfig(
        preset="paper",
        # Qwen2.5-VL writes boxes in pixels of the image it was shown, not 0-1000 (docs/stage1.md).
        inspect=InspectConfig(
            stage1_backend="transformers", vlm_model="Qwen/Qwen2.5-VL-7B-Instruct", vlm_revision="main", vlm_box_format="pixels"
        ),
        instruct=InstructConfig(instructor="llm", llm_model="Qwen/Qwen2.5-7B-Instruct", llm_revision="main"),
        # Regions the VLM boxes are edited region-true; images without boxes are edited whole, as in the paper.
        edit=EditConfig(editor="ip2p", editor_model="timbrooks/instruct-pix2pix"),
    ),
}


def resolve_config(preset: str = "local", **overrides) -> U2SConfig:
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[preset].replace(**overrides)
