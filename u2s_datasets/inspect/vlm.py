"""Model-backed inspection: a vision-language model reads each image and answers in JSON."""

import logging

from PIL import Image

from .. import prompts
from ..models.chat import TransformersChat, assistant_message, user_message
from ..records import Inspection
from .parsing import AnswerError, parse_inspection

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

    def inspect(self, images: list, class_labels: list) -> list:
        sent = [_fit(image, self.max_side) for image in images]
        conversations = [
            [user_message(prompts.inspection_prompt(label, self.box_format, image.size), image)]
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


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    """A copy no longer than ``max_side`` on its longest side: bounded tokens and memory per image."""
    if not max_side or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.BICUBIC)
