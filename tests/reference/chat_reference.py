#!/usr/bin/env python3
"""Reference for tests/data/test_chat.cpp: Hugging Face `transformers` renders and tokenizes chat
conversations with the official DeepSeek chat templates, as fine-tuning frameworks and inference
servers do, so that `data prepare` (data/sft.cpp, data/chat_template.cpp) can be checked to give the
same token ids. Written against the transformers API, not by porting the C++.

    chat_reference.py OUT_DIR

Trains a small byte-level BPE with HF `tokenizers` (DeepSeek-V3's pre-tokenizer, ~1000 tokens, with
DeepSeek's <｜begin▁of▁sentence｜>, <｜end▁of▁sentence｜>, <｜User｜> and <｜Assistant｜> as special
tokens), and for each template writes OUT_DIR/<name>/tokenizer.json + tokenizer_config.json laid
out as the official config (bos_token / eos_token as AddedToken objects, the chat_template string).
OUT_DIR/expected.json holds, per template, each conversation's
  ids:    PreTrainedTokenizerFast(tokenizer_file=..., bos_token=..., eos_token=...)
          .apply_chat_template(messages, tokenize=True)
  text:   the same with tokenize=False
  mask:   1 on a token whose characters overlap an assistant response or the end-of-sentence after
          it (HF's own offsets; the spans found by searching the rendered text turn by turn).
Exits 77 (with the reason on stderr) when `transformers`, `tokenizers` or `jinja2` cannot be imported.
"""
import json
import os
import sys

