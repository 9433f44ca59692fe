"""Small ESM-style masked LMs with rotary positions, one per modality, trained here on the real corpus.

>>> folder = train_small_esm("runs/models/my-esm")  # doctest: +SKIP
>>> from ume_rl.models.masked_lms import load_reward_model
>>> protein = load_reward_model(folder / "amino_acid", "amino_acid")  # the any-masked-LM path  # doctest: +SKIP
>>> models = demo_esm_models(runs_dir)  # trained once (minutes), reused afterwards  # doctest: +SKIP

Why beside the small UME: lobster's FlexBERT has only absolute positions on CPU (RoPE needs flash-attn), so
what a head learns about a residue's neighbours must be learnt again at every position. ``transformers``'
``EsmForMaskedLM`` with ``position_embedding_type="rotary"`` (ESM-2's positions) learns it once: in the same
token budget it separates shuffled DNA and protein from real ones better, out of source
(``benchmarks/small_ume_quality.py``, README). It is scored through the any-masked-LM path
(:func:`~ume_rl.models.masked_lms.load_reward_model`, :class:`~ume_rl.rewards.engine.hf_scoring.HFMaskedLMScorer`).

What is whose: the model is ``transformers``' ESM; masking is ``DataCollatorForLanguageModeling`` (of the
tokens picked for the loss, 80 % shown as ``<mask>``; for SMILES the rest kept, since BERT's 10 % random tokens
cost 0.03 AUROC out of source; for protein and DNA 10 % random, 10 % kept; README); the optimiser, schedule and
loop are ``transformers``' ``Trainer`` (AdamW, linear warm-up then cosine). Written here: the tokenizers (one
token per residue; SMILES atoms by the usual regex: bracket atoms, ``Br``/``Cl`` and ``%nn`` whole, an unseen
bracket atom as its characters) and the batches, packed as the small UME's are
(:func:`~ume_rl.models.small_ume.pack_by_length`): each modality's model gets its share of the steps
(``token_shares``, 13 : 2 : 4 by default), SMILES whole molecules, protein and DNA random crops, drawn
``pack_pool`` at a time and packed by length into batches of at most ``batch_tokens`` padded tokens. On a CPU the
step runs the plain attention product and the LM head on the picked tokens only (``fast_cpu_step``: the same loss,
less time; ``benchmarks/small_esm_speed.py``). ``demo-esm``'s first use trains SMILES (the most steps) while a
forked process trains protein and DNA, each on one thread; SMILES takes both threads when the other process ends
(``train_small_esm(background=True)``; ``benchmarks/small_esm_first_use.py``).

Files: ``<out_dir>/<modality>/`` (``save_pretrained`` model and tokenizer, then a manifest of sizes and
sha256, :mod:`ume_rl.models.integrity`), and ``<out_dir>/small_esm.json`` (config, corpus provenance, steps, tokens,
seconds and loss curve per modality), written last. A folder that does not match its manifest or sidecar is
trained again, never loaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ume_rl.models.integrity import manifest_problem, write_json_atomic, write_manifest
from ume_rl.models.small_ume import SmallEncoderConfig, pack_by_length, random_window
from ume_rl.rewards.modalities import MODALITIES, spec

logger = logging.getLogger(__name__)

SIDECAR_NAME = "small_esm.json"
SPECIAL_TOKENS = ("<cls>", "<pad>", "<eos>", "<unk>", "<mask>")
SMILES_PATTERN = r"\[[^\[\]]*\]|Br|Cl|%\d\d|."
"""SMILES words: bracket atoms (``[nH]``, ``[C@@H]``, ``[O-]``), two-letter elements outside brackets and ring
bonds ``%nn`` whole, else one character. A bracket atom no training molecule has is read character by character."""


def _is_molecule(modality: str) -> bool:
    """A modality without a residue alphabet (a parser validates it: SMILES): examples are whole molecules,
    tokens atoms; the others are cropped windows, one token per residue."""
    return spec(modality).alphabet is None


@dataclass(frozen=True)
class SmallEsmConfig(SmallEncoderConfig):
    """Architecture and budget of the small ESM-style models (one per modality, sharing ``steps``); the shape,
    batches and optimizer are the small UME's, at half its learning rate."""

    steps: int = field(
        default=5590,
        metadata={
            "help": "Optimizer steps (all modalities together): under 5 minutes on the 2-core reference machine, "
            "protein and DNA trained beside SMILES; 5-6 minutes one after the other on 2 threads (README)."
        },
    )
    token_shares: tuple[float, float, float] = field(
        default=(13.0, 2.0, 4.0),
        metadata={
            "help": "Relative steps per modality (SMILES, protein, DNA): each model's share of `steps` (3,825 / 588 / "
            "1,177 by default). SMILES keep improving with steps; protein's loss flattens within ~500; DNA's "
            "separation from shuffles still grows from 570 to 1,140 steps."
        },
    )
    lr: float = field(
        default=1e-3,
        metadata={
            "help": "Peak learning rate (AdamW). Half the small UME's 2e-3: at the same steps, out of source +0.01 "
            "AUROC for SMILES, +0.007 (1,140 steps) to +0.02 (570) for DNA, +0.005 for protein (README)."
        },
    )
    pack_pool: int = field(
        default=4096,
        metadata={
            "help": "Examples drawn at a time, sorted by length and cut into batches. At 4,096, padding is 0.4-1.7 % "
            "of the padded tokens and batches hold 1,960-1,980 real tokens; at 256, 6-11 % and 1,590-1,810 (SMILES "
            "the most wasteful)."
        },
    )
    fast_cpu_step: bool = field(
        default=True,
        metadata={
            "help": "On a CPU, train with the plain attention product (PyTorch's SDPA kernel is slower at these "
            "lengths) and the LM head on the picked tokens only: the same loss in 12-15 % less time per step "
            "(benchmarks/small_esm_speed.py). False: EsmForMaskedLM's own forward with SDPA."
        },
    )
    shown_as_mask: float = field(
        default=0.8,
        metadata={
            "help": "Of the tokens picked for the loss, the share the model sees as <mask> (the rest: random or kept)."
        },
    )
    shown_as_random: tuple[float, float, float] = field(
        default=(0.0, 0.1, 0.1),
        metadata={
            "help": "Per modality (SMILES, protein, DNA), of the tokens picked for the loss, the share shown as a "
            "random token (BERT's 0.1). SMILES 0: out of source vs 20 %-mutated copies 0.879-0.889 in place of 0.854 "
            "at the same steps; protein and DNA gain nothing without them and keep 0.1 (README)."
        },
    )

    def __post_init__(self):
        shown = (self.shown_as_mask, *self.shown_as_random)
        if len(self.shown_as_random) != len(MODALITIES) or min(shown) < 0 or max(shown[1:]) + shown[0] > 1:
            raise ValueError(
                "shown_as_random needs one share >= 0 per modality, each at most 1 - shown_as_mask; got "
                f"shown_as_mask {self.shown_as_mask}, shown_as_random {self.shown_as_random}"
            )
        if len(self.token_shares) != len(MODALITIES) or min(self.token_shares) <= 0:
            raise ValueError(f"token_shares needs one positive share per modality, got {self.token_shares}")
        if not 0 < self.mask_percentage < 1:
            raise ValueError(f"mask_percentage must be in (0, 1), got {self.mask_percentage}")
        if self.pack_pool < 1:
            raise ValueError(f"pack_pool must be at least 1, got {self.pack_pool}")

    def random_share_of(self, modality: str) -> float:
        """This modality's ``shown_as_random``."""
        return self.shown_as_random[MODALITIES.index(modality)]

    def steps_of(self, modality: str) -> int:
        """This modality's optimizer steps: its share of ``steps`` (at least 1)."""
        share = self.token_shares[MODALITIES.index(modality)]
        return max(1, round(self.steps * share / sum(self.token_shares)))

    @property
    def name(self) -> str:
        """Folder name under ``runs/models``: the settings that shape the model, and the budget."""
        return f"esm_rl_{self.shape}-s{self.steps}-seed{self.seed}"


