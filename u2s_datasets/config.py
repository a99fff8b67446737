"""Frozen settings per stage, named presets, and a stable config hash.

Every keyword of ``Unsafe2Safe(**overrides)`` is a field of exactly one section, so an
override lands in its stage without the caller naming the stage.
"""

import dataclasses
import difflib
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Optional, Union


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
    face_turned_min_size: int = 24  # smallest turned face width to find: turns on finer levels too; 0: whole image only
    face_proposal_threshold: float = 0.1  # weaker faces down to this score are checked again on a zoomed, turned crop
    face_turned_proposal_threshold: float = 0.03  # small finds of turned searches down to this score are checked too
    face_small_proposal_threshold: float = 0.05  # small finds of the finer upright levels down to this score are checked too
    detector_tile_size: int = 768  # finer levels of large images are seen in tiles of this side (0: whole); memory grows with it
    detector_tile_overlap: int = 128  # pixels neighbouring tiles share (a face or line this big is never cut)
    text_min_side: int = 736  # smaller images are scaled up to this shorter side for text detection (0: never)
    text_inverse: bool = False  # a second text detection pass on the inverted image (PP-OCR finds light-on-dark text without it)
    text_orientations: bool = True  # read each line turned by 0/180 (90/270 when tall) and keep the best reading
    # "auto": an int8 CenterFace on the CPU (about twice as fast, recall measured: docs/detection.md) and
    # float PP-OCR; "int8": the PP-OCR detector in int8 too (faster, finds fewer faint lines); "fp32":
    # float everywhere. On a GPU the networks run in float. The device is ``device`` below.
    detector_precision: str = "auto"
    # Regions the dataset already holds (docs/anonymize.md), e.g. DataComp's "face_bboxes": boxes [x0, y0, x1, y1]
    # (or {"box", "category"}), people_faces unless a category is given.
    regions_column: Optional[str] = None
    regions_format: str = "auto"  # "auto" | "pixels" | "relative" (fractions of width and height)
    regions_mode: str = "merge"  # "merge": added to what stage 1 finds; "only": the column's boxes alone, no inspection
    # model backends ("transformers", "openai"): one VLM answer per image
    vlm_model: Optional[str] = None  # hub id or local folder
    vlm_revision: Optional[str] = None
    max_new_tokens: int = 512
    vlm_box_format: str = "normalized_1000"  # how the VLM writes boxes: "normalized_1000" | "pixels" (of the image as sent)
    vlm_max_image_side: int = 1024  # images are scaled down to this longest side before the VLM sees them
    stage1_batch_size: int = 8  # conversations per generate() call (transformers backends)
    flag_pass: bool = False  # ask for the verdict alone first, as the paper does; private when either answer says so
    flag_max_new_tokens: int = 128
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
    # ip2p: None uses the dual-prompt weights a model ships (their mode is detected); "paper" is
    # SafeAttention (docs/training.md); True or "gated" the zero-gated fusion; False never fuses.
    dual_prompt: Optional[Union[bool, str]] = None
    vae_tiling: bool = False
    # flowedit (docs/stage2.md, "FlowEdit"): guidance_scale is the target prompt's; the paper's values by default
    source_guidance_scale: Optional[float] = None  # the source (private caption) prompt's guidance; None: 3.5
    flowedit_n_max: int = 33  # FlowEdit runs the last n_max of the steps; the earlier ones keep the source's layout
    flowedit_n_min: int = 0  # the last n_min steps sample the target plainly
    flowedit_n_avg: int = 1  # velocity differences averaged per step over this many noise draws
    # After editing, faces and text are looked for again in each edited region; what is still
    # there (for generative editors: the same person, the same words) is filled instead.
    verify_edits: bool = True
    edit_timeout: Optional[float] = 600.0  # seconds one editor call may take; its rows are redacted after that
    # speed (docs/stage2.md, "Speed")
    fast: bool = False  # few-step editing: the editor's few-step scheduler and LoRA (ip2p: LCM-LoRA, 4 steps)
    fast_lora: Optional[str] = None  # hub id or local folder of the few-step LoRA; None: the editor's own default
    fast_lora_weight_name: Optional[str] = None  # the weights file inside fast_lora; None: the editor's default or the only one
    deterministic: bool = False  # bit-identical rows whatever their batch: fixed padded batches, deterministic kernels