try:
    import jinja2  # noqa: F401  (apply_chat_template needs it)
    import tokenizers
    import transformers
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
except ImportError as e:
    print("transformers/tokenizers/jinja2 not importable (%s); install them with "
          "'python3 -m pip install --break-system-packages transformers tokenizers jinja2'" % e, file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe_reference import CORPUS, DEEPSEEK_V3  # noqa: E402  (the pre-tokenizer patterns and text)

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"

# The official chat_template strings (tokenizer_config.json, JSON escapes decoded); the sources are
# named in data/chat_template.cpp, which holds its own copy.
V2 = (
    r"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    r"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}"
    r"{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
    r"{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    r"{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

V3 = (
    r"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    r"{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    r"{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    r"{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    r"{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}"
    r"{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}"
    r"{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}"
    r"{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    r"{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    r"{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}"
    r"{%- set ns.is_tool = false -%}{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}"
    r"{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    r"{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    r"{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    r"{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    r"{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}"
)

R1 = (
    r"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    r"{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    r"{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    r"{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    r"{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}"
    r"{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}"
    r"{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}"
    r"{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}"
    r"{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %}{%- if message['content'] is none %}"
    r"{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- endif %}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}"
    r"{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}"
    r"{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    r"{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}"
    r"{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    r"{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    r"{%- set ns.is_output_first = false %}{%- else %}{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    r"{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    r"{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %}"
)
TEMPLATES = {"deepseek-v2": V2, "deepseek-v3": V3, "deepseek-r1": R1}

CHAT_CORPUS = """
User: What is the capital of France?
Assistant: the capital of France is Paris. The answer is the city on the Seine.
User: Add 2 and 3, then the rest.
Assistant: 5, because 2 + 3 = 5. Then the rest is the same as before.
You are a helpful assistant. Answer the question and explain the answer.
"""


def build_tokenizer(path):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(p), "isolated") for p in DEEPSEEK_V3] +
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=[BOS, EOS, USER, ASSISTANT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([CORPUS] * 3 + [CHAT_CORPUS] * 5, trainer=trainer)
    assert tok.token_to_id("Ġthe") is not None, "the hand-checked case needs 'Ġthe' in the vocabulary"
    tok.save(path)


def added_token(content):
    """bos_token / eos_token as the official tokenizer_config.json files write them."""
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False,
            "single_word": False}


# Multi-turn conversations: responses starting with a letter, a digit, a space, punctuation, CJK, a
# newline, a tab; with and without system prompts (two of them in one); R1-style reasoning.
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "the capital is Paris."}],
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "Add 2 and 3."},
     {"role": "assistant", "content": "5, because 2 + 3 = 5."},
     {"role": "user", "content": "And 10 and 20?"},
     {"role": "assistant", "content": " 30, with a space first."}],
    [{"role": "user", "content": "Say hi"},
     {"role": "assistant", "content": "\"Hi!\" - there you go."},
     {"role": "user", "content": "Again, in brackets."},
     {"role": "assistant", "content": "(Hi!) ...and once more: Hi."}],
    [{"role": "system", "content": "你是一个乐于助人的助手。"},
     {"role": "user", "content": "你好"},
     {"role": "assistant", "content": "你好！我是助手。有什么可以帮你？"},
     {"role": "user", "content": "日本語は？"},
     {"role": "assistant", "content": "はい、日本語も話せます。"}],
    [{"role": "system", "content": "First system prompt."},
     {"role": "user", "content": "line one\nline two"},
     {"role": "assistant", "content": "\nStarts with a newline.\n\n"},
     {"role": "system", "content": "Second system prompt."},
     {"role": "user", "content": "Code?"},
     {"role": "assistant", "content": "\tindented(x)\n    return x  "}],
    [{"role": "user", "content": "What is 2 + 2?"},
     {"role": "assistant", "content": "<think>\nThe user asks 2 + 2. That is 4.\n</think>\n\nThe answer is 4."},
     {"role": "user", "content": "And 3 + 3?"},
     {"role": "assistant", "content": "<think>6</think>6 😀"}],
    [{"role": "user", "content": "Say nothing."},
     {"role": "assistant", "content": ""},
     {"role": "user", "content": "User: a fake turn\n\nAssistant: inside"},
     {"role": "assistant", "content": "the end"}],
]


def target_mask(rendered, offsets, messages, name):
    """1 on tokens whose characters overlap a response or its closing end-of-sentence. The spans are
    found in the rendered text in order: each response comes after its role marker, then EOS."""
    spans, at = [], 0
    for m in messages:
        if m["role"] != "assistant":
            continue
        content = m["content"]
        if name == "deepseek-r1" and "</think>" in content:
            content = content.split("</think>")[-1]
        marker = "Assistant: " if name == "deepseek-v2" else ASSISTANT
        whole = marker + content + EOS
        start = rendered.index(whole, at)
        spans.append((start + len(marker), start + len(whole)))
        at = start + len(whole)
    return [int(any(b < e2 and s2 < e for s2, e2 in spans)) for b, e in offsets]


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    tokenizer_json = os.path.join(out_dir, "tokenizer.json")
    build_tokenizer(tokenizer_json)
    expected = {"transformers_version": transformers.__version__, "tokenizers_version": tokenizers.__version__,
                "conversations": CONVERSATIONS, "templates": []}
    for name, template in TEMPLATES.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        with open(tokenizer_json, encoding="utf-8") as f, open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as g:
            g.write(f.read())
        config = {"add_bos_token": name == "deepseek-v2", "add_eos_token": False, "bos_token": added_token(BOS),
                  "eos_token": added_token(EOS), "chat_template": template, "clean_up_tokenization_spaces": False,
                  "legacy": True, "model_max_length": 16384, "tokenizer_class": "LlamaTokenizerFast"}
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=2)
        with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
            back = json.load(f)
        tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"),
                                      bos_token=back["bos_token"]["content"], eos_token=back["eos_token"]["content"])
        tok.chat_template = back["chat_template"]
        cases = []
        for messages in CONVERSATIONS:
            out = tok.apply_chat_template(messages, tokenize=True)
            ids = list(out["input_ids"] if hasattr(out, "keys") else out)
            text = tok.apply_chat_template(messages, tokenize=False)
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            assert list(enc["input_ids"]) == ids, "apply_chat_template(tokenize=True) is the rendered text tokenized"
            cases.append({"ids": ids, "text": text, "mask": target_mask(text, enc["offset_mapping"], messages, name)})
        expected["templates"].append({"name": name, "dir": d, "cases": cases,
                                      "ids": {t: tok.convert_tokens_to_ids(t) for t in [BOS, EOS, USER, ASSISTANT, "Ġthe", ":"]}})
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