def build_tokenizer(modality: str, sequences):
    """A ``PreTrainedTokenizerFast`` for ``modality`` whose vocabulary is every word in ``sequences`` (residues;
    SMILES by :data:`SMILES_PATTERN`) and every character in them, after the special tokens; ``<cls> … <eos>``
    around each sequence. A word not in the vocabulary (a bracket atom no training molecule has) is read as its
    characters; a character no training sequence has is ``<unk>`` (the reward engine scores such a sequence NaN,
    then the reward's penalty)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pattern = SMILES_PATTERN if _is_molecule(modality) else "."
    split = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    seen = Counter(word for seq in sequences for word, _ in split.pre_tokenize_str(seq))
    if not seen:
        raise ValueError(f"no {modality} sequence to build a vocabulary from")
    characters = {char for word in seen for char in word}  # what an unseen bracket atom falls back to
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *sorted(characters | set(seen))])}
    # WordPiece with no continuation prefix: a known word whole, an unknown one as its longest known pieces
    # from the left (here: characters); a character no training sequence has is <unk>
    tokenizer = Tokenizer(
        models.WordPiece(vocab, unk_token="<unk>", continuing_subword_prefix="", max_input_chars_per_word=512)
    )
    tokenizer.pre_tokenizer = split
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<cls> $A <eos>", special_tokens=[("<cls>", vocab["<cls>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        cls_token="<cls>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=512,
    )


def build_model(config: SmallEsmConfig, tokenizer):
    """An untrained ``EsmForMaskedLM`` with rotary positions (ESM-2's), SDPA attention, no token dropout."""
    from transformers import EsmConfig, EsmForMaskedLM

    esm_config = EsmConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        position_embedding_type="rotary",
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        token_dropout=False,  # ESM-2 rescales embeddings by the mask ratio; the scorer masks one token
        emb_layer_norm_before=False,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="sdpa",
    )
    return EsmForMaskedLM(esm_config)


