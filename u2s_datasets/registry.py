"""Backends by name. Adding one is a class and a line here; modules import only when used."""

import importlib

INSPECTORS = {
    "detectors": "u2s_datasets.inspect.local:DetectorInspector",
    "transformers": "u2s_datasets.inspect.vlm:TransformersInspector",
    "openai": "u2s_datasets.inspect.openai_backend:OpenAIInspector",
}

INSTRUCTORS = {
    "template": "u2s_datasets.instruct.template:TemplateInstructor",
    "llm": "u2s_datasets.instruct.llm:llm_instructor",
    "transformers": "u2s_datasets.instruct.llm:TransformersInstructor",
    "openai": "u2s_datasets.instruct.llm:OpenAIInstructor",
    "same": "u2s_datasets.instruct.llm:SameModelInstructor",
}

EDITORS = {
    "blur": "u2s_datasets.edit.regions:BlurEditor",
    "pixelate": "u2s_datasets.edit.regions:PixelateEditor",
    "fill": "u2s_datasets.edit.regions:FillEditor",
    "inpaint": "u2s_datasets.edit.regions:InpaintEditor",
    "ip2p": "u2s_datasets.edit.ip2p:InstructPix2PixEditor",
    "sd-inpaint": "u2s_datasets.edit.sd_inpaint:StableDiffusionInpaintEditor",
    "flux-kontext": "u2s_datasets.edit.flow_editors:FluxKontextEditor",
    "flux-omini": "u2s_datasets.edit.omini:FluxOminiEditor",
    "freeprompt": "u2s_datasets.edit.freeprompt:FreePromptEditor",
    "qwen-image-edit": "u2s_datasets.edit.flow_editors:QwenImageEditEditor",
    "flowedit": "u2s_datasets.edit.flowedit:FlowEditEditor",
}

_KINDS = {"inspector": INSPECTORS, "instructor": INSTRUCTORS, "editor": EDITORS}


def resolve(kind: str, name: str):
    """The class registered for ``name`` among the ``kind`` backends."""
    table = _KINDS[kind]
    if name not in table:
        raise ValueError(f"Unknown {kind} {name!r}; available: {', '.join(sorted(table))}")
    module_name, class_name = table[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
