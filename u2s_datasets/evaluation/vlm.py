"""A small chat interface to a vision-language model: one image and one question in, text out.

Two backends: a local transformers chat model (``AutoProcessor`` +
``AutoModelForImageTextToText``, loaded lazily through ``from_pretrained``) and an
OpenAI-compatible ``/chat/completions`` endpoint. The evaluation judges only need this one
call, so they carry no dependency on the transform's stage-1 backends.
"""

import base64
import io
import json
import logging
import os
import urllib.error
import urllib.request
from typing import Optional

logger = logging.getLogger(__name__)


class TransformersChat:
    """A transformers image-text-to-text model answering one question about one image."""

    def __init__(self, model: str, revision: Optional[str] = None, device: Optional[str] = None, dtype: str = "auto",
                 max_new_tokens: int = 32, local_files_only: bool = False, trust_remote_code: bool = False):
        self.model_id, self.revision = model, revision
        self.device, self.dtype = device, dtype
        self.max_new_tokens = max_new_tokens
        self.local_files_only, self.trust_remote_code = local_files_only, trust_remote_code
        self._model = self._processor = None

    def _load(self):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from ..devices import resolve_device, resolve_dtype

        device = resolve_device(self.device, None)
        options = dict(revision=self.revision, local_files_only=self.local_files_only, trust_remote_code=self.trust_remote_code)
        try:
            self._processor = AutoProcessor.from_pretrained(self.model_id, **options)
            self._model = AutoModelForImageTextToText.from_pretrained(
                self.model_id, dtype=resolve_dtype(self.dtype, device), use_safetensors=True, **options
            ).to(device).eval()
        except OSError as e:
            raise OSError(f"cannot load the judge model {self.model_id!r} (revision {self.revision}): {e}") from None

    def ask(self, image, question: str) -> str:
        import torch

        if self._model is None:
            self._load()
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        prompt = self._processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self._processor(images=[image], text=[prompt], return_tensors="pt").to(self._model.device)
        with torch.inference_mode():
            output = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return self._processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()

    def describe(self) -> dict:
        return {"backend": "transformers", "id": self.model_id, "revision": self.revision}


class OpenAIChat:
    """An OpenAI-compatible endpoint (vLLM, TGI, llama.cpp server, hosted APIs)."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                 max_tokens: int = 32):
        if not base_url or not model:
            raise ValueError("the OpenAI-compatible judge needs both base_url and model")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.api_key_env, self.timeout, self.max_tokens = api_key_env, timeout, max_tokens

    def ask(self, image, question: str) -> str:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        body = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "text", "text": question},
            ]}],
        }
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.load(response)
        except urllib.error.URLError as e:
            raise ConnectionError(f"the judge endpoint {self.base_url} did not answer: {e}") from None
        try:
            return reply["choices"][0]["message"]["content"].strip()
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ValueError(f"the judge endpoint gave an answer without choices[0].message.content: {str(reply)[:200]}") from None

    def describe(self) -> dict:
        return {"backend": "openai", "id": self.model, "revision": None, "endpoint": self.base_url}


def make_chat(backend: str, **options):
    if backend == "transformers":
        return TransformersChat(**options)
    if backend == "openai":
        return OpenAIChat(**options)
    raise ValueError(f"unknown VLM backend {backend!r}; available: transformers, openai")