@dataclass(frozen=True)
class ModelConfig:
    """How model-backed stages load and run (shared by every backend that loads weights)."""

    device: Optional[str] = None  # None: cuda:{rank % n} when CUDA is there, else cpu (models and the offline detectors)
    dtype: str = "auto"  # "auto": bf16 on CUDA, fp32 on CPU
    local_files_only: bool = False
    trust_remote_code: bool = False
    device_map: Optional[str] = None
    cpu_offload: bool = False
    torch_compile: bool = False  # compile the denoiser of diffusion editors (pays off on long runs)
    fp8: bool = False  # fp8 weights and activations for the denoiser's linear layers (torchao; Ada/Hopper GPUs)
    overlap: bool = True  # decode, inspect and encode other parts of a batch while the editor works on one


@dataclass(frozen=True)
class OutputConfig:
    """What happens to rows, good and bad."""

    on_error: str = "redact"  # "redact" | "drop" | "raise"
    image_format: str = "auto"  # edited images: "auto" (JPEG stays JPEG, else PNG) | "png" (lossless) | "jpeg"
    jpeg_quality: int = 95
    max_image_pixels: int = 89_478_485  # Pillow's own decompression-bomb limit
    batch_pixel_budget: int = 50_000_000  # decoded pixels held at once; a batch is worked through in parts under it
    # What of the input's metadata every output keeps (docs/metadata.md); GPS, serials, maker notes, thumbnails,
    # XMP, IPTC and comments never are. (): nothing, and EXIF rotation is not applied either.
    keep_metadata: tuple = ("dpi", "icc", "orientation-baked")


SECTIONS = {"inspect": InspectConfig, "instruct": InstructConfig, "edit": EditConfig, "model": ModelConfig, "output": OutputConfig}
_CHOICES = {
    "vlm_box_format": ("normalized_1000", "pixels"),
    "regions_format": ("auto", "pixels", "relative"),
    "regions_mode": ("merge", "only"),
    "edit_scope": ("regions", "global"),
    "on_error": ("redact", "drop", "raise"),
    "image_format": ("auto", "png", "jpeg"),
    "dual_prompt": (None, True, False, "gated", "paper"),
    "dtype": ("auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32"),
    "detector_precision": ("auto", "fp32", "int8"),
}
MIN_FACE_SIZE = 8  # pixels: face sizes to search for start here (finer levels are scaled up 3x already)
# Inclusive bounds. Outside them a setting cannot anonymize (a blur of 0, 40 pixel blocks across
# a face, a detector that only reports certainties) or cannot run.
_RANGES = {
    "face_threshold": (0.05, 0.9),
    "text_threshold": (0.05, 0.9),
    "face_turned_proposal_threshold": (0.01, 0.9),
    "face_small_proposal_threshold": (0.01, 0.9),
    "detector_max_side": (32, None),
    "region_margin": (0.0, 2.0),
    "feather": (0, 256),
    "blur_strength": (0.1, 2.0),
    "pixel_blocks": (1, 8),
    "jpeg_quality": (1, 100),
    "max_image_pixels": (1, None),
    "batch_pixel_budget": (1, None),
    "edit_batch_size": (1, None),
    "stage1_batch_size": (1, None),
    "max_new_tokens": (1, None),
    "flag_max_new_tokens": (1, None),
    "instruct_max_new_tokens": (1, None),
    "vlm_max_image_side": (8, None),
    "openai_concurrency": (1, None),
    "openai_timeout": (0.001, None),
    "openai_max_retries": (0, None),
    "edit_timeout": (0.001, None),
    "num_inference_steps": (1, None),
    "edit_resolution": (8, None),
    "source_guidance_scale": (0.0, None),
    "flowedit_n_max": (1, None),
    "flowedit_n_min": (0, None),
    "flowedit_n_avg": (1, None),
}


