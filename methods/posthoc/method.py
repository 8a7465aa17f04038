"""The post-hoc methods: a source's logits (a finished run's, or a method's computed in this run)
adjusted without training. Each checks its options and its source before any work; the record's
details.posthoc names the source, the adjustment and, for a tau, the grid, where it was chosen,
each grid value's val top-1 and the chosen value."""
import numpy as np

from ltbench.api import METHODS, Method, UserError
from ltbench.api.calibration import choose_on_val, select_on_grid, tau_normalised_logits
from ltbench.api.ensembles import is_saved_run
from ltbench.methods.posthoc.adjust import (
    log_prior,
    logit_adjusted,
    prior_corrected,
    read_target_prior,
    target_log_prior,
    top1,
)
from ltbench.methods.posthoc.options import PRIOR_OPTIONS, SOURCE_OPTIONS, TAU_OPTIONS
from ltbench.methods.posthoc.sources import build_source, plain_ce_problem, source_label


class Posthoc(Method):
    adjustment = ""  # the record's details.posthoc.adjustment
    options = SOURCE_OPTIONS

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.check_options(cfg)  # cheap checks before the source is read or built
        self.source = build_source(cfg["source"], cfg)
        self.check_source()

    @classmethod
    def backbone_label_for(cls, cfg: dict) -> str:
        """The source's: its record's backbone, or the computed method's label."""
        return source_label(cfg["source"], cfg)

    @classmethod
    def source_records(cls, cfg: dict) -> list:
        return [cfg["source"]] if is_saved_run(cfg["source"]) else []

    def check_options(self, cfg: dict):
        """Options of the adjustment, before any work."""

    def check_source(self):
        """What the adjustment needs of its source, before any work."""

    def fit(self, data, ctx):
        self.check_data(data)  # before a computed source trains
        with ctx.timer("source"):
            self.source.fit(data, ctx)
        self.train_log_prior = log_prior(data.class_counts)
        details = {"adjustment": self.adjustment, **self.source.summary()}
        details.update(self.prepare(data, ctx))
        ctx.outputs.details["posthoc"] = details

    def check_data(self, data):
        """What the adjustment needs of the dataset (a val split to choose on), before any work."""

    def prepare(self, data, ctx) -> dict:
        """Fix the adjustment's parameters; returns what the record should say about them."""
        return {}

    def adjust(self, logits) -> np.ndarray:
        raise NotImplementedError

    def predict(self, split, ctx) -> np.ndarray:
        return self.adjust(self.source.logits(split))

    # --- tau: fixed, or chosen on val ---------------------------------------------------------------
    def _check_tau_options(self, cfg: dict):
        self.tau = None if cfg["tau"] is None else float(cfg["tau"])
        self.grid = [float(tau) for tau in cfg["tau_grid"]] if self.tau is None else None

    def _check_val(self, data):
        if self.tau is None and "val" not in data.splits:
            raise UserError(f"tau=null chooses tau on val, but dataset '{data.name}' has no val split; fix it, "
                            "e.g. tau=1")

    def _choose_tau(self, data, ctx, adjusted) -> dict:
        """tau fixed, or the grid value whose ``adjusted(val logits, tau)`` is best on val. A val split
        that is the evaluation split itself flatters the result: a warning, and the record says so."""
        if self.tau is not None:
            return {"tau": self.tau, "tau_from": "fixed"}
        val, origin = choose_on_val(data, self.cfg["eval_split"], f"{self.cfg['method']}'s tau", ctx,
                                    fix="fix tau for an unbiased one")
        val_logits = self.source.logits(val)
        self.tau, accuracies = select_on_grid(self.grid, lambda tau: top1(adjusted(val_logits, tau), val.labels))
        ctx.log(f"{self.cfg['method']}: tau {self.tau:g} chosen on {origin} (top-1 {max(accuracies):.2f})")
        return {"tau": self.tau, "tau_from": "grid", "tau_grid": self.grid, "selected_on": origin,
                "val_top1": accuracies}


@METHODS.register_module(name="posthoc_la")
class PosthocLogitAdjustment(Posthoc):
    """Post-hoc logit adjustment (Menon et al. 2021) of any run's logits: z - tau * log(train prior), tau fixed (1) or chosen on val."""

    adjustment = "logit_adjustment"
    options = TAU_OPTIONS

    def check_options(self, cfg):
        self._check_tau_options(cfg)

    def check_data(self, data):
        self._check_val(data)

    def prepare(self, data, ctx):
        return self._choose_tau(data, ctx, lambda logits, tau: logit_adjusted(logits, self.train_log_prior, tau))

    def adjust(self, logits):
        return logit_adjusted(logits, self.train_log_prior, self.tau)


@METHODS.register_module(name="posthoc_taunorm")
class PosthocTauNorm(Posthoc):
    """tau-normalisation (Kang et al. 2020) of a run's saved linear head, from its saved logits: (z_c - b_c) / ||W_c||^tau, tau chosen on val."""

    adjustment = "tau_normalisation"
    options = TAU_OPTIONS

    def check_options(self, cfg):
        self._check_tau_options(cfg)

    def check_source(self):
        # A saved run's head (its file and hash) is read and checked here, before any work.
        if not self.source.saves_linear_head():
            raise UserError(f"source={self.source.method_name}: that method saves no linear head (linear_probe "
                            "and the decoder runs with stage2.type none, crt or taunorm do); tau-normalisation "
                            "needs one")

    def check_data(self, data):
        self._check_val(data)

    def prepare(self, data, ctx):
        self.head = self.source.linear_head()
        if self.head.weight.shape[0] != data.num_classes:
            raise UserError(f"the source's linear head has {self.head.weight.shape[0]} classes, this "
                            f"{data.name} run {data.num_classes}")
        details = {"head_kind": self.head.kind}
        details.update(self._choose_tau(data, ctx, self._normalised))
        return details

    def _normalised(self, logits, tau):
        return tau_normalised_logits(logits, self.head.weight, self.head.bias, tau)

    def adjust(self, logits):
        return self._normalised(logits, self.tau)


@METHODS.register_module(name="posthoc_prior")
class PosthocPriorCorrection(Posthoc):
    """Prior correction of a plain-CE run's logits to a target prior (uniform by default): z - log(train prior) + log(target prior)."""

    adjustment = "prior_correction"
    options = PRIOR_OPTIONS

    def check_options(self, cfg):
        self.target = read_target_prior(cfg["target_prior"])

    def check_source(self):
        problem = plain_ce_problem(self.source.config, self.source.method_class.declared_options())
        if problem:
            raise UserError(f"posthoc_prior corrects the prior a plain-CE model learnt, but source "
                            f"{self.cfg['source']} ({self.source.method_name}): {problem}; use posthoc_la "
                            "with tau chosen on val instead")

    def check_data(self, data):
        self.target_log_prior = target_log_prior(self.target, data.num_classes, self.cfg["target_prior"])

    def prepare(self, data, ctx):
        return {"target_prior": "uniform" if self.target is None else np.exp(self.target_log_prior).tolist()}

    def adjust(self, logits):
        return prior_corrected(logits, self.train_log_prior, self.target_log_prior)
