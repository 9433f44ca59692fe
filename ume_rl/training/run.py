"""The training run: dataset → warm start → GRPO → evaluation, one step per call.

``ume-rl train`` (:mod:`ume_rl.cli`) and notebook 04 both run these steps, so the notebook runs the command's
own code with evaluations in between:

>>> from ume_rl.training.recipes import load_recipe
>>> run = TrainRun.prepare(*load_recipe("tiny", max_steps=3))  # doctest: +SKIP
>>> rewards = run.build_rewards(run.load_reward_models())  # doctest: +SKIP
>>> trainer = run.train(run.warm_start(), rewards)  # doctest: +SKIP
>>> run.save_evaluation(run.evaluate(run.output_dir, rewards[0]))  # doctest: +SKIP

The configuration comes from a recipe (:mod:`ume_rl.training.recipes`). Reward models: the recipe's UME
(``ume_model_path``) scores every modality unless ``reward_models`` names another model for a modality (a hub id
or local directory of a Hugging Face masked LM; ``ume`` for the UME), as the ``full-public`` recipe does for all
three; :func:`download_models` fetches what a recipe needs (notebook 01). Model names are read by
:func:`ume_rl.models.names.resolve`.

A run never clobbers another (:mod:`ume_rl.training.rundir`): a directory that holds a run needs
``resume_from_checkpoint="last"`` or ``overwrite_output_dir=True``, and one run at a time holds its lock.
Nothing is claimed before the run can start: :meth:`TrainRun.prepare` locks the directory, then resolves and
checks the dataset, the policy and every reward model, and compares the run's fingerprint with the one a
resumed run recorded (:mod:`ume_rl.training.fingerprint`) before it writes anything there; a failure on the way
gives the directory back as it was found. Each rank writes the statistics of the completions it scored to ``output_dir/reward_stats/rank<N>.json``.
The main process writes every held-out completion of the base, warm-started and trained policies to
``output_dir/generations.jsonl``, their realism to ``realism.csv`` and the hacking verdict to ``verdict.json``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ume_rl.data.store import dataset_fingerprint
from ume_rl.models.names import resolve
from ume_rl.profiles import STAND_IN_SEED, dataset_dir, default_output_dir, policy_path, runs_dir
from ume_rl.rewards.registry import build_reward_funcs
from ume_rl.training.config import UmeGRPOConfig
from ume_rl.training.fingerprint import SCRIPT_FIELDS, check_resume, run_fingerprint
from ume_rl.training.recipes import TRANSFORMERS_DEFAULT_OUTPUT_DIR, TrainScriptArguments, load_recipe
from ume_rl.training.rundir import (
    RUN_MARKER,
    RunClaim,
    RunDirectoryError,
    RunStartError,
    hold_on_main_process,
    mark_run,
    read_json,
    resolve_resume,
)

logger = logging.getLogger(__name__)


def warm_start_policy(script, grpo, dataset, base_policy, output_dir, reuse: str = "same"):
    """The recipe's warm start (:func:`~ume_rl.training.sft.warm_start`) of ``base_policy`` into ``output_dir``:
    ``warm_start_corpus_steps`` of language modelling on tagged real sequences, then SFT on ``dataset``'s train
    rows plus ``warm_start_references`` extra real references per modality; no held-out answer (``dataset``'s
    validation and test sequences) is among the corpus texts or the references. Returns the policy."""
    from datasets import concatenate_datasets

    from ume_rl.data.generate import corpus_texts, reference_rows
    from ume_rl.training.sft import warm_start

    kwargs = script.warm_start_kwargs(grpo)
    held_out = [*dataset["validation"]["sequence"], *dataset["test"]["sequence"]]
    rows = dataset["train"]
    if script.warm_start_references:
        extra = reference_rows(script.warm_start_references, grpo.seed, exclude=held_out)
        rows = concatenate_datasets([rows, extra.cast(rows.features)])
    if script.warm_start_corpus_steps:
        kwargs["corpus"] = corpus_texts(script.corpus_sizes(), grpo.seed, exclude=held_out)
    return warm_start(base_policy, rows, output_dir, reuse=reuse, **kwargs)


@dataclass
class TrainRun:
    """The steps of a training run, one call each, for :func:`run_train` and notebook 04.

    :meth:`prepare` claims the output directory (its lock is held until :meth:`close`, or the process ends).
    """

    script: TrainScriptArguments
    grpo: UmeGRPOConfig
    dataset: Any  # datasets.DatasetDict with train / validation / test
    base_policy: str | Path
    claim: RunClaim | None = None  # the output directory, held by the main process
    reward_models: Any = field(default=None, repr=False)  # loaded by prepare (load_reward_models)
    # modality -> reward model name, for the fingerprint; None: the recipe's (reward_models, the UME)
    model_names: dict | None = None
    monitor: Any = None  # ume_rl.training.monitor.RealismMonitor, built by build_monitor

    @classmethod
    def prepare(cls, script: TrainScriptArguments, grpo: UmeGRPOConfig) -> TrainRun:
        """Hold the output directory (lock it; refuse one that holds a run without ``resume_from_checkpoint``
        or ``overwrite_output_dir``), resolve and load everything the run needs (the dataset, the base policy,
        the reward models), compare a resumed run's fingerprint, and only then start the run there (clear it
        for ``overwrite_output_dir``, mark it running with its fingerprint).

        ``dataset_dir`` is loaded as it is (never generated, an error when incomplete); without it the
        dataset of the recipe's ``references`` is loaded, or generated when missing.

        Raises:
            RunDirectoryError: the directory cannot take the run (a resume with other settings included).
            RunStartError: something the run needs is missing or damaged (one line, the fix).
            Either way the directory is left as it was found.
        """
        from accelerate import PartialState

        if grpo.output_dir in (None, TRANSFORMERS_DEFAULT_OUTPUT_DIR):
            grpo.output_dir = str(default_output_dir())

        def parts():
            # Rank 0 builds the tiny policy and the dataset once; the other ranks then load them.
            with PartialState().main_process_first():
                dataset = needed("the dataset", lambda: _dataset(script))
                policy = needed("the policy", lambda: _policy(script))
            return cls(script, grpo, dataset, policy)

        return cls._start(grpo, parts)

    @classmethod
    def adopt(
        cls, script: TrainScriptArguments, grpo, dataset, base_policy, load_reward_models, model_names: dict
    ) -> TrainRun:
        """The same start as :meth:`prepare` for parts given by the caller (:mod:`ume_rl.lobster_compat`):
        ``dataset`` (``train`` and optionally ``validation``), ``base_policy``, ``load_reward_models()`` (called
        once, after the output directory is held and before it is written) and ``model_names`` (modality ->
        name, for the fingerprint). ``script`` holds the reward settings."""
        return cls._start(
            grpo,
            lambda: cls(script, grpo, dataset, base_policy, model_names=model_names),
            load_reward_models,
        )

    @classmethod
    def _start(cls, grpo, parts, load_reward_models=None) -> TrainRun:
        """Hold the output directory, build the run (``parts()``), load its reward models, then :meth:`begin`;
        on any failure the directory is given back as it was found."""
        claim = hold_on_main_process(grpo.output_dir, grpo.resume_from_checkpoint, grpo.overwrite_output_dir)
        try:
            run = parts()
            run.claim = claim
            run.reward_models = (load_reward_models or run.load_reward_models)()
            run.begin()
        except BaseException:
            if claim is not None:
                claim.abandon()
            raise
        return run

    @staticmethod
    def _model_location(name: str, modality: str) -> str:
        """``demo-esm``: the folder of this modality's model (so the fingerprint holds its manifest); else ``name``."""
        from ume_rl.models.small_esm import demo_esm_models

        if resolve(name).kind == "demo-esm":
            return str(needed("the demo-esm models", lambda: demo_esm_models(runs_dir())) / modality)
        return name

    def fingerprint(self) -> dict:
        """What defines this run's experiment (:func:`~ume_rl.training.fingerprint.run_fingerprint`)."""
        models = self.model_names
        if models is None:
            ume = self.script.ume_model_path
            names = self.script.reward_model_names()
            models = {
                m: (self.ume_name() if name == ume else self._model_location(name, m))
                for m, name in names.items()
            }
        return run_fingerprint(
            self.grpo,
            policy=self.base_policy,
            reward_models=models,
            dataset=dataset_fingerprint(self.dataset),
            **{name: getattr(self.script, name) for name in SCRIPT_FIELDS},
        )

    def begin(self) -> None:
        """Compare a resumed run's recorded fingerprint with this one (every rank), then, on the main process,
        start the run in the output directory: clear it for ``overwrite_output_dir``, mark it running with the
        fingerprint and, on a resume, the allowed changes.

        Raises:
            RunDirectoryError: a resume whose settings change the experiment (one line: what differs, the fix).
        """
        current = self.fingerprint()
        marker = read_json(self.output_dir / RUN_MARKER) if self.resuming else None
        allowed = (
            check_resume(self.output_dir, marker, current, self.script.accept_changes)
            if self.resuming
            else {}
        )
        if self.claim is None:
            return
        fields = {"fingerprint": current}
        if self.resuming:
            resumed = {"at": time.strftime("%Y-%m-%d %H:%M:%S %z"), "changed": allowed}
            fields["resumes"] = [*(marker or {}).get("resumes", []), resumed]
        self.claim.begin(**fields)

    @property
    def output_dir(self) -> Path:
        return Path(self.grpo.output_dir)

    @property
    def resuming(self) -> bool:
        return self.grpo.resume_from_checkpoint not in (None, False)

    @property
    def held_out(self):
        """The prompts no step trains on: validation + test."""
        from datasets import concatenate_datasets

        return concatenate_datasets([self.dataset["validation"], self.dataset["test"]])

    def ume_name(self) -> str:
        """What ``load_ume`` takes for this run's UME: ``ume_model_path``; ``demo`` is its checkpoint's path (the
        demo UME is trained on first use, and verified against its sidecar after)."""
        from ume_rl.models.small_ume import demo_ume_checkpoint

        name = self.script.ume_model_path
        if resolve(name).kind == "demo":
            return str(needed("the demo UME", lambda: demo_ume_checkpoint(runs_dir())))
        return name

    def load_ume(self):
        """The recipe's UME (``ume_model_path``) on this process's device, outside ZeRO-3."""
        from ume_rl.models.ume import load_ume
        from ume_rl.training.trainer import outside_zero3

        name = self.ume_name()
        logger.info("loading UME %s on %s", name, self.grpo.device)
        with outside_zero3():
            return needed(
                f"the UME {name}",
                lambda: load_ume(name, device=self.grpo.device, seed=STAND_IN_SEED, runs_dir=runs_dir()),
            )

    def load_reward_models(self):
        """The reward model of each modality on this process's device, outside ZeRO-3: the UME when it scores
        every modality, else a mapping modality → model (:func:`~ume_rl.models.masked_lms.load_reward_model`), which
        :class:`~ume_rl.rewards.masked_lm.MaskedLMReward` takes as it is. :meth:`prepare` loads them once; later calls
        return those."""
        from ume_rl.models.masked_lms import load_reward_model

        if self.reward_models is not None:
            return self.reward_models

        names = self.script.reward_model_names()
        ume = self.script.ume_model_path
        if set(names.values()) == {ume}:
            return self.load_ume()
        from ume_rl.training.trainer import outside_zero3

        loaded: dict = {}
        models = {}
        for modality, name in names.items():
            key = name if resolve(name).is_ume else (name, modality)
            if key not in loaded:
                logger.info("loading reward model %s for %s on %s", name, modality, self.grpo.device)
                with outside_zero3():
                    loaded[key] = (
                        self.load_ume()
                        if name == ume
                        else needed(
                            f"the reward model {name} ({modality})",
                            lambda name=name, modality=modality: load_reward_model(
                                name, modality, device=self.grpo.device, runs_dir=runs_dir()
                            ),
                        )
                    )
            models[modality] = loaded[key]
        return models

    def build_rewards(self, reward_model) -> list:
        """The recipe's ``reward_funcs``, built with its reward settings; the UME reward scores with
        ``reward_model`` (a UME, or :meth:`load_reward_models`' mapping modality → model)."""
        return build_reward_funcs(self.script.reward_funcs, reward_model, self.script.reward_settings())

    def warm_start(self):
        """The recipe's warm start of the base policy (:func:`warm_start_policy`) in ``output_dir/warm_start``;
        returns the policy.

        A complete warm start already there is reused: with the same settings, or with any when resuming (the
        resumed policy's weights come from the checkpoint; a run stopped before its first checkpoint continues
        from its warm start).
        """
        return warm_start_policy(
            self.script,
            self.grpo,
            self.dataset,
            self.base_policy,
            self.output_dir / "warm_start",
            reuse="any" if self.resuming else "same",
        )

    def train(self, policy, rewards: list, callbacks: list | None = None):
        """GRPO from ``policy`` against ``rewards`` (:meth:`build_rewards`); saves the final model in
        ``output_dir`` and this rank's reward statistics in ``output_dir/reward_stats/rank<N>.json``.
        Returns the trainer."""
        from accelerate import PartialState

        from ume_rl.training.trainer import build_trainer

        trainer = build_trainer(
            policy,
            rewards,
            self.dataset["train"],
            self.dataset.get("validation"),
            args=self.grpo,
            callbacks=[*(callbacks or []), *([self.build_monitor()] if self.script.monitor else [])] or None,
        )
        trainer.train(
            resume_from_checkpoint=resolve_resume(self.output_dir, self.grpo.resume_from_checkpoint)
        )
        trainer.save_model(self.grpo.output_dir)
        logger.info("saved the trained policy and its tokenizer to %s", self.grpo.output_dir)
        state = PartialState()
        stats_dir = self.output_dir / "reward_stats"
        stats_dir.mkdir(parents=True, exist_ok=True)
        stats = {
            "rank": state.process_index,
            "world_size": state.num_processes,
            **{f.__name__: f.get_statistics() for f in rewards if hasattr(f, "get_statistics")},
        }
        (stats_dir / f"rank{state.process_index}.json").write_text(json.dumps(stats, indent=1, default=str))
        if state.is_main_process:
            mark_run(
                self.output_dir,
                status="trained",
                trained=time.strftime("%Y-%m-%d %H:%M:%S %z"),
                global_step=trainer.state.global_step,
            )
        return trainer

    def build_monitor(self):
        """The :class:`~ume_rl.training.monitor.RealismMonitor` of this run (realism against the real corpus,
        the context audit, and the recipe's ``audit_models``)."""
        from ume_rl.training.monitor import build_monitor

        if self.monitor is None:
            self.monitor = build_monitor(
                self.dataset["train"],
                audit_models=self.script.audit_models,
                device=self.grpo.device,
                runs_dir=runs_dir(),
            )
        return self.monitor

    def generate(self, policy, reward):
        """Completions of ``policy`` on the held-out prompts, scored by ``reward``, one row each
        (:func:`~ume_rl.training.evaluation.generate_completions`), sampled as GRPO's rollouts are
        (``eval_generations`` completions per prompt, ``max_completion_length``)."""
        from ume_rl.training.evaluation import generate_completions

        return generate_completions(policy, self.held_out, reward, **self.script.evaluation_kwargs(self.grpo))

    def evaluate(self, policy, reward):
        """The per-modality summary (:func:`~ume_rl.training.evaluation.summarize_completions`) of
        :meth:`generate`."""
        from ume_rl.training.evaluation import summarize_completions

        return summarize_completions(self.generate(policy, reward))

    def generate_stages(self, warm_policy, reward) -> dict:
        """:meth:`generate` of each stage (:data:`~ume_rl.training.evaluation.STAGES`): the base policy, the
        warm start ``warm_policy`` and the trained policy saved in ``output_dir``."""
        policies = {"base": self.base_policy, "warm_start": warm_policy, "trained": self.output_dir}
        return {stage: self.generate(policy, reward) for stage, policy in policies.items()}

    def save_generations(self, samples) -> Path:
        """Every evaluation completion to ``output_dir/generations.jsonl``, and, when the run has a monitor,
        the realism of each stage to ``output_dir/realism.csv``; returns the JSONL path."""
        from ume_rl.training.evaluation import write_generations

        path = write_generations(self.output_dir / "generations.jsonl", samples)
        if self.monitor is not None and self.monitor.suite is not None:
            realism = self.monitor.suite.compare(samples)
            realism.to_csv(self.output_dir / "realism.csv")
            logger.info("realism of the held-out generations:\n%s", realism.to_string(float_format="%.3f"))
        return path

    def save_evaluation(self, table) -> Path:
        """Write an evaluation table to ``output_dir/evaluation.csv``; returns the path."""
        path = self.output_dir / "evaluation.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path)
        return path

    def close(self) -> None:
        """Release the output directory's lock (:func:`run_train` does it when the run ends)."""
        if self.claim is not None:
            self.claim.release()