def _suggest(value, choices) -> str:
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _check_type(key, value, annotation):
    """``value`` as the field's type (ints accepted for floats), or a TypeError naming the setting."""
    optional = typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(annotation)
    if optional:
        if value is None:
            return None
        rest = tuple(a for a in typing.get_args(annotation) if a is not type(None))
        annotation = rest[0] if len(rest) == 1 else typing.Union[rest]
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif annotation is str:
        ok = isinstance(value, str)
    elif typing.get_origin(annotation) is typing.Union:
        ok = isinstance(value, typing.get_args(annotation))
    elif annotation is tuple:
        ok = isinstance(value, (list, tuple))
        value = tuple(value) if ok else value
    else:
        ok = True
    if not ok:
        options = typing.get_args(annotation) or (annotation,)
        name = " or ".join(getattr(a, "__name__", str(a)) for a in options)
        raise TypeError(f"{key}={value!r} must be {'None or ' if optional else ''}{name}, not {type(value).__name__}")
    return value


def _choices(key):
    from .registry import EDITORS, INSPECTORS, INSTRUCTORS

    backends = {"stage1_backend": INSPECTORS, "instructor": INSTRUCTORS, "editor": EDITORS}  # registered at call time
    return tuple(backends[key]) if key in backends else _CHOICES.get(key)


def _check_value(key, value):
    choices = _choices(key)
    if choices is not None and value not in choices:
        raise ValueError(f"{key}={value!r} is not one of {', '.join(map(repr, choices))}.{_suggest(value, choices)}")
    if key in _RANGES and value is not None:
        low, high = _RANGES[key]
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise ValueError(f"{key}={value!r} is out of range: it must be {bounds}")
    if key in ("face_min_size", "face_turned_min_size") and value is not None and (value < 0 or 0 < value < MIN_FACE_SIZE):
        raise ValueError(f"{key}={value!r} must be 0 (off) or at least {MIN_FACE_SIZE} pixels")
    if key == "keep_metadata":
        from .imaging.metadata_policy import check_keep_metadata

        check_keep_metadata(value)
    if key == "fill_color" and (len(value) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in value)):
        raise ValueError(f"fill_color={value!r} must be three integers from 0 to 255")


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
                raise TypeError(f"Unknown setting {key!r}.{_suggest(key, known)} Known settings: {', '.join(known)}")
            value = _check_type(key, value, typing.get_type_hints(SECTIONS[owner])[key])
            _check_value(key, value)
            if key == "keep_metadata":  # one policy, one config hash, whatever the order it was written in
                value = tuple(sorted(set(value)))
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
        # The paper's stage-1 models. InternVL2.5-8B is published as remote code: the transformers backend
        # names the way to a native checkpoint or a server (docs/stage1.md); vLLM serves it as is.
        inspect=InspectConfig(
            stage1_backend="transformers", vlm_model="OpenGVLab/InternVL2_5-8B", vlm_revision="main",
            vlm_box_format="normalized_1000", max_new_tokens=1024,
        ),
        instruct=InstructConfig(instructor="llm", llm_model="Qwen/Qwen3-4B-Instruct-2507", llm_revision="main",
                                instruct_max_new_tokens=512),
        # MagicBrush (an InstructPix2Pix fine-tune) edits the whole image with the settings of its own editing
        # script (512 px, 100 steps, text 7.5, image 1.5). edit_scope="regions" keeps every pixel outside the boxes.
        edit=EditConfig(
            editor="ip2p", editor_model="vinesmsuic/magicbrush-jul7", edit_scope="global", edit_resolution=512,
            num_inference_steps=100, guidance_scale=7.5, image_guidance_scale=1.5,
        ),
    ),
}


def resolve_config(preset: str = "local", **overrides) -> U2SConfig:
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}.{_suggest(preset, PRESETS)}")
    base = PRESETS[preset]
    if overrides.get("editor", base.edit.editor) != base.edit.editor and "editor_model" not in overrides:
        # Another editor than the preset's: the preset's weights belong to its own editor.
        overrides = {"editor_model": None, "editor_revision": None, **overrides}
    return base.replace(**overrides)
