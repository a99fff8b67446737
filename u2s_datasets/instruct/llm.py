"""Model-backed instruction writing: a language model turns the review and public caption into an edit."""

import logging

from .. import prompts
from ..models.chat import TransformersChat, assistant_message, system_message, user_message
from ..inspect.parsing import AnswerError, parse_instruction

logger = logging.getLogger(__name__)


class InstructionError(RuntimeError):
    """The model's instruction for a row stayed unusable after one repair request."""


class ChatInstructor:
    """One instruction per private inspection, over any chat model with ``generate(conversations, max_new_tokens)``.

    A row whose answer stays unusable after one repair request comes back as an
    ``InstructionError`` in its place; the transform fails that row closed and keeps the others.
    """

    def __init__(self, chat, max_new_tokens: int):
        self.chat = chat
        self.max_new_tokens = max_new_tokens

    def instruct(self, inspections: list) -> list:
        system = system_message(prompts.system_prompt("instruct"))
        conversations = [[system, user_message(prompts.instruction_prompt(inspection))] for inspection in inspections]
        answers = self.chat.generate(conversations, self.max_new_tokens)
        results, problems = [], {}
        for i, (inspection, answer) in enumerate(zip(inspections, answers)):
            results.append(self._read(answer, inspection, problems, i))
        if problems:
            indices = sorted(problems)
            repairs = [
                conversations[i] + [assistant_message(answers[i]), user_message(prompts.instruction_repair_prompt(problems[i]))]
                for i in indices
            ]
            for i, answer in zip(indices, self.chat.generate(repairs, self.max_new_tokens)):
                retry_problems = {}
                results[i] = self._read(answer, inspections[i], retry_problems, i)
                if results[i] is None:
                    results[i] = InstructionError(f"answer unusable after one repair request ({retry_problems[i]})")
        return results

    @staticmethod
    def _read(answer, inspection, problems, index):
        try:
            return parse_instruction(answer, fallback_caption=inspection.public_caption)
        except AnswerError as e:
            problems[index] = str(e)
            logger.debug("unusable instruction answer %r: %s", (answer or "")[:200], e)
            return None


class TransformersInstructor(ChatInstructor):
    """The causal LM named by ``llm_model``; reuses the inspector's model when it is the same one."""

    def __init__(self, config, rank=None, inspector=None, **shared):
        settings = config.instruct
        if _same_model(inspector, settings.llm_model, settings.llm_revision):
            chat = inspector.chat
        else:
            chat = TransformersChat.load(
                settings.llm_model, settings.llm_revision, config.model, rank,
                vision=False, batch_size=config.inspect.stage1_batch_size, role="language (llm_model)",
            )
        super().__init__(chat, settings.instruct_max_new_tokens)


class SameModelInstructor(ChatInstructor):
    """The inspector's own model writes the instruction too: one model in memory."""

    def __init__(self, config, rank=None, inspector=None, **shared):
        if getattr(inspector, "chat", None) is None:
            raise ValueError(
                "instructor='same' reuses the inspector's model, but the inspector "
                f"({config.inspect.stage1_backend!r}) has none; use stage1_backend='transformers' or 'openai'."
            )
        super().__init__(inspector.chat, config.instruct.instruct_max_new_tokens)


class OpenAIInstructor(ChatInstructor):
    """``llm_model`` served at ``llm_base_url`` (default: the inspector's ``openai_base_url``)."""

    def __init__(self, config, rank=None, inspector=None, **shared):
        from ..inspect.openai_backend import openai_chat

        settings = config.instruct
        base_url = settings.llm_base_url or config.inspect.openai_base_url
        if getattr(inspector, "base_url", None) == base_url and _same_model(inspector, settings.llm_model, None):
            chat = inspector.chat
        else:
            chat = openai_chat(config, settings.llm_model)
            if settings.llm_base_url:
                chat.base_url = settings.llm_base_url.rstrip("/")
            chat.check_reachable()
        super().__init__(chat, settings.instruct_max_new_tokens)


def llm_instructor(config, rank=None, **shared):
    """The language model of ``stage1_backend``: a transformers causal LM, or one behind the endpoint."""
    if config.inspect.stage1_backend == "openai":
        return OpenAIInstructor(config, rank=rank, **shared)
    return TransformersInstructor(config, rank=rank, **shared)


def _same_model(inspector, model_id, revision) -> bool:
    if inspector is None or getattr(inspector, "chat", None) is None:
        return False
    return getattr(inspector, "model_id", None) == model_id and (revision is None or getattr(inspector, "revision", revision) == revision)
