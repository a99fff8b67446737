"""The vision-language model behind the judge and the demographic labels: one image and one question in, text out.

It is a stage-1 chat client (``models.chat.TransformersChat`` or ``models.openai_chat.OpenAIChat``)
plus what the evaluation reports about it: backend, model id and revision.
"""

from typing import Optional

from ..config import ModelConfig
from ..models.chat import TransformersChat, user_message
from ..models.openai_chat import OpenAIChat


class ImageQuestions:
    """Greedy short answers (a score, a label) about single images."""

    def __init__(self, chat, description: dict, max_new_tokens: int = 32):
        self.chat, self.description, self.max_new_tokens = chat, description, max_new_tokens

    def ask(self, image, question: str) -> str:
        return self.chat.generate([[user_message(question, image)]], self.max_new_tokens)[0].strip()

    def describe(self) -> dict:
        return dict(self.description)


def load_chat(backend: str, model: Optional[str], revision: Optional[str] = None, base_url: Optional[str] = None,
              device: Optional[str] = None, local_files_only: bool = False) -> ImageQuestions:
    if backend == "transformers":
        settings = ModelConfig(device=device, local_files_only=local_files_only)
        chat = TransformersChat.load(model, revision, settings, vision=True, batch_size=1, role="judge")
        return ImageQuestions(chat, {"backend": "transformers", "id": model, "revision": revision})
    if backend == "openai":
        # PNG: the judge sees the safe image's pixels, not JPEG artefacts on top of them.
        chat = OpenAIChat(base_url=base_url, model=model, image_format="PNG")
        return ImageQuestions(chat, {"backend": "openai", "id": model, "revision": None, "endpoint": chat.base_url})
    raise ValueError(f"unknown VLM backend {backend!r}; available: transformers, openai")
