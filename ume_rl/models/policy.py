"""The policy: a Qwen snapshot from the Hugging Face hub, or an offline tiny stand-in.

- :func:`download_qwen` fetches a Qwen snapshot into the Hugging Face cache (``HF_HUB_CACHE``).
- :func:`find_qwen_in_cache` returns the newest cached snapshot, or an error naming the fix.
- :func:`build_tiny_qwen` writes an offline stand-in: a real ``Qwen2ForCausalLM`` with a tiny config,
  a byte-level BPE tokenizer trained here and Qwen's ChatML chat template, and a manifest of its files last.
- :func:`cached_tiny_qwen` returns the stand-in cached in a directory, built when missing and built again when
  its files do not match their manifest (truncated, changed, or interrupted while writing).

>>> path = build_tiny_qwen("/tmp/ume_rl_doctest_qwen")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from ume_rl.models.integrity import manifest_problem, write_manifest
from ume_rl.rewards.modalities import TAG_TOKENS

logger = logging.getLogger(__name__)

QWEN_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Qwen2-Instruct's ChatML template: a default system turn, then <|im_start|>role\ncontent<|im_end|>.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# ----------------------------------------------------------------------------------------------- policy


def hub_cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE).expanduser()


def download_qwen(repo_id: str = "Qwen/Qwen2-0.5B-Instruct", cache_dir: str | Path | None = None) -> Path:
    """Download ``repo_id`` into the Hugging Face cache and return the snapshot directory.

    Honours ``HF_HUB_CACHE`` (or ``cache_dir``). With ``HF_HUB_OFFLINE=1`` or no network it returns the
    cached snapshot if there is one, else raises ``RuntimeError`` at once with the fix.
    """
    from huggingface_hub import snapshot_download

    cache = hub_cache_dir(cache_dir)
    try:
        return Path(snapshot_download(repo_id=repo_id, cache_dir=str(cache), etag_timeout=10))
    except Exception as err:  # huggingface_hub raises several unrelated types for "offline"
        raise RuntimeError(
            f"Could not download {repo_id!r} into {cache} ({type(err).__name__}: {err}). "
            "Fix: run on a machine with access to huggingface.co (unset HF_HUB_OFFLINE), or copy a "
            "downloaded snapshot into HF_HUB_CACHE, or use the offline profile: UME_RL_PROFILE=tiny."
        ) from err


def find_qwen_in_cache(cache_dir: str | Path | None = None, repo_id: str | None = None) -> Path:
    """Return the newest snapshot of a Qwen model (``repo_id`` if given) in the hub cache.

    Raises:
        FileNotFoundError: no snapshot with a ``config.json``; the message names the fix.
    """
    cache = hub_cache_dir(cache_dir)
    pattern = f"models--{repo_id.replace('/', '--')}" if repo_id else "models--Qwen--*"
    snapshots = [
        snap
        for model_dir in cache.glob(pattern)
        for snap in (model_dir / "snapshots").glob("*")
        if (snap / "config.json").is_file()
    ]
    if not snapshots:
        wanted = repo_id or "a Qwen model"
        raise FileNotFoundError(
            f"No snapshot of {wanted} in the Hugging Face cache {cache}. Fix: download it first "
            f"(ume_rl.download_qwen({(repo_id or 'Qwen/Qwen2-0.5B-Instruct')!r}) or notebook 01), set "
            "HF_HUB_CACHE to the cache that holds it, or use the offline profile: UME_RL_PROFILE=tiny."
        )
    return max(snapshots, key=lambda p: p.stat().st_mtime)


def build_tiny_qwen(
    out_dir: str | Path,
    seed: int = 0,
    corpus: list[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
) -> Path:
    """Write a tiny, untrained ``Qwen2ForCausalLM`` and its tokenizer to ``out_dir``; return ``out_dir``.

    The tokenizer is a byte-level BPE trained on ``corpus`` (default: the synthetic dataset's prompts,
    answers and sequences), with Qwen's special tokens, the sequence tags as whole tokens, the ChatML
    chat template, and ``input_ids``/``attention_mask`` as the only model inputs. The same ``seed``
    gives identical files. ``AutoModelForCausalLM``, ``AutoTokenizer`` and TRL load it from the path.
    ``hidden_size`` (a multiple of 16: 4 heads, 2 key-value heads) and ``num_hidden_layers`` set its size; the
    MLP is twice as wide as the hidden state.
    """
    if hidden_size % 16 or hidden_size <= 0 or num_hidden_layers < 1:
        raise ValueError(
            f"hidden_size must be a positive multiple of 16 and num_hidden_layers >= 1, got {hidden_size} and "
            f"{num_hidden_layers}"
        )
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from ume_rl.data.generate import tokenizer_corpus

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = corpus if corpus is not None else tokenizer_corpus(seed=seed)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens(list(TAG_TOKENS))  # whole-token tags, decoded as text (not special)
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(out_dir)

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id], pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out_dir)
    (out_dir / "ume_rl_tiny.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "vocab_size": vocab_size,
                "hidden_size": hidden_size,
                "num_hidden_layers": num_hidden_layers,
            }
        )
    )
    write_manifest(out_dir)  # last: the directory is complete
    logger.info("built tiny Qwen2 (%d parameters) at %s", model.num_parameters(), out_dir)
    return out_dir


def cached_tiny_qwen(
    out_dir: str | Path, seed: int = 0, corpus: Callable[[], list[str]] | None = None
) -> Path:
    """The tiny Qwen2 cached in ``out_dir``: built there (:func:`build_tiny_qwen`, tokenizer trained on
    ``corpus()``) when missing; a directory whose files do not match its manifest is logged and built again,
    never loaded. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    problem = manifest_problem(out_dir) if out_dir.exists() else None
    if out_dir.exists() and problem is None:
        return out_dir
    if problem is not None:
        logger.warning("the cached tiny policy in %s is not usable (%s): building it again", out_dir, problem)
    staging = out_dir.with_name(f".{out_dir.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    build_tiny_qwen(staging, seed=seed, corpus=corpus() if corpus is not None else None)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return out_dir
