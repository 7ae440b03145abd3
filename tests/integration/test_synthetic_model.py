"""A scorecard trained on the synthetic population's history has honest signal: on people it
never saw (another seed) it ranks risk better than the best single characteristic and than a
simple rule, and its PDs are in the right range."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from microloan.decisions.scorecard import Scorecard
from microloan.modeling import metrics
from microloan.modeling.train import train
from microloan.providers.simulated import SimulatedWorld
from microloan.sim import population
from microloan.sim.history import training_table


def _table(size: int, seed: int) -> tuple[SimulatedWorld, pl.DataFrame]:
    world = SimulatedWorld(population.generate(size, seed))
    return world, training_table(world)


def test_a_trained_scorecard_beats_simple_baselines_on_held_out_people(tmp_path: Path) -> None:
    _, history = _table(12_000, 11)
    data = tmp_path / "history.parquet"
    history.write_parquet(data)
    result = train(
        data,
        target="bad",
        out_dir=tmp_path / "model",
        trained_at=datetime(2026, 11, 23, tzinfo=UTC),
    )
    card = Scorecard.load(tmp_path / "model")
    assert card.version == result.scorecard.version

    _, held_out = _table(12_000, 12)  # other people, never seen in training
    rows = held_out.to_dicts()
    bad = np.array([r["bad"] for r in rows], dtype=np.int8)
    model_pd = np.array([card.score(r).pd for r in rows])
    model_auc = metrics.auc(bad, model_pd)

    # baselines: each characteristic alone (missing as the riskiest), and a report-status rule
    best_single = 0.0
    for name in ("app_active_days_90d", "app_payment_count_90d", "report_queries_3m"):
        values = np.array([np.nan if r[name] is None else r[name] for r in rows], dtype=float)
        for sign in (1, -1):
            risk = np.where(np.isnan(values), np.inf * sign, values) * sign
            best_single = max(best_single, metrics.auc(bad, np.nan_to_num(risk, posinf=1e18)))
    rule = np.array(
        [{"current_delinquency": 3, "past_delinquency": 2}.get(r["report_status"], 1) for r in rows]
    )
    rule_auc = metrics.auc(bad, rule)
    print(f"held-out AUC {model_auc:.4f}; best single {best_single:.4f}; rule {rule_auc:.4f}")
    assert model_auc > best_single + 0.02, (model_auc, best_single)
    assert model_auc > rule_auc + 0.05, (model_auc, rule_auc)
    assert 0.68 < model_auc < 0.85
    # calibrated to the population's bad rate, within a third of it
    assert abs(model_pd.mean() - bad.mean()) < bad.mean() / 3
