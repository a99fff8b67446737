"""A chat model behind any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, SGLang, TGI, Ollama).

Standard library only: ``urllib`` for HTTP, a thread pool for bounded concurrency.
Every request has a timeout; connection failures, timeouts, 429 and 5xx answers are
retried with exponential backoff, then raise ``EndpointError`` with what happened.
"""

import base64
import io
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


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

    def check_reachable(self):
        """Fail early and clearly when nothing listens at ``base_url``; any HTTP answer counts as up."""
        request = urllib.request.Request(f"{self.base_url}/models", headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout, 10.0)):
                pass
        except urllib.error.HTTPError:
            pass
        except (urllib.error.URLError, OSError) as e:
            raise EndpointError(f"Cannot reach the chat endpoint {self.base_url}: {_reason(e)}. Is the server running?") from None

    def generate(self, conversations: list, max_new_tokens: int) -> list:
        if len(conversations) <= 1 or self.concurrency == 1:
            return [self._complete(c, max_new_tokens) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(lambda c: self._complete(c, max_new_tokens), conversations))

    def _complete(self, conversation, max_new_tokens) -> str:
        body = {"model": self.model, "messages": to_openai_messages(conversation, self.image_format), "max_tokens": int(max_new_tokens), "temperature": 0}
        reply = self._post("/chat/completions", body)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.base_url} sent a reply without choices[0].message.content: {str(reply)[:200]}") from None
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content or ""

    def _post(self, path: str, body: dict) -> dict:
        url = self.base_url + path
        data = json.dumps(body).encode("utf-8")
        problem = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                logger.warning("%s: %s; retry %d of %d in %.1fs", url, problem, attempt, self.max_retries, delay)
                time.sleep(delay)
            request = urllib.request.Request(url, data=data, headers=self._headers(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                problem = f"HTTP {e.code} {e.reason}: {detail}"
                if e.code not in _RETRY_STATUS:
                    raise EndpointError(f"{url} refused the request: {problem}") from None
            except (TimeoutError, socket.timeout):
                problem = f"no answer within {self.timeout:g}s"
            except (urllib.error.URLError, ConnectionError, OSError) as e:
                problem = _reason(e)
            except ValueError as e:
                problem = f"the reply is not JSON ({e})"
        raise EndpointError(f"{url} failed after {self.max_retries + 1} attempts: {problem}")

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def _reason(error) -> str:
    reason = getattr(error, "reason", error)
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return str(reason) or type(reason).__name__
