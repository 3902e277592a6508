"""Knowledge points: hint rendering (selection strategies and extraction come with the KP issue)."""

from knowrl.kp._render import render_hint_prompt, render_prompt

__all__ = ["render_hint_prompt", "render_prompt"]