def build_masking(config: SmallEsmConfig, tokenizer, modality: str):
    """``transformers``' ``DataCollatorForLanguageModeling``: pads a list of ``{"input_ids": ...}``, picks
    ``mask_percentage`` of the non-special tokens for the loss and shows them as ``<mask>`` (``shown_as_mask``),
    as a random token (``modality``'s ``shown_as_random``) or unchanged (the rest)."""
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(
        tokenizer,
        mlm_probability=config.mask_percentage,
        mask_replace_prob=config.shown_as_mask,
        random_replace_prob=config.random_share_of(modality),
    )


class PickedTokensLoss(torch.nn.Module):
    """``model``'s masked-LM loss with the LM head run on the picked tokens only (the loss is theirs alone;
    ``EsmForMaskedLM`` runs the head on every token): the same loss as ``model(**batch).loss``, in less time."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        hidden = self.model.esm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        picked = labels != -100
        logits = self.model.lm_head(hidden[picked])
        return {"loss": torch.nn.functional.cross_entropy(logits, labels[picked])}


class ModalityBatches(torch.utils.data.IterableDataset):
    """Endless batches (lists of token-id lists, sorted by length within pools of ``pack_pool``) of one modality's
    train split: SMILES whole (at most ``max_tokens``), protein and DNA random crops of ``min_crop``..``max_tokens - 2``."""

    def __init__(self, tokenizer, sequences, modality: str, config: SmallEsmConfig, seed: int):
        super().__init__()
        self.tokenizer, self.modality, self.config, self.seed = tokenizer, modality, config, seed
        self.sequences = list(sequences)
        self.molecules = _is_molecule(modality)
        if self.molecules:
            ids = tokenizer(self.sequences)["input_ids"]
            self.whole = [x for x in ids if len(x) <= config.max_tokens]
        if not self.sequences or (self.molecules and not self.whole):
            raise ValueError(f"no {modality} training sequence")

    def _example(self, rng: random.Random) -> list[int]:
        if self.molecules:
            return rng.choice(self.whole)
        seq = rng.choice(self.sequences)
        window = random_window(seq, rng, self.config.min_crop, self.config.max_tokens - 2)
        return self.tokenizer(window)["input_ids"]

    def __iter__(self) -> Iterator[list[list[int]]]:
        rng = random.Random(self.seed)
        while True:
            pool = [self._example(rng) for _ in range(self.config.pack_pool)]
            yield from pack_by_length(pool, len, self.config.batch_tokens, rng)


def train_modality(
    modality: str, sequences, config: SmallEsmConfig, out_dir: str | Path, seed: int, callbacks=()
) -> dict:
    """Train ``modality``'s model on ``sequences`` for ``config.steps_of(modality)`` steps with ``transformers``'
    ``Trainer`` (with ``callbacks`` added) and save it, with its tokenizer and manifest, to ``out_dir/<modality>/``.

    Returns:
        ``{"seconds", "steps", "tokens" (non-pad tokens of the batches drawn: the trained ones, and the one batch
        the loader may have drawn ahead), "losses" (every logging step's)}``.
    """
    from transformers import PrinterCallback, Trainer, TrainingArguments

    tokenizer = build_tokenizer(modality, sequences)
    torch.manual_seed(seed)
    model = build_model(config, tokenizer)
    fast = config.fast_cpu_step and not torch.cuda.is_available()
    if fast:
        model.set_attn_implementation("eager")  # while training; set back to SDPA before saving
    masking = build_masking(config, tokenizer, modality)
    tokens = 0

    def collate(items):  # one item per step: a whole batch, padded and masked by the collator
        nonlocal tokens
        (batch,) = items
        tokens += sum(map(len, batch))
        return masking([{"input_ids": ids} for ids in batch])

    losses: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            max_steps=config.steps_of(modality),
            per_device_train_batch_size=1,
            learning_rate=config.lr,
            lr_scheduler_type="cosine",
            warmup_steps=config.warmup_steps,
            weight_decay=config.weight_decay,
            max_grad_norm=1.0,
            logging_steps=max(1, min(50, config.steps_of(modality) // 10)),  # a loss curve of >= 10 points
            save_strategy="no",
            report_to=[],
            use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0,
            remove_unused_columns=False,
            disable_tqdm=True,
            seed=seed,
        )
        trainer = Trainer(
            model=PickedTokensLoss(model) if fast else model,
            args=args,
            train_dataset=ModalityBatches(tokenizer, sequences, modality, config, seed),
            data_collator=collate,
            callbacks=list(callbacks),
        )
        trainer.remove_callback(PrinterCallback)  # the losses go to the sidecar, not to stdout
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    folder = Path(out_dir) / modality
    model.set_attn_implementation("sdpa")
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_manifest(folder)
    logger.info(
        "trained the small ESM for %s: %d steps in %.0f s", modality, config.steps_of(modality), seconds
    )
    return {
        "seconds": round(seconds, 1),
        "steps": config.steps_of(modality),
        "tokens": tokens,
        "losses": losses,
    }


def _train_in_background(
    modalities, sequences: dict, config: SmallEsmConfig, out_dir, seeds: dict, threads, conn
):
    """The background process: :func:`train_modality` for each of ``modalities`` on ``threads`` torch threads; sends
    ``("runs", {modality: run})`` or ``("error", traceback)`` through ``conn``."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # forked after the parent's tokenizers ran: quiet and safe
    try:
        torch.set_num_threads(threads)
        runs = {m: train_modality(m, sequences[m], config, out_dir, seeds[m]) for m in modalities}
        conn.send(("runs", runs))
    except BaseException:  # noqa: BLE001 - every failure goes to the parent, which raises it
        import traceback

        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def background_supported(num_threads: int | None = 2) -> bool:
    """Whether :func:`train_small_esm` can train beside a background process on ``num_threads`` threads here: at
    least 2 threads (one per process), Linux (``fork``), no CUDA device (a GPU trains the models one after the
    other), at least 2 CPU cores."""
    import sys

    return (
        num_threads is not None
        and num_threads >= 2
        and sys.platform == "linux"
        and not torch.cuda.is_available()
        and (os.cpu_count() or 1) >= 2
    )


def _train_beside(corpus, config: SmallEsmConfig, out_dir: Path, seeds: dict, threads: int) -> dict:
    """The modality with the most steps trains here while a forked process trains the others, each on half of
    ``threads``; when the process ends, this one takes all ``threads`` for the steps left."""
    import multiprocessing

    from transformers import TrainerCallback

    here = max(MODALITIES, key=config.steps_of)
    rest = [m for m in MODALITIES if m != here]
    beside = max(1, threads // 2)
    fork = multiprocessing.get_context("fork")  # the child inherits the corpus and imports: it starts at once
    receive, send = fork.Pipe(duplex=False)
    process = fork.Process(
        target=_train_in_background,
        args=(rest, {m: corpus.sequences(m, "train") for m in rest}, config, out_dir, seeds, beside, send),
        daemon=True,
    )

    class TakeAllThreads(TrainerCallback):
        """Set torch's threads to ``threads`` at the first step after the background process has ended."""

        step = None  # where it did

        def on_step_begin(self, args, state, control, **kwargs):
            if self.step is None and (receive.poll() or not process.is_alive()):
                torch.set_num_threads(threads)
                self.step = state.global_step

    torch.set_num_threads(max(1, threads - beside))
    process.start()
    send.close()  # the child's end: receive() sees EOF if the child dies without a word
    try:
        take = TakeAllThreads()
        runs = {
            here: train_modality(here, corpus.sequences(here, "train"), config, out_dir, seeds[here], [take])
        }
        runs[here]["all_threads_from_step"] = take.step  # None: the other process ended after this one
        try:
            kind, payload = receive.recv()
        except EOFError:
            kind, payload = "error", "it ended without a result"
        process.join()
        if kind != "runs":
            raise RuntimeError(f"training {', '.join(rest)} in the background process failed: {payload}")
        runs.update(payload)
    finally:
        if process.is_alive():
            process.terminate()
            process.join()
        receive.close()
    return {m: runs[m] for m in MODALITIES}


def train_small_esm(
    out_dir: str | Path,
    corpus=None,
    config: SmallEsmConfig | None = None,
    num_threads: int | None = 1,
    background: bool = False,
) -> Path:
    """Train one small ESM-style model per modality on ``corpus``'s train split (default:
    :func:`~ume_rl.data.corpus.load_real_corpus` with the config's seed) into ``out_dir/<modality>/``; the
    sidecar ``small_esm.json`` is written last.

    Args:
        out_dir: output directory (created).
        corpus: a :class:`~ume_rl.data.corpus.RealCorpus`.
        config: architecture and budget (default :class:`SmallEsmConfig`).
        num_threads: torch CPU threads while training (restored after); ``None`` leaves torch's setting.
        background: where :func:`background_supported` (``num_threads`` >= 2 among its conditions), train the
            modality with the most steps here while a forked process trains the others, each on half the threads;
            this process takes them all when the other ends: two one-thread processes do more work than one
            two-thread process on models this small (``benchmarks/small_esm_first_use.py``). The models trained on
            one thread in the other process are the same, to the bit, as trained alone on one thread; the one
            trained here, up to the rounding that its change of thread count brings.

    Returns:
        ``out_dir``; load a modality with ``load_reward_model(out_dir / modality, modality)``.

    Raises:
        ValueError: ``background`` without the threads or the platform for it.
    """
    from ume_rl.data.corpus import load_real_corpus
    from ume_rl.models.small_ume import corpus_record

    config = config or SmallEsmConfig()
    if background and not background_supported(num_threads):
        raise ValueError(
            "background training needs num_threads >= 2, Linux and no CUDA device "
            f"(background_supported(num_threads)); got num_threads={num_threads}: pass background=False"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = corpus if corpus is not None else load_real_corpus(seed=config.seed, progress=False)
    seeds = {modality: config.seed * 10 + offset for offset, modality in enumerate(MODALITIES)}
    threads = torch.get_num_threads()
    start = time.perf_counter()
    with contextlib.ExitStack() as restore:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
            restore.callback(torch.set_num_threads, threads)
        if background:
            runs = _train_beside(corpus, config, out_dir, seeds, num_threads)
        else:
            runs = {
                m: train_modality(m, corpus.sequences(m, "train"), config, out_dir, seeds[m])
                for m in MODALITIES
            }
    write_json_atomic(
        out_dir / SIDECAR_NAME,
        {
            "config": asdict(config),
            "corpus": corpus_record(corpus),
            "runs": runs,
            "torch_threads": num_threads or threads,
            "background": background,
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    return out_dir


def esm_problem(out_dir: str | Path, config: SmallEsmConfig, corpus=None) -> str | None:
    """Why the models in ``out_dir`` cannot be used for ``config`` (``None``: they can): no or unreadable
    sidecar, other settings, another corpus (with ``corpus``), or a modality folder that does not match its
    manifest."""
    from ume_rl.models.small_ume import settings_problem

    out_dir = Path(out_dir)
    try:
        sidecar = json.loads((out_dir / SIDECAR_NAME).read_text())
    except FileNotFoundError:
        return "no sidecar (not trained, or interrupted while writing)"
    except (OSError, ValueError) as err:
        return f"unreadable sidecar ({type(err).__name__})"
    problem = settings_problem(sidecar, config, corpus)
    if problem is not None:
        return problem
    for modality in MODALITIES:
        problem = manifest_problem(out_dir / modality)
        if problem is not None:
            return f"{modality}: {problem}"
    return None


DEMO_CONFIG = SmallEsmConfig()
"""What the ``demo-esm`` name trains (:func:`demo_esm_models` without a config)."""
DEMO_THREADS = min(2, os.cpu_count() or 1)
"""torch threads for the ``demo-esm`` first training: 2 run one of these models 1.43x as fast as 1 on the 2-core
reference machine (``benchmarks/small_esm_threads.py``), and two one-thread processes, SMILES beside protein and DNA,
finish the three 1.15x sooner than one two-thread process (``benchmarks/small_esm_first_use.py``; README); more
threads were not measured."""


def demo_esm_models(runs_dir: str | Path, config: SmallEsmConfig | None = None) -> Path:
    """The small ESM-style models under ``runs_dir/models/<config.name>/``: trained on first use (a few CPU
    minutes), reused after; a folder that fails :func:`esm_problem` is logged and trained again. Training holds
    a lock file, so two processes never train the same models at once.

    Returns:
        The folder; ``folder / modality`` is what :func:`~ume_rl.models.masked_lms.load_reward_model` loads.
    """
    from ume_rl.data.corpus import load_real_corpus
    from ume_rl.models.small_ume import exclusive

    config = config or DEMO_CONFIG
    corpus = load_real_corpus(seed=config.seed, progress=False)
    out_dir = Path(runs_dir) / "models" / config.name
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(out_dir):
        problem = esm_problem(out_dir, config, corpus)
        if problem is None:
            return out_dir
        if not problem.startswith("no sidecar"):
            logger.warning(
                "small ESM models in %s are not usable (%s): training them again", out_dir, problem
            )
        (out_dir / SIDECAR_NAME).unlink(missing_ok=True)
        for modality in MODALITIES:
            shutil.rmtree(out_dir / modality, ignore_errors=True)
        logger.info(
            "training the small ESM models (%d steps; a few minutes on a CPU, once) into %s",
            config.steps,
            out_dir,
        )
        return train_small_esm(
            out_dir, corpus, config, num_threads=DEMO_THREADS, background=background_supported(DEMO_THREADS)
        )
