"""Any Hugging Face masked LM as a reward model for one modality (ESM-2, ChemBERTa, Nucleotide Transformer, ...).

- :func:`load_reward_model` takes a hub id or a local directory of an ``AutoModelForMaskedLM`` (never with
  ``trust_remote_code``), or anything :func:`~ume_rl.models.ume.load_ume` takes, and returns what
  :class:`~ume_rl.rewards.masked_lm.MaskedLMReward` scores a modality with;
- :func:`download_reward_model` fetches a hub model into the Hugging Face cache once (offline with no cached
  copy: an error naming the fix);
- :func:`build_tiny_masked_lm` builds offline stand-ins shaped like those public models (tiny, untrained).

>>> esm2 = load_reward_model("facebook/esm2_t6_8M_UR50D", "amino_acid")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import random
import tempfile
from pathlib import Path

import torch

from ume_rl.models.integrity import WEIGHT_FILES
from ume_rl.models.names import resolve
from ume_rl.models.policy import hub_cache_dir
from ume_rl.models.ume import load_ume

logger = logging.getLogger(__name__)

REWARD_MODEL_FILES = ("*.json", "*.txt", "*.model", "*.safetensors")
"""Files :func:`download_reward_model` fetches (config, tokenizer, safetensors weights; never TF/Flax weights)."""

ESM2_VOCAB = ("<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO.-", "<null_1>", "<mask>")
"""ESM-2's vocabulary (``facebook/esm2_*``), in id order."""


def download_reward_model(repo_id: str, cache_dir: str | Path | None = None) -> Path:
    """Fetch a hub masked LM (config, tokenizer, weights) into the Hugging Face cache once; return its snapshot.

    Safetensors weights when the repository has them, else ``pytorch_model*.bin`` (ChemBERTa and the Nucleotide
    Transformer v1 ship only those). With ``HF_HUB_OFFLINE=1`` or no network it returns the cached snapshot if
    there is one, else raises ``RuntimeError`` naming the fix.
    """
    from huggingface_hub import snapshot_download

    cache = hub_cache_dir(cache_dir)
    try:
        snapshot = Path(
            snapshot_download(
                repo_id=repo_id,
                cache_dir=str(cache),
                allow_patterns=list(REWARD_MODEL_FILES),
                etag_timeout=10,
            )
        )
        if not any((snapshot / f).is_file() for f in WEIGHT_FILES):
            snapshot = Path(
                snapshot_download(
                    repo_id=repo_id,
                    cache_dir=str(cache),
                    allow_patterns=["pytorch_model*.bin"],
                    etag_timeout=10,
                )
            )
    except Exception as err:  # huggingface_hub raises several unrelated types for "offline"
        raise RuntimeError(
            f"Could not download the reward model {repo_id!r} into {cache} ({type(err).__name__}: {err}). Fix: "
            f"download it once on a machine with access to huggingface.co (notebook 01 with this recipe, or "
            f"ume_rl.models.masked_lms.download_reward_model({repo_id!r}); unset HF_HUB_OFFLINE), set HF_HUB_CACHE to a "
            "cache that holds it, or pass a local directory."
        ) from err
    return snapshot


def _demo_esm_folder(runs_dir) -> Path:
    from ume_rl.models.small_esm import demo_esm_models

    if runs_dir is None:
        raise ValueError(
            "the 'demo-esm' models are trained and cached under a runs directory: pass runs_dir "
            "(ume_rl.profiles.runs_dir() is the project's)"
        )
    return demo_esm_models(runs_dir)


