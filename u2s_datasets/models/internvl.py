"""InternVL (the paper's inspector and judge) through transformers' native architecture, without torchvision.

transformers' ``InternVLProcessor`` also builds a video processor, and that needs torchvision,
which this package never installs. Images alone need only the image processor and the
tokenizer: this processor is InternVL's own with the video part left out. Checkpoints in the
native format are the converted ones (``OpenGVLab/InternVL3_5-8B-HF``, ``OpenGVLab/InternVL3-8B-hf``,
or any original release after ``u2s convert-internvl``); the original releases
(``OpenGVLab/InternVL2_5-8B``) are remote code (``internvl_chat``) that answers through its own
``chat()`` rather than a chat template, so they are converted first (:mod:`.internvl_convert`).
"""

import re

from transformers import InternVLProcessor
from transformers.processing_utils import ProcessorMixin

REMOTE_CODE_TYPES = ("internvl_chat",)


class InternVLImageProcessor(InternVLProcessor):
    """``InternVLProcessor`` for images only: the same prompts and image tokens, no video processor."""

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None, **kwargs):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
        self.image_seq_length = image_seq_length
        self.start_image_token = tokenizer.start_image_token
        self.end_image_token = tokenizer.end_image_token
        self.start_image_token_id = tokenizer.start_image_token_id
        self.end_image_token_id = tokenizer.end_image_token_id
        self.image_token = tokenizer.context_image_token
        # Converted InternVL2.5 tokenizers name no video token: their vocabulary has none.
        self.video_token = getattr(tokenizer, "video_token", None)
        self.image_token_id = tokenizer.context_image_token_id
        video = f"|(?P<video>{re.escape(self.video_token)})" if self.video_token else ""
        self.multimodal_pattern = re.compile(f"(?P<image>{re.escape(self.image_token)}){video}")


def remote_code_message(model_id: str) -> str:
    return (
        f"{model_id!r} is stored in InternVL's own remote-code format (internvl_chat), whose code answers through "
        "model.chat() instead of a chat template, so the transformers backend does not run it, with or without "
        "trust_remote_code. Convert it once to transformers' native InternVL format and pass the new folder: "
        f"`hf download {model_id} --local-dir SRC` then `u2s convert-internvl SRC DST` and vlm_model='DST'. "
        "Or serve it with vLLM or LMDeploy and pass stage1_backend='openai', openai_base_url=..."
    )
