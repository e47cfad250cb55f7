"""The few lines a job ends with on the console (at most ~25): what ran, a table of the
pretrained model against its baselines with 95% intervals and p-values, the verdict
(`eval.verdict`), warnings, the pictures and where the full result is. The full result stays
in its JSON file (`results.json`, `out_json`, `bundle.json`)."""

from __future__ import annotations

import os
import textwrap
from typing import Any, Mapping

from nepa3d_jax import jobs
from nepa3d_jax.eval import headline, verdict

MAX_WARNINGS = 3
WIDTH = 100  # long lines (verdicts, warnings) wrap here, continuation lines indented
MODELS = ("pretrained", "random_init", "nn_copy")


def wrap(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, subsequent_indent="  ", break_on_hyphens=False) or [""]


def _fmt(v: Any, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def table(job: jobs.Job, body: Mapping[str, Any]) -> list[str]:
    """The headline block of one evaluator as a small table (header line + one per model)."""
    metric = job.metrics[0]
    models = [m for m in MODELS if body.get(m)] + [
        m for m in body if m not in MODELS and m not in ("seeds", "p", "verdict") and body[m]]
    ci = next((body[m].get("ci") for m in models if body[m].get("ci")), None)
    seeds = body.get("seeds")
    about = [f"{'higher' if metric.higher_is_better else 'lower'} is better"]
    if seeds:
        about.append(f"seeds {','.join(map(str, seeds))}")
    if ci:
        about.append(ci)
    lines = [f"{job.title} {metric.key} ({'; '.join(about)}):",
             f"  {'model':<12} {'mean':>8}  {'95% interval':<20} p vs pretrained"]
    p = body.get("p") or {}
    for m in models:
        b = body[m]
        interval = (f"[{b['ci_low']:.4f}, {b['ci_high']:.4f}]"
                    if b.get("ci_low") is not None and b.get("ci_high") is not None else "-")
        test = "" if m == "pretrained" else verdict.format_p(p.get(f"pretrained_vs_{m}"))
        lines.append(f"  {verdict.display(m):<12} {_fmt(b.get('mean')):>8}  {interval:<20} "
                     f"{test}".rstrip())
    return lines


def evaluations(evals: Mapping[str, Any], steps: int | None = None) -> list[str]:
    """Table and verdict of every evaluator result that has a headline."""
    lines = []
    for name, result in evals.items():
        found = headline.block(name, result, steps)
        if found is None:
            continue
        body = found[1]
        lines += table(jobs.JOBS[name], body)
        if body.get("verdict"):
            lines += wrap(f"verdict: {body['verdict']}")
    return lines


def _warnings(warnings: list[str]) -> list[str]:
    lines = [line for w in warnings[:MAX_WARNINGS] for line in wrap(f"warning: {w}")]
    if len(warnings) > MAX_WARNINGS:
        lines.append(f"({len(warnings) - MAX_WARNINGS} more warnings in the result file)")
    return lines


def _pictures(paths: list[str]) -> list[str]:
    paths = [p for p in dict.fromkeys(paths) if p and os.path.exists(p)]
    return ["pictures: " + ", ".join(paths)] if paths else []


def pretrain(result: Mapping[str, Any]) -> str:
    """The closing summary of a pretraining run (and its `train.eval_after` results)."""
    workdir = result.get("workdir", "")
    loss = result.get("final_loss")
    lines = [f"{workdir}: step {result.get('step')} of {result.get('total_steps')}, final "
             f"loss {_fmt(loss, '.4g')}"
             + (f" (resumed from step {result['resumed_from']})"
                if result.get("resumed_from") is not None else "")]
    if result.get("preempted"):
        lines.append("preempted: saved and stopped early; rerun the same command to resume")
    evals = result.get("eval") or {}
    lines += evaluations(evals, result.get("step"))
    lines += _warnings(list(result.get("warnings") or []))
    lines += _pictures([result.get("loss_curve") or ""]
                       + [(r or {}).get("render_png") or "" for r in evals.values()])
    lines.append(f"full results: {os.path.join(workdir, 'results.json')}")
    return "\n".join(lines)


def evaluator(name: str, result: Mapping[str, Any], out_json: str = "") -> str:
    """The closing summary of one evaluator run on its own."""
    lines = evaluations({name: result})
    if not lines:
        job = jobs.JOBS.get(name)
        values = [f"{m.key} {_fmt(result.get(m.key))}" for m in (job.metrics if job else ())
                  if m.key in result]
        lines.append(f"{name}: " + (", ".join(values) or "done"))
    lines += _pictures([result.get("render_png") or ""])
    if out_json:
        lines.append(f"full result: {out_json}")
    return "\n".join(lines)


def bundle(summary: Mapping[str, Any]) -> str:
    """The closing summary of an eval bundle: each step's status and verdict."""
    lines = [f"eval bundle {summary.get('run_tag')} ({summary.get('ckpt')}):"]
    for name, step in (summary.get("steps") or {}).items():
        status = step.get("status")
        detail = step.get("reason") or step.get("error") or ""
        lines.append(f"  {name}: {status}" + (f" ({detail})" if detail else ""))
        if step.get("verdict"):
            lines += ["    " + line for line in wrap(f"verdict: {step['verdict']}")]
    lines.append(f"full results: {os.path.join(str(summary.get('results_dir')), 'bundle.json')}")
    return "\n".join(lines)


def text(config: Any, result: Mapping[str, Any]) -> str:
    """The summary of the result of the job `config` ran."""
    job = str(config.job)
    if job == "pretrain":
        return pretrain(result)
    if job == "eval_bundle":
        return bundle(result)
    return evaluator(job, result, str(config.out_json))