def _load_masked_lm(source: Path, name: str):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    if not (source / "config.json").is_file() or not any((source / f).is_file() for f in WEIGHT_FILES):
        raise FileNotFoundError(
            f"{name}: {source} holds no complete masked LM (config.json and weights: {', '.join(WEIGHT_FILES)}). "
            "Fix: download it again (ume_rl.models.masked_lms.download_reward_model, online) or pass a directory written by "
            "save_pretrained."
        )
    try:
        model = AutoModelForMaskedLM.from_pretrained(source, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except ValueError as err:
        if "trust_remote_code" not in str(err):
            raise
        raise ValueError(
            f"{name} needs trust_remote_code=True (code from the hub), which ume_rl never enables. Fix: pick a "
            "masked LM transformers supports natively (ESM-2, ChemBERTa, Nucleotide Transformer v1, BERT-like)."
        ) from err
    return model, tokenizer


def load_reward_model(
    name_or_path: str | Path,
    modality,
    device: str | torch.device | None = None,
    runs_dir: str | Path | None = None,
):
    """A reward model for ``modality``, frozen, in eval mode, on ``device``.

    Args:
        name_or_path: read by :func:`~ume_rl.models.names.resolve`: a Hugging Face hub id
            (``facebook/esm2_t6_8M_UR50D``), a local directory written by ``save_pretrained``, or anything
            :func:`load_ume` takes (``"tiny"``, ``"demo"``, a ``.ckpt``, ``ume-…``), or ``"demo-esm"`` (this
            modality's small ESM-style model, :func:`~ume_rl.models.small_esm.demo_esm_models`).
        modality: what it scores (``"amino_acid"``, ``"protein"``, ``"SMILES"``, ``"DNA"``...).
        device: default ``cuda`` when available, else ``cpu``.
        runs_dir: where the ``"demo"`` UME and the ``"demo-esm"`` models are trained on first use and cached.

    Returns:
        A lobster ``UME`` for UME names, else a :class:`~ume_rl.rewards.engine.hf_scoring.MaskedLM` (model, tokenizer,
        modality); :class:`~ume_rl.rewards.masked_lm.MaskedLMReward` takes either, per modality. Hub models come from the
        cache, downloaded once (:func:`download_reward_model`); ``trust_remote_code`` is never enabled.

    Raises:
        RuntimeError: an uncached hub model while offline; names the fix.
        FileNotFoundError: a directory without a complete model.
    """
    from ume_rl.rewards.engine.hf_scoring import MaskedLM
    from ume_rl.rewards.modalities import normalize_modality

    modality = normalize_modality(modality)
    name = str(name_or_path)
    ref = resolve(name)
    if ref.is_ume:
        return load_ume(name, device=device, runs_dir=runs_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if ref.kind == "demo-esm":
        source = _demo_esm_folder(runs_dir) / modality
    else:
        source = Path(ref.location) if ref.is_local else download_reward_model(name)
    model, tokenizer = _load_masked_lm(source, name)
    model.requires_grad_(False)
    logger.info(
        "loaded %s (%s, %d parameters) for %s", name, type(model).__name__, model.num_parameters(), modality
    )
    return MaskedLM(model.eval().to(device), tokenizer, modality, name)


def _tiny_tokenizer(family: str, work_dir: Path, seed: int):
    from tokenizers import Tokenizer, models, processors, trainers
    from transformers import EsmTokenizer, PreTrainedTokenizerFast

    if family == "esm2":  # one token per residue, <cls> … <eos>
        (work_dir / "vocab.txt").write_text("\n".join(ESM2_VOCAB))
        return EsmTokenizer(str(work_dir / "vocab.txt"))
    if family == "nucleotide_transformer":  # v1: 6-mers, then single nucleotides; <cls> only
        kmers = ["".join(p) for p in itertools.product("ATCG", repeat=6)]
        (work_dir / "vocab.txt").write_text(
            "\n".join(["<unk>", "<pad>", "<mask>", "<cls>", *kmers, *"ATCGN"])
        )
        return EsmTokenizer(str(work_dir / "vocab.txt"), eos_token=None, model_max_length=1000)
    if family != "chemberta":
        raise ValueError(f"no offline stand-in for the masked-LM family {family!r}")
    # ChemBERTa: a RoBERTa BPE over SMILES characters, <s> … </s>
    from ume_rl.data.generate import random_smiles

    rng = random.Random(seed)
    corpus = [random_smiles(rng) for _ in range(300)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    alphabet = list("BCNOPSFIHKbcnops()[]=#@+-\\/%.0123456789lr")
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=120, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
        ),
    )
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=512,
    )


def build_tiny_masked_lm(modality, seed: int = 0, out_dir: str | Path | None = None):
    """An untrained masked LM shaped like the public model of ``modality`` (the modality table's
    ``public_masked_lm``), with a tokenizer built here.

    - ``esm2`` (protein): ``EsmForMaskedLM`` with ESM-2's vocabulary, rotary positions, token dropout;
    - ``nucleotide_transformer`` (DNA): ``EsmForMaskedLM`` with 6-mer tokens, learned positions, ``<cls>`` only
      (Nucleotide Transformer v1);
    - ``chemberta`` (SMILES): ``RobertaForMaskedLM`` with a BPE trained on this package's random SMILES.

    Two layers, hidden size 32; the weights depend on ``seed`` alone. With ``out_dir`` the model and tokenizer
    are saved there (``save_pretrained``), so :func:`load_reward_model` loads them like a hub snapshot.
    Returns a :class:`~ume_rl.rewards.engine.hf_scoring.MaskedLM`.
    """
    from transformers import EsmConfig, EsmForMaskedLM, RobertaConfig, RobertaForMaskedLM

    from ume_rl.rewards.engine.hf_scoring import MaskedLM
    from ume_rl.rewards.modalities import spec

    modality = spec(modality).name
    family = spec(modality).public_masked_lm
    with tempfile.TemporaryDirectory() as work:
        tokenizer = _tiny_tokenizer(family, Path(work), seed)
    shape = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    ids = {"pad_token_id": tokenizer.pad_token_id, "vocab_size": len(tokenizer)}
    if family == "chemberta":
        config = RobertaConfig(**shape, **ids, max_position_embeddings=514, bos_token_id=0, eos_token_id=2)
        model_class = RobertaForMaskedLM
    else:
        esm2 = family == "esm2"
        config = EsmConfig(
            **shape,
            **ids,
            mask_token_id=tokenizer.mask_token_id,
            max_position_embeddings=1026 if esm2 else 1002,
            position_embedding_type="rotary" if esm2 else "absolute",
            token_dropout=True,
            emb_layer_norm_before=False,
        )
        model_class = EsmForMaskedLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config).eval()
    model.requires_grad_(False)
    name = f"tiny-{model.config.model_type}-{modality}"
    if out_dir is not None:
        out_dir = Path(out_dir)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        name = str(out_dir)
    return MaskedLM(model, tokenizer, modality, name)
