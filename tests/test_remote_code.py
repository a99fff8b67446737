"""Code shipped with a checkpoint runs only when the user sets trust_remote_code, through transformers' own machinery."""

import json
import shutil

import pytest
import torch
from tiny_chat_models import char_tokenizer

from u2s_datasets import resolve_config
from u2s_datasets.models.chat import TransformersChat, user_message

CONFIGURATION = '''
from transformers import LlamaConfig


class ShippedChatConfig(LlamaConfig):
    model_type = "shipped_chat"
'''
MODELING = '''
import torch
from transformers import LlamaForCausalLM

from .configuration_shipped import ShippedChatConfig


class ShippedChatForCausalLM(LlamaForCausalLM):
    """A Llama whose logits always favour one token: what only this file's code can make it do."""

    config_class = ShippedChatConfig

    def forward(self, *args, **kwargs):
        output = super().forward(*args, **kwargs)
        output.logits[..., self.config.favoured_token_id] += 1000.0
        return output
'''


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shipped_chat")
    (folder / "configuration_shipped.py").write_text(CONFIGURATION)
    (folder / "modeling_shipped.py").write_text(MODELING)
    tokenizer = char_tokenizer()
    favoured = tokenizer.convert_tokens_to_ids("Z")
    config = {
        "architectures": ["ShippedChatForCausalLM"], "model_type": "shipped_chat",
        "auto_map": {"AutoConfig": "configuration_shipped.ShippedChatConfig",
                     "AutoModelForCausalLM": "modeling_shipped.ShippedChatForCausalLM"},
        "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 512,
        "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 3, "favoured_token_id": favoured,
    }
    (folder / "config.json").write_text(json.dumps(config))
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**{k: v for k, v in config.items() if k not in ("auto_map", "architectures", "model_type")})
                     ).save_pretrained(folder / "_weights")
    shutil.move(str(folder / "_weights" / "model.safetensors"), str(folder / "model.safetensors"))
    tokenizer.save_pretrained(folder)
    return str(folder)


def _settings(**overrides):
    return resolve_config("paper", local_files_only=True, **overrides).model


def test_shipped_code_is_refused_without_the_setting(shipped):
    assert _settings().trust_remote_code is False  # off by default
    with pytest.raises(ValueError, match="needs the Python code shipped with the checkpoint.*trust_remote_code setting to True"):
        TransformersChat.load(shipped, None, _settings(), vision=False, role="language (llm_model)")


def test_shipped_code_runs_when_the_user_allows_it(shipped):
    chat = TransformersChat.load(shipped, None, _settings(trust_remote_code=True), vision=False, batch_size=2)
    assert type(chat.model).__name__ == "ShippedChatForCausalLM"
    assert type(chat.model).__module__.startswith("transformers_modules.")  # transformers' dynamic-module loader
    answers = chat.generate([[user_message("Write the instruction.")], [user_message("Hi")]], max_new_tokens=5)
    assert answers == ["ZZZZZ", "ZZZZZ"]  # the shipped forward() decided every token


def test_trust_remote_code_is_validated_like_other_settings():
    with pytest.raises(TypeError, match="trust_remote_code='yes' must be bool"):
        resolve_config("paper", trust_remote_code="yes")