def _dataset(script: TrainScriptArguments):
    from ume_rl.data.store import load_dataset_dir, load_or_generate_dataset

    if script.dataset_dir is not None:
        return load_dataset_dir(script.dataset_dir)
    return load_or_generate_dataset(
        dataset_dir(script.references), rebuild=True, progress=False, references=script.references
    )


def _policy(script: TrainScriptArguments):
    """The base policy (:func:`~ume_rl.profiles.policy_path`); a local directory is checked whole."""
    from ume_rl.models.integrity import WEIGHT_FILES, file_problem

    if resolve(script.model_path).kind != "directory":
        return policy_path(script.model_path, script.references)
    path = Path(script.model_path).expanduser()
    weights = [name for name in WEIGHT_FILES if (path / name).is_file()]
    for name in ("config.json", *(weights or ["model.safetensors"])):
        problem = file_problem(path / name)
        if problem is not None:
            raise RunStartError(
                f"the policy {path} is not usable: {problem}. Fix: point --model_path at a complete "
                "save_pretrained directory (or save it again)"
            )
    return script.model_path


def needed(what: str, resolve):
    """``resolve()``, with any failure but a refusal turned into a one-line :class:`RunStartError` naming
    ``what`` and the fix."""
    try:
        return resolve()
    except (RunDirectoryError, RunStartError, KeyboardInterrupt):
        raise
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        fix = (
            ""
            if "Fix:" in first
            else (
                " Fix: check the name or path; a hub model must be downloaded once first (notebook 01, "
                "ume_rl.download_models(recipe)), and a damaged cached file deleted so it is fetched or built again"
            )
        )
        raise RunStartError(f"{what} could not be loaded ({type(err).__name__}: {first}).{fix}") from err


