"""A small UME trained here, on the real corpus, with lobster's ``UME`` Lightning module and a Lightning Trainer.

>>> ckpt = train_small_ume("runs/models/my-ume")  # doctest: +SKIP
>>> from ume_rl.models.ume import load_ume
>>> ume = load_ume(ckpt)  # the path a user with a real UME checkpoint takes  # doctest: +SKIP
>>> ckpt = demo_ume_checkpoint(runs_dir)  # trained once (minutes), reused afterwards  # doctest: +SKIP

What is lobster's and what is not: the model is lobster's ``UME`` (FlexBERT encoder, lobster's SMILES /
amino-acid / nucleotide tokenizers, ``training_step``, ``configure_optimizers`` (AdamW + a transformers
schedule), masking (``FlexBERT._mask_inputs``, 25% of residue tokens) and loss). One method is replaced,
:meth:`CpuMlmUME._compute_mlm_loss`: lobster's flattens every batch for the unpadded flash-attn layout;
on CPU, lobster's padded layout cannot run it (``ValueError``) and its unpadded layout without flash-attn
attends across all sequences of a batch. The replacement runs the same masking, encoder, decoder and loss
on the padded layout, applies the decoder only at the masked positions (the loss is the same), and logs
the loss per modality instead of lobster's full-vocabulary perplexity metrics.

The checkpoint is an ordinary lobster checkpoint: ``hyper_parameters`` name the architecture
(``UME_rl_h<hidden>_l<layers>_a<heads>_i<ffn>``) and carry a ``ckpt_path``, so
``UME.load_from_checkpoint`` builds the unpadded layout real UME checkpoints use;
``ume_rl.models.ume.load_ume`` registers the architecture (stored in the checkpoint under ``ume_rl``) first.
Optimizer state is not saved (the file is the weights).

The default (:class:`SmallUmeConfig`): a 2-layer FlexBERT (hidden 128, 4 heads, MLP 256; 0.6M parameters,
a 2.4 MB checkpoint), 3,400 steps of at most 2,048 tokens, SMILES twice the tokens of protein or DNA, each
example at a random position shift of 0-150, AdamW lr 2e-3, cosine, a few CPU minutes on one torch thread. Its cost, held-out quality
(``ume_rl.inspection.quality``) and what other budgets buy (``benchmarks/small_ume_quality.py``): see the
README, which also says why SMILES get the larger share.
Why so small and so many steps: lobster's FlexBERT has no relative positions on CPU (sin-cos absolute
positions; RoPE needs flash-attn), and learning to read a residue's neighbours is a late phase transition
(~1,000 steps here); the number of steps, more than model size, decides what a few CPU minutes buy.
Absolute positions also mean a head learns "read the neighbour" separately at each position: SMILES (short,
strongly ordered) teach it at the first ~60 positions, and DNA and protein signal is too weak to teach it
further along (``benchmarks/position_probe.py``). ``position_shift`` starts each training example at a random
position, so SMILES teach it at every position the reward scores; scoring still starts at 0.

Batches: examples are drawn so each modality gets its share of tokens (``token_shares``); SMILES are whole
molecules, proteins and DNA windows random crops of ``min_crop``..``max_tokens - 2`` residues (positions the
reward sees must have been trained: FlexBERT's position embeddings are learned). A pool of examples is
sorted by length and packed into batches of at most ``batch_tokens`` padded tokens.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ume_rl.rewards.modalities import MODALITIES

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "small_ume.ckpt"
SIDECAR_NAME = "small_ume.json"
LOSSES_NAME = "small_ume.losses.json"


@dataclass(frozen=True)
class SmallEncoderConfig:
    """What the small models trained here share: encoder shape, batches and optimizer (the defaults are the demo's)."""

    hidden_size: int = field(default=128, metadata={"help": "Hidden size."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Encoder layers."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads."})
    intermediate_size: int = field(default=256, metadata={"help": "MLP width."})
    steps: int = field(default=3400, metadata={"help": "Optimizer steps (all modalities together)."})
    batch_tokens: int = field(default=2048, metadata={"help": "Most padded tokens per batch."})
    max_tokens: int = field(default=202, metadata={"help": "Longest training example, CLS and EOS included."})
    min_crop: int = field(default=20, metadata={"help": "Shortest protein / DNA crop (residues)."})
    lr: float = field(default=2e-3, metadata={"help": "Peak learning rate (AdamW)."})
    warmup_steps: int = field(default=50, metadata={"help": "Linear warm-up, then cosine decay to 0."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    mask_percentage: float = field(default=0.25, metadata={"help": "Fraction of residue tokens masked."})
    seed: int = field(default=0, metadata={"help": "Seeds weights, masking and batches."})

    @property
    def shape(self) -> str:
        """``h<hidden>_l<layers>_a<heads>_i<mlp>``: the encoder's shape, for names."""
        h, n = self.hidden_size, self.num_hidden_layers
        return f"h{h}_l{n}_a{self.num_attention_heads}_i{self.intermediate_size}"


@dataclass(frozen=True)
class SmallUmeConfig(SmallEncoderConfig):
    """Architecture and training budget of a small UME (defaults: the ``demo`` profile's reward model)."""

    max_length: int = field(
        default=512, metadata={"help": "UME max_length (scorer limit), specials included."}
    )
    token_shares: tuple[float, float, float] = field(
        default=(2.0, 1.0, 1.0), metadata={"help": "Relative tokens per modality (SMILES, protein, DNA)."}
    )
    position_shift: int = field(
        default=150,
        metadata={
            "help": "Training only: each example's positions start at a random offset in [0, position_shift] "
            "(scoring always starts at 0), so what a head learns about a residue's neighbours holds at every "
            "position. 0: lobster's positions (every example from 0)."
        },
    )

    def __post_init__(self):
        if self.position_shift < 0 or self.position_shift + self.max_tokens > self.max_length:
            raise ValueError(
                f"position_shift must be in [0, max_length - max_tokens] = [0, {self.max_length - self.max_tokens}], "
                f"got {self.position_shift}"
            )

    @property
    def arch(self) -> str:
        """lobster architecture name; the settings are in the name, so a checkpoint describes itself."""
        return f"UME_rl_{self.shape}"

    @property
    def flexbert_config(self) -> dict[str, int]:
        return {
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_size": self.hidden_size,
        }


def cpu_mlm_ume_class():
    """lobster's ``UME`` with :meth:`_compute_mlm_loss` run on the padded layout (see the module docstring)."""
    from ume_rl.models.ume import lobster_ume_class

    UME = lobster_ume_class()

    class CpuMlmUME(UME):
        position_shift = 0  # SmallUmeConfig.position_shift, set by train_small_ume

        def _compute_mlm_loss(self, batch, stage):
            flex = self.model
            input_ids = batch["input_ids"].squeeze(1)
            attention_mask = batch["attention_mask"].squeeze(1)
            masked_ids, labels = flex._mask_inputs(input_ids)
            shift = self.position_shift if stage == "train" else 0
            positions = None
            if shift:
                offsets = torch.randint(0, shift + 1, (input_ids.shape[0], 1), device=input_ids.device)
                positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :] + offsets
            hidden = flex.model(masked_ids, attention_mask=attention_mask, position_ids=positions)
            at = labels != -100
            logits = flex.decoder(hidden[at])
            token_loss = torch.nn.functional.cross_entropy(logits, labels[at], reduction="none")
            loss = token_loss.mean()
            modalities = batch["metadata"]["modality"] if "metadata" in batch else batch["modality"]
            rows = at.nonzero()[:, 0]
            for modality in set(modalities):
                rows_of = torch.tensor([m == modality for m in modalities])[rows]
                if rows_of.any():
                    self.log(
                        f"{stage}_loss/{modality}", token_loss[rows_of].mean(), batch_size=len(modalities)
                    )
            self.log(f"{stage}_perplexity", torch.exp(loss), batch_size=len(modalities))
            return loss

        def on_save_checkpoint(self, checkpoint):
            from lobster.model.modern_bert._modern_bert_configuration import FLEXBERT_CONFIG_ARGS

            # A ckpt_path makes lobster rebuild the unpadded layout on load, as for real UME checkpoints;
            # the architecture travels with the weights, for load_ume to register.
            name = checkpoint["hyper_parameters"]["model_name"]
            checkpoint["hyper_parameters"]["ckpt_path"] = CHECKPOINT_NAME
            checkpoint["ume_rl"] = {"arch": name, "flexbert_config": dict(FLEXBERT_CONFIG_ARGS[name])}

    return CpuMlmUME


def random_window(seq: str, rng: random.Random, min_crop: int, longest: int) -> str:
    """A random window of ``seq``: its length uniform in ``min_crop``..``longest`` (both capped by the sequence's)."""
    longest = min(len(seq), longest)
    length = rng.randint(min(min_crop, longest), longest)
    start = rng.randint(0, len(seq) - length)
    return seq[start : start + length]


def pack_by_length(pool: list, size, batch_tokens: int, rng: random.Random) -> list[list]:
    """``pool`` sorted by ``size(item)`` and cut into batches of at most ``batch_tokens`` padded tokens (every
    item padded to its batch's longest), in random order."""
    batches, current = [], []
    for item in sorted(pool, key=size):
        if current and size(item) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current = []
        current.append(item)
    batches.append(current)
    rng.shuffle(batches)
    return batches


class TokenBatches(torch.utils.data.IterableDataset):
    """Endless padded batches ``{"input_ids", "attention_mask": (B, 1, L), "modality": [str]}`` from the train
    split of a :class:`~ume_rl.data.corpus.RealCorpus`, tokenized with the UME's own tokenizers."""

    def __init__(self, ume, corpus, config: SmallUmeConfig, pool_size: int = 256):
        super().__init__()
        self.config = config
        self.pool_size = pool_size
        self.tokenizers = {m: ume.get_tokenizer(m) for m in MODALITIES}
        self.pad_id = int(self.tokenizers["SMILES"].pad_token_id)
        smiles = self.tokenizers["SMILES"](list(corpus.train["SMILES"]))["input_ids"]
        self.smiles = [ids for ids in smiles if len(ids) <= config.max_tokens]
        self.pools = {m: list(corpus.train[m]) for m in ("amino_acid", "nucleotide")}
        if not self.smiles or not all(self.pools.values()):
            raise ValueError("the corpus has a modality with no training sequence")

    def _example(self, modality: str, rng: random.Random) -> list[int]:
        if modality == "SMILES":
            return rng.choice(self.smiles)
        seq = rng.choice(self.pools[modality])
        window = random_window(seq, rng, self.config.min_crop, self.config.max_tokens - 2)
        return self.tokenizers[modality]([window])["input_ids"][0]

    def __iter__(self) -> Iterator[dict]:
        rng = random.Random(self.config.seed)
        shares = dict(zip(MODALITIES, self.config.token_shares, strict=True))
        tokens = dict.fromkeys(MODALITIES, 0.0)
        while True:
            pool = []
            for _ in range(self.pool_size):
                modality = min(MODALITIES, key=lambda m: tokens[m] / shares[m])  # furthest below its share
                ids = self._example(modality, rng)
                tokens[modality] += len(ids)
                pool.append((modality, ids))
            for batch in pack_by_length(pool, lambda item: len(item[1]), self.config.batch_tokens, rng):
                yield self._collate(batch)

    def _collate(self, batch: list[tuple[str, list[int]]]) -> dict:
        length = max(len(ids) for _, ids in batch)
        input_ids = torch.full((len(batch), 1, length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), 1, length), dtype=torch.long)
        for row, (_, ids) in enumerate(batch):
            input_ids[row, 0, : len(ids)] = torch.tensor(ids)
            attention_mask[row, 0, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "modality": [m for m, _ in batch]}


# Lightning's warnings about what this training does on purpose (an in-memory loader, lobster's unused
# validation_step) and a torch deprecation inside Lightning: (message regex, module regex), for trainer.fit.
# Lightning attributes its own warnings to a caller's frame (rank_zero_warn's stacklevel): any module.
LIGHTNING_FIT_NOTES = (
    (r".*does not have many workers", r""),
    (r"You defined a `validation_step` but have no `val_dataloader`", r""),
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree"),
)


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's INFO chatter (GPU/TPU availability, tips) off while it trains here; warnings stay."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, 0o666 & ~_umask())  # mkstemp makes 0600 files
    os.replace(handle.name, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def train_small_ume(
    out_dir: str | Path,
    corpus=None,
    config: SmallUmeConfig | None = None,
    progress: bool = True,
    callbacks: list | None = None,
    num_threads: int | None = 1,
) -> Path:
    """Train a small UME on ``corpus`` (default: :func:`~ume_rl.data.corpus.load_real_corpus` with the config's
    seed) and write ``small_ume.ckpt``, ``small_ume.losses.json`` and ``small_ume.json`` into ``out_dir``.

    Every file is written to a temporary name and renamed into place; the sidecar ``small_ume.json``
    (sha256 and size of the checkpoint, the config, training time, corpus provenance) is written last.

    Args:
        out_dir: output directory (created).
        corpus: a :class:`~ume_rl.data.corpus.RealCorpus`; only its train split is read.
        config: architecture and budget (default :class:`SmallUmeConfig`).
        progress: show one progress bar, redrawn by time (:class:`~ume_rl.models.progress.TimedProgressBar`).
        callbacks: extra Lightning callbacks (e.g. a ``ModelCheckpoint`` every N steps).
        num_threads: torch CPU threads while training (restored after); ``None`` leaves torch's setting.
            One is the default: for a model this small, more threads on a busy machine oversubscribe OpenMP
            and each step gets slower, not faster.

    Returns:
        Path of the ``.ckpt``; load it with ``ume_rl.models.ume.load_ume(path)``.
    """
    import lightning as L

    from ume_rl.data.corpus import load_real_corpus
    from ume_rl.models.progress import TimedProgressBar
    from ume_rl.models.ume import register_flexbert_arch

    config = config or SmallUmeConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = corpus if corpus is not None else load_real_corpus(seed=config.seed, progress=progress)
    register_flexbert_arch(config.arch, config.flexbert_config)
    L.seed_everything(config.seed, workers=True, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lobster warns that flash-attn is absent; we asked for SDPA
        ume = cpu_mlm_ume_class()(
            model_name=config.arch,
            max_length=config.max_length,
            lr=config.lr,
            weight_decay=config.weight_decay,
            mask_percentage=config.mask_percentage,
            scheduler="cosine",
            num_training_steps=config.steps,
            num_warmup_steps=config.warmup_steps,
            use_flash_attn=False,
        )
    ume.position_shift = config.position_shift
    loader = torch.utils.data.DataLoader(TokenBatches(ume, corpus, config), batch_size=None, num_workers=0)
    curve: dict[str, list[float]] = {"loss": [], **{f"loss/{m}": [] for m in MODALITIES}}

    class _Record(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            metrics = trainer.callback_metrics
            curve["loss"].append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))
            for m in MODALITIES:
                value = metrics.get(f"train_loss/{m}") if m in batch["modality"] else None
                curve[f"loss/{m}"].append(float(value) if value is not None else float("nan"))

    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    with _quiet_lightning(), contextlib.ExitStack() as restore:
        restore.callback(torch.set_num_threads, threads)
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=config.steps,
            logger=False,
            enable_checkpointing=any(
                isinstance(c, L.pytorch.callbacks.ModelCheckpoint) for c in callbacks or []
            ),
            enable_progress_bar=False,  # Lightning's bar redraws per step: a widget message each in a notebook
            enable_model_summary=False,
            gradient_clip_val=1.0,
            num_sanity_val_steps=0,
            callbacks=[_Record(), *([TimedProgressBar("small UME")] if progress else []), *(callbacks or [])],
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            for message, module in LIGHTNING_FIT_NOTES:
                warnings.filterwarnings("ignore", message=message, module=module)
            trainer.fit(ume, train_dataloaders=loader)
        seconds = time.perf_counter() - start

    ckpt = out_dir / CHECKPOINT_NAME
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        staged = Path(tmp) / CHECKPOINT_NAME
        trainer.save_checkpoint(staged, weights_only=True)
        with staged.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(staged, 0o666 & ~_umask())
        os.replace(staged, ckpt)
    _atomic_write_bytes(out_dir / LOSSES_NAME, json.dumps(curve).encode())
    sidecar = {
        "sha256": _sha256(ckpt),
        "size": ckpt.stat().st_size,
        "config": asdict(config),
        "arch": config.arch,
        "seconds": round(seconds, 1),
        "torch_threads": num_threads or threads,
        "corpus": corpus_record(corpus),
    }
    _atomic_write_bytes(out_dir / SIDECAR_NAME, json.dumps(sidecar, indent=1).encode())
    logger.info("trained a small UME (%s, %d steps) in %.0f s: %s", config.arch, config.steps, seconds, ckpt)
    return ckpt


def corpus_record(corpus) -> dict:
    return {"seed": corpus.seed, "sources": [asdict(s) for s in corpus.sources]}


def settings_problem(sidecar: dict, config, corpus=None) -> str | None:
    """Why the settings a sidecar records are not ``config``'s, or (with ``corpus``) not its corpus's (``None``:
    they are)."""
    if sidecar.get("config") != json.loads(json.dumps(asdict(config))):
        return "trained with other settings"
    if corpus is not None and sidecar.get("corpus") != json.loads(json.dumps(corpus_record(corpus))):
        return "trained on another corpus"
    return None


@contextlib.contextmanager
def exclusive(directory: Path):
    """Hold an exclusive lock on ``directory/.lock`` for the block: two processes never train into one folder at
    once."""
    with (Path(directory) / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_loss_curve(ckpt: str | Path) -> dict[str, list[float]]:
    """The per-step training losses saved beside ``ckpt`` (``loss`` and ``loss/<modality>``; NaN where a step
    had no sequence of that modality)."""
    return json.loads((Path(ckpt).parent / LOSSES_NAME).read_text())


def checkpoint_problem(out_dir: str | Path, config: SmallUmeConfig, corpus=None) -> str | None:
    """Why the checkpoint in ``out_dir`` cannot be used for ``config`` (``None``: it can); with ``corpus``, also
    when it was trained on another corpus (other source files, versions or held-out sources)."""
    out_dir = Path(out_dir)
    ckpt, sidecar_path = out_dir / CHECKPOINT_NAME, out_dir / SIDECAR_NAME
    if not ckpt.is_file():
        return "no checkpoint"
    if not sidecar_path.is_file():
        return "no sidecar (interrupted while writing?)"
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return f"unreadable sidecar ({err})"
    problem = settings_problem(sidecar, config, corpus)
    if problem is not None:
        return problem
    if ckpt.stat().st_size != sidecar.get("size"):
        return f"size {ckpt.stat().st_size} != {sidecar.get('size')} recorded (truncated?)"
    if _sha256(ckpt) != sidecar.get("sha256"):
        return "sha256 differs from the recorded one (corrupted?)"
    if not (out_dir / LOSSES_NAME).is_file():
        return "no loss curve"
    return None


def demo_ume_checkpoint(
    runs_dir: str | Path, config: SmallUmeConfig | None = None, progress: bool = True
) -> Path:
    """The ``demo`` profile's UME checkpoint under ``runs_dir/models/``: trained on first use, reused after.

    A checkpoint whose sidecar is missing or unreadable, whose size or sha256 differ from the sidecar's, or
    that was trained with other settings or on another corpus is not loaded: it is logged and trained again. Training holds a
    lock file, so two processes never train the same checkpoint at once.

    Returns:
        Path of ``small_ume.ckpt`` (``runs_dir/models/<arch>-s<steps>-seed<seed>/``).
    """
    from ume_rl.data.corpus import load_real_corpus

    config = config or SmallUmeConfig()
    corpus = load_real_corpus(seed=config.seed, progress=progress)
    out_dir = Path(runs_dir) / "models" / f"{config.arch}-s{config.steps}-seed{config.seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(out_dir):
        problem = checkpoint_problem(out_dir, config, corpus)
        if problem is None:
            logger.info("using the cached demo UME %s", out_dir / CHECKPOINT_NAME)
            return out_dir / CHECKPOINT_NAME
        if problem != "no checkpoint":
            logger.warning("demo UME in %s is not usable (%s): training it again", out_dir, problem)
        for name in (SIDECAR_NAME, CHECKPOINT_NAME, LOSSES_NAME):
            with contextlib.suppress(FileNotFoundError):
                (out_dir / name).unlink()
        logger.info(
            "training the demo UME (%s, %d steps; a few minutes on a CPU, once) into %s",
            config.arch,
            config.steps,
            out_dir,
        )
        return train_small_ume(out_dir, corpus, config=config, progress=progress)
