"""Inspection through an OpenAI-compatible chat endpoint (vLLM, SGLang, TGI, Ollama, ...)."""

from ..models.openai_chat import OpenAIChat
from .vlm import ChatInspector


def openai_chat(config, model) -> OpenAIChat:
    settings = config.inspect
    return OpenAIChat(
        base_url=settings.openai_base_url,
        model=model,
        api_key_env=settings.openai_api_key_env,
        concurrency=settings.openai_concurrency,
        timeout=settings.openai_timeout,
        max_retries=settings.openai_max_retries,
    )


class OpenAIInspector(ChatInspector):
    """The VLM served at ``openai_base_url`` under ``openai_model`` (default: ``vlm_model``)."""

    def __init__(self, config, rank=None, **shared):
        settings = config.inspect
        self.model_id = settings.openai_model or settings.vlm_model
        self.base_url = settings.openai_base_url
        chat = openai_chat(config, self.model_id)
        chat.check_reachable()
        super().__init__(chat, settings)