def run_train(script: TrainScriptArguments, grpo: UmeGRPOConfig):
    """The whole run (``ume-rl train``); returns the trained ``GRPOTrainer``."""
    import datasets
    from accelerate import PartialState

    from ume_rl.rewards.masked_lm import MaskedLMReward
    from ume_rl.training.evaluation import summarize_completions
    from ume_rl.training.model_card import write_model_card

    datasets.disable_progress_bars()  # per-split map/save bars; the warm start and GRPO keep one bar each
    state = PartialState()
    run = TrainRun.prepare(script, grpo)
    try:
        rewards = run.build_rewards(run.load_reward_models())
        policy = run.warm_start()
        trainer = run.train(policy, rewards)
        ume_reward = next((f for f in rewards if isinstance(f, MaskedLMReward)), None)
        table = None
        if script.eval_generations > 0 and ume_reward is not None and state.is_main_process:
            samples = run.generate_stages(policy, ume_reward)
            run.save_generations(samples)
            table = summarize_completions(samples["trained"])
            run.save_evaluation(table)
            logger.info(
                "held-out evaluation of the trained policy:\n%s", table.to_string(float_format="%.3f")
            )
        if state.is_main_process:
            write_model_card(run, table)
        state.wait_for_everyone()
    finally:
        run.close()
    return trainer


def download_models(name_or_path: str | Path, **overrides) -> dict[str, Any]:
    """Fetch what a recipe needs, once (notebook 01): its policy and each hub reward model.

    Returns where each model is: ``"policy"`` (a hub id: a snapshot in the Hugging Face cache; ``tiny``: built
    under ``runs/models``) and one entry per modality: the snapshot or directory of its masked LM, or the name
    of its UME (a UME is loaded when a run starts: ``tiny`` is built, ``demo`` trained, a ``.ckpt`` read, a
    registry name fetched with Prescient credentials), or ``demo-esm`` (trained when a run starts). Offline
    without a cached model, ``RuntimeError`` names the fix.

    >>> download_models("tiny")["SMILES"]  # doctest: +SKIP
    'tiny'
    """

    from ume_rl.models.masked_lms import download_reward_model

    with tempfile.TemporaryDirectory() as unused:  # the recipe is checked, but no run directory is involved
        script, _ = load_recipe(name_or_path, **{"output_dir": f"{unused}/run", **overrides})
    found: dict[str, Any] = {"policy": policy_path(script.model_path, script.references, download=True)}
    for modality, name in script.reward_model_names().items():
        found[modality] = download_reward_model(name) if resolve(name).kind == "hub" else name
    return found
