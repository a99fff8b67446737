"""Chat models for stage 1: one ``generate(conversations)`` over transformers or an HTTP endpoint.

A conversation is a list of ``{"role", "content"}`` messages whose content is a list of
parts, ``{"type": "text", "text": ...}`` or ``{"type": "image", "image": PIL.Image}``: the
form chat templates of vision-language models take. Every backend answers a batch of
conversations with one string per conversation, in order.
"""

import inspect
import logging
from typing import Optional

from .devices import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)


class ModelNotFoundError(FileNotFoundError):
    """A model that cannot be loaded from the Hub cache or the given folder."""


def system_message(text: str) -> dict:
    return {"role": "system", "content": [{"type": "text", "text": text}]}


def user_message(text: str, image=None) -> dict:
    content = ([{"type": "image", "image": image}] if image is not None else []) + [{"type": "text", "text": text}]
    return {"role": "user", "content": content}


def assistant_message(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def message_text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part.get("type") == "text")


class TransformersChat:
    """A chat model loaded with transformers: its own chat template, left-padded batches, greedy decoding.

    ``vision=True`` loads ``AutoProcessor`` + ``AutoModelForImageTextToText`` (any chat VLM
    whose processor takes images in the chat template); ``vision=False`` loads
    ``AutoTokenizer`` + ``AutoModelForCausalLM``.
    """

    def __init__(self, model, processor, device: str, batch_size: int, vision: bool, name: str = "", processor_kwargs=None):
        self.processor_kwargs = dict(processor_kwargs or {})
        self.model = model
        self.processor = processor
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.vision = vision
        self.name = name
        self.tokenizer = getattr(processor, "tokenizer", processor)
        # Decoder-only generation continues from the last position: padding goes on the left.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not (getattr(processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)):
            raise ValueError(f"Model {name!r} has no chat template; use an instruction-tuned (chat) checkpoint.")

    @classmethod
    def load(cls, model_id: str, revision: Optional[str], settings, rank=None, vision: bool = True, batch_size: int = 8, role="model"):
        """Load ``model_id`` (hub id or local folder) as ``settings`` (a ``ModelConfig``) says."""
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer, PretrainedConfig

        from . import internvl

        if not model_id:
            raise ValueError(f"No {role} model is set; pass it by hub id or local folder.")
        device = resolve_device(settings.device, rank)
        dtype = resolve_dtype(settings.dtype, device)
        common = {
            "revision": revision,
            "local_files_only": settings.local_files_only,
            "trust_remote_code": settings.trust_remote_code,
        }
        model_kwargs = dict(common, dtype=dtype, use_safetensors=True)
        if settings.device_map:
            model_kwargs["device_map"] = settings.device_map
        auto_model = AutoModelForImageTextToText if vision else AutoModelForCausalLM
        auto_processor = AutoProcessor if vision else AutoTokenizer
        logger.info("loading %s model %s (revision %s) on %s as %s", role, model_id, revision, device, dtype)
        processor_kwargs = {}
        try:
            # The raw config.json: its model_type is readable even where the class is remote code.
            raw_config = PretrainedConfig.get_config_dict(model_id, revision=revision, local_files_only=settings.local_files_only)[0]
            _check_remote_code(model_id, raw_config, settings.trust_remote_code)
            model_type = raw_config.get("model_type") if vision else None
            if model_type == "internvl":
                # One 448-pixel tile per image, as the paper runs InternVL; the processor needs no torchvision.
                auto_processor, processor_kwargs = internvl.InternVLImageProcessor, {"crop_to_patches": False}
            processor = auto_processor.from_pretrained(model_id, **common)
            model = auto_model.from_pretrained(model_id, **model_kwargs)
        except OSError as e:
            raise ModelNotFoundError(_missing_model_message(model_id, revision, role, e)) from e
        if settings.cpu_offload:
            # Weights stay in CPU memory and visit the device one module at a time: slow, but fits small GPUs.
            from accelerate import cpu_offload

            cpu_offload(model, execution_device=device)
        elif not settings.device_map:
            model.to(device)
        model.eval()
        return cls(model, processor, device, batch_size, vision, name=model_id, processor_kwargs=processor_kwargs)

    def generate(self, conversations: list, max_new_tokens: int) -> list:
        answers = []
        for start in range(0, len(conversations), self.batch_size):
            answers += self._generate_batch(conversations[start : start + self.batch_size], max_new_tokens)
        return answers

    def _generate_batch(self, conversations, max_new_tokens) -> list:
        import torch

        if self.vision:
            inputs = _apply_template(self.processor, conversations, self.processor_kwargs)
        else:
            # Text-only chat templates expect plain string content.
            flat = [[{"role": m["role"], "content": message_text(m)} for m in conv] for conv in conversations]
            inputs = self.tokenizer.apply_chat_template(
                flat, add_generation_prompt=True, tokenize=True, return_dict=True, padding=True, return_tensors="pt"
            )
        device = self._input_device()
        dtype = self.model.dtype
        inputs = {k: _to(v, device, dtype) for k, v in inputs.items()}
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def _input_device(self):
        if getattr(self.model, "hf_device_map", None):
            # Split over devices: inputs go where the embeddings live.
            device = self.model.get_input_embeddings().weight.device
            return device if device.type != "meta" else self.device
        return self.device


def _check_remote_code(model_id, raw_config: dict, trusted: bool):
    """Code shipped with a checkpoint runs only when the user says so; InternVL's runs not at all, it converts."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from . import internvl

    model_type = raw_config.get("model_type")
    if model_type in internvl.REMOTE_CODE_TYPES:
        # Its remote code answers through model.chat(), not through a chat template and generate().
        raise ValueError(internvl.remote_code_message(model_id))
    if "auto_map" in raw_config and model_type not in CONFIG_MAPPING and not trusted:
        raise ValueError(
            f"{model_id!r} ({model_type!r}) needs the Python code shipped with the checkpoint, which transformers "
            "runs only when you allow it: set the trust_remote_code setting to True if you trust that code, or use a checkpoint "
            "in a native transformers format."
        )


def _apply_template(processor, conversations, extra=None):
    options = {"add_generation_prompt": True, "tokenize": True, "return_dict": True, "return_tensors": "pt"}
    if "processor_kwargs" in inspect.signature(processor.apply_chat_template).parameters:
        return processor.apply_chat_template(conversations, processor_kwargs={"padding": True, **(extra or {})}, **options)
    return processor.apply_chat_template(conversations, padding=True, **(extra or {}), **options)


def _to(value, device, dtype):
    if not hasattr(value, "to"):
        return value
    if value.is_floating_point():
        return value.to(device=device, dtype=dtype)
    return value.to(device)


def _missing_model_message(model_id, revision, role, error) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"Cannot load the {role} model {model_id!r} (revision {revision or 'default'}): {error}\n"
        f"Download it where the Hub is reachable with `hf download {model_id}{rev} --local-dir <folder>` "
        f"and pass the folder instead of the hub id, or allow Hub access (unset HF_HUB_OFFLINE, local_files_only=False)."
    )
