"""Knowledge points: hint rendering, selection strategies with a cached adaptive scorer, extraction."""

from knowrl.kp._extract import extract_kps, leaking, parse_kps
from knowrl.kp._render import render_hint_prompt, render_prompt
from knowrl.kp._scorer import RolloutCache, RolloutScorer, ScoringConfig, hoeffding, wilson
from knowrl.kp._select import make_scorer, make_selector, select_dataset, selection_record, strategy_spec
from knowrl.kp._strategies import Selection, select_kps

__all__ = [
    "RolloutCache",
    "RolloutScorer",
    "ScoringConfig",
    "Selection",
    "extract_kps",
    "hoeffding",
    "leaking",
    "make_scorer",
    "make_selector",
    "parse_kps",
    "render_hint_prompt",
    "render_prompt",
    "select_dataset",
    "select_kps",
    "selection_record",
    "strategy_spec",
    "wilson",
]
