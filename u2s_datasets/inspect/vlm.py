"""Model-backed inspection: a vision-language model reads each image and answers in JSON."""

import logging

from PIL import Image

from .. import prompts
from ..models.chat import TransformersChat, assistant_message, system_message, user_message
from ..records import Inspection
from .parsing import AnswerError, parse_flag, parse_inspection

logger = logging.getLogger(__name__)


class ChatInspector:
    """Prompt -> answer -> checked ``Inspection``, over any chat model with ``generate(conversations, max_new_tokens)``.

    An unusable answer gets one repair request in the same conversation; still unusable,
    the image fails closed (``Inspection.failed``: private, status says why).
    """

    def __init__(self, chat, settings):
        self.chat = chat
        self.max_new_tokens = settings.max_new_tokens
        self.box_format = settings.vlm_box_format
        self.max_side = settings.vlm_max_image_side
        self.flag_pass = getattr(settings, "flag_pass", False)
        self.flag_max_new_tokens = getattr(settings, "flag_max_new_tokens", 128)

    def inspect(self, images: list, class_labels: list) -> list:
        sent = [_fit(image, self.max_side) for image in images]
        results = self._inspect(images, sent, class_labels)
        if self.flag_pass:
            results = [_with_flag(result, flag) for result, flag in zip(results, self._flags(sent, class_labels))]
        return results

    def _flags(self, sent: list, class_labels: list) -> list:
        """The separate verdict per image: ``(is_private, categories)``; unusable twice reads as private."""
        system = system_message(prompts.system_prompt("flag"))
        conversations = [[system, user_message(prompts.flag_prompt(label), image)] for image, label in zip(sent, class_labels)]
        answers = self.chat.generate(conversations, self.flag_max_new_tokens)
        flags, problems = [], {}
        for i, answer in enumerate(answers):
            try:
                flags.append(parse_flag(answer))
            except AnswerError as e:
                flags.append(None)
                problems[i] = str(e)
        if problems:
            indices = sorted(problems)
            repairs = [
                conversations[i] + [assistant_message(answers[i]), user_message(prompts.flag_repair_prompt(problems[i]))]
                for i in indices
            ]
            for i, answer in zip(indices, self.chat.generate(repairs, self.flag_max_new_tokens)):
                try:
                    flags[i] = parse_flag(answer)
                except AnswerError as e:
                    logger.info("flag answer unusable after one repair request (%s); the image counts as private", e)
                    flags[i] = (True, [])
        return flags

    def _inspect(self, images: list, sent: list, class_labels: list) -> list:
        system = system_message(prompts.system_prompt("inspect"))
        conversations = [
            [system, user_message(prompts.inspection_prompt(label, self.box_format, image.size), image)]
            for image, label in zip(sent, class_labels)
        ]
        answers = self.chat.generate(conversations, self.max_new_tokens)
        results, problems = [], {}
        for i, (image, small, answer) in enumerate(zip(images, sent, answers)):
            results.append(self._read(answer, image, small, problems, i))
        if problems:
            logger.info("asking again for %d unusable inspection answer(s)", len(problems))
            indices = sorted(problems)
            repairs = [
                conversations[i] + [assistant_message(answers[i]), user_message(prompts.inspection_repair_prompt(problems[i]))]
                for i in indices
            ]
            second = dict(zip(indices, self.chat.generate(repairs, self.max_new_tokens)))
            for i in indices:
                retry_problems = {}
                results[i] = self._read(second[i], images[i], sent[i], retry_problems, i)
                if results[i] is None:
                    results[i] = Inspection.failed(
                        f"inspection answer unusable after one repair request ({retry_problems[i]})"
                    )
        return results

    def _read(self, answer, image, small, problems, index):
        try:
            return parse_inspection(answer, image.size, self.box_format, small.size)
        except AnswerError as e:
            problems[index] = str(e)
            logger.debug("unusable inspection answer %r: %s", (answer or "")[:200], e)
            return None


class TransformersInspector(ChatInspector):
    """The VLM named by ``vlm_model`` (hub id or folder), loaded with transformers on this rank's device."""

    def __init__(self, config, rank=None, **shared):
        settings = config.inspect
        chat = TransformersChat.load(
            settings.vlm_model, settings.vlm_revision, config.model, rank,
            vision=True, batch_size=settings.stage1_batch_size, role="vision-language (vlm_model)",
        )
        self.model_id, self.revision = settings.vlm_model, settings.vlm_revision
        super().__init__(chat, settings)


def _with_flag(inspection: Inspection, flag: tuple) -> Inspection:
    """Recall first: private when the flag or the inspection says so. A flag the inspection did not
    confirm has no boxes, so the whole image is edited."""
    flagged, categories = flag
    if inspection.error is not None or inspection.is_private or not flagged:
        return inspection
    return Inspection(is_private=True, categories=list(categories), private_caption=inspection.private_caption,
                      public_caption=inspection.public_caption)


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    """A copy no longer than ``max_side`` on its longest side: bounded tokens and memory per image."""
    if not max_side or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.BICUBIC)
