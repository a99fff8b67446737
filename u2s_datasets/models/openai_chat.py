"""A chat model behind any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, SGLang, TGI, Ollama).

Requests go through the ``openai`` client with ``base_url`` set to the server (huggingface_hub's
``InferenceClient`` refuses every request, loopback included, while ``HF_HUB_OFFLINE=1``); a
thread pool bounds how many run at once. Every request has a timeout; connection failures,
timeouts, 429 and 5xx answers are retried with exponential backoff, then raise ``EndpointError``
with what happened.
"""

import base64
import io
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai

logger = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
NO_KEY = "EMPTY"  # what local servers (vLLM, SGLang) accept when they need no key


class EndpointError(RuntimeError):
    """The endpoint could not answer: down, too slow, or an unusable reply."""


def image_data_url(image, quality: int = 95, image_format: str = "JPEG") -> str:
    """An RGB PIL image as a ``data:image/jpeg;base64,...`` URL (``image_format="PNG"``: lossless)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=image_format, quality=quality)
    return f"data:image/{image_format.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def to_openai_messages(conversation: list, image_format: str = "JPEG") -> list:
    """Our message parts -> OpenAI chat parts (images as data URLs)."""
    messages = []
    for message in conversation:
        parts = []
        for part in message["content"]:
            if part["type"] == "image":
                url = image_data_url(part["image"], image_format=image_format)
                parts.append({"type": "image_url", "image_url": {"url": url}})
            else:
                parts.append({"type": "text", "text": part["text"]})
        if all(p["type"] == "text" for p in parts):
            # Plain strings suit every server, including text-only ones.
            parts = "\n".join(p["text"] for p in parts)
        messages.append({"role": message["role"], "content": parts})
    return messages


class OpenAIChat:
    """``generate(conversations, max_new_tokens)`` through ``{base_url}/chat/completions``, greedy."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4,
                 timeout: float = 120.0, max_retries: int = 2, backoff: float = 1.0, image_format: str = "JPEG"):
        if not base_url:
            raise ValueError("The openai backend needs openai_base_url (e.g. 'http://localhost:8000/v1').")
        if not model:
            raise ValueError("The openai backend needs a model name as the server knows it.")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.image_format = image_format
        self._clients, self._lock = {}, threading.Lock()

    def client(self) -> openai.OpenAI:
        """The client for the current ``base_url`` (an instructor may point the same settings at another server).

        Its own retries are off: ``_complete`` retries with this class's backoff and error messages."""
        with self._lock:
            if self.base_url not in self._clients:
                self._clients[self.base_url] = openai.OpenAI(
                    base_url=self.base_url, api_key=self.api_key or NO_KEY, timeout=self.timeout, max_retries=0
                )
            return self._clients[self.base_url]

    def check_reachable(self):
        """Fail early and clearly when nothing listens at ``base_url``; any HTTP answer counts as up."""
        try:
            self.client().with_options(timeout=min(self.timeout, 10.0)).models.list()
        except openai.APIStatusError:
            pass
        except openai.APIConnectionError as e:
            raise EndpointError(f"Cannot reach the chat endpoint {self.base_url}: {_reason(e)}. Is the server running?") from None
        except openai.APIResponseValidationError:
            pass

    def generate(self, conversations: list, max_new_tokens: int) -> list:
        if len(conversations) <= 1 or self.concurrency == 1:
            return [self._complete(c, max_new_tokens) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(lambda c: self._complete(c, max_new_tokens), conversations))

    def _complete(self, conversation, max_new_tokens) -> str:
        url = f"{self.base_url}/chat/completions"
        messages = to_openai_messages(conversation, self.image_format)
        problem = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                logger.warning("%s: %s; retry %d of %d in %.1fs", url, problem, attempt, self.max_retries, delay)
                time.sleep(delay)
            try:
                reply = self.client().chat.completions.create(
                    model=self.model, messages=messages, max_tokens=int(max_new_tokens), temperature=0
                )
            except openai.APIStatusError as e:
                problem = f"HTTP {e.status_code}: {str(e.body if e.body is not None else e.message)[:300]}"
                if e.status_code not in _RETRY_STATUS:
                    raise EndpointError(f"{url} refused the request: {problem}") from None
                continue
            except openai.APITimeoutError:
                problem = f"no answer within {self.timeout:g}s"
                continue
            except openai.APIConnectionError as e:
                problem = _reason(e)
                continue
            except (openai.APIResponseValidationError, ValueError) as e:
                problem = f"the reply is not usable JSON ({e})"
                continue
            return _content(reply, self.base_url)
        raise EndpointError(f"{url} failed after {self.max_retries + 1} attempts: {problem}")


def _content(reply, base_url) -> str:
    try:
        content = reply.choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        raise EndpointError(f"{base_url} sent a reply without choices[0].message.content: {str(reply)[:200]}") from None
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _reason(error) -> str:
    cause = error.__cause__ or error
    while cause.__cause__ is not None or (cause.__context__ is not None and not cause.args):
        cause = cause.__cause__ or cause.__context__
    text = str(cause)
    if isinstance(error, openai.APITimeoutError):
        return "timed out"
    if "refused" in text.lower() or "Errno 111" in text:
        return "connection refused"
    return text or type(cause).__name__
