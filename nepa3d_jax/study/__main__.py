"""python -m nepa3d_jax.study --preset small [--out DIR] [--seeds 0,1,2] [--recipes a,b]

Builds the study corpus when missing, pretrains each recipe over the seeds, scores every run and
its own random init (probes + CPAC-UDF), and writes results/study/<preset>/: study.json,
study.md, probe_vs_k.png, cpac_mae.png, loss_curves.png, one CPAC sheet per recipe and, with
several recipes, compare.md / compare.png (`eval.compare` over the arm folders: each recipe
against the first, seeds grouped, Welch's t-test over seeds). The last
line printed is `pretrain value: recipe=<name> probe5_delta=... cpac_delta=... nn_copy=...`.
Finished runs are reused (a second call re-evaluates only what is missing).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from nepa3d_jax import cli


def _parser() -> argparse.ArgumentParser:
    from nepa3d_jax.study import presets, recipes
    ap = cli.ArgumentParser(prog="python -m nepa3d_jax.study", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small", choices=sorted(presets.PRESETS),
                    help="study size (default small)")
    ap.add_argument("--out", default="", help="output folder (default results/study/<preset>)")
    ap.add_argument("--corpus", default="", help="corpus folder (default data/study_<scale>)")
    cli.add_list(ap, "--seeds", default=(), help="pretraining seeds (default: the preset's)")
    cli.add_list(ap, "--recipes", default=(),
                 help=f"recipes (default: the preset's); known: {', '.join(recipes.RECIPES)}")
    cli.add_list(ap, "--set", default=(),
                 help="preset overrides STAGE:FIELD=VALUE, e.g. pretrain:train.num_steps=500 "
                      "(stages: pretrain, probe, cpac; VALUE is read as Python/JSON)")
    ap.add_argument("--headline", default="",
                    help="recipe of the last line (default: the recommended one when it runs, "
                         "else the first)")
    ap.add_argument("--workers", type=int, default=2, help="corpus build processes")
    ap.add_argument("--compilation-cache", default="",
                    help="JAX's persistent compilation cache folder, or off (default: "
                         "$NEPA3D_COMPILATION_CACHE, else ~/.cache/nepa3d_jax/jax)")
    return ap


def run(args: argparse.Namespace) -> dict:
    from nepa3d_jax import atomic_io, compile_cache
    from nepa3d_jax.study import arms as study_arms
    from nepa3d_jax.study import corpus as study_corpus
    from nepa3d_jax.study import plots, presets, recipes, report
    from nepa3d_jax.train.programs import Programs

    preset = presets.get(args.preset)
    for item in args.set:
        presets.apply_override(preset, item)
    seeds = [int(s) for s in (args.seeds or preset["seeds"])]
    names = list(args.recipes or preset["recipes"])
    for name in names:
        recipes.get(name)
    headline = headline_recipe(args, names)
    out = args.out or os.path.join("results", "study", args.preset)
    corpus_dir = args.corpus or os.path.join("data", f"study_{preset['corpus']}")
    t0 = time.time()
    # The random-init arm, the next seed and a rerun reuse the compiled programs of the same shapes.
    cache = compile_cache.enable(args.compilation_cache)
    print(f"[study] preset {args.preset}: recipes {names}, seeds {seeds}, out {out}, "
          f"compilation cache {cache or 'off'}", flush=True)
    corpus = study_corpus.ensure(corpus_dir, preset["corpus"], workers=args.workers)
    programs = Programs()
    arms = []
    for name in names:
        for i, seed in enumerate(seeds):
            arms.append(study_arms.run_arm(preset, name, seed, corpus, out, programs=programs,
                                           render=i == 0,
                                           validate="header" if arms else "full"))
            atomic_io.write_json_atomic(os.path.join(out, "arms.json"), arms)
    shots = [int(k) for k in str(preset["probe"]["shots"]).split(",")]
    summary = report.summarise(arms, shots)
    descriptions = {n: recipes.describe(n) for n in names}
    print("[study] hand-crafted baseline (D2 + PCA, logistic regression)", flush=True)
    hand = study_corpus.baseline(corpus, shots, int(arms[0]["probe"]["protocol"]["episodes"]),
                                 os.path.join(out, "baseline.json"))
    steps = int(preset["pretrain"].get("train.num_steps", 0)) or None
    said = report.verdicts(summary, steps)
    md = report.markdown(summary, shots, args.preset, descriptions, hand, said)
    pictures = plots.all_plots(summary, arms, shots, out, hand)
    compared = compare_recipes(arms, out) if len(names) > 1 else None
    if compared:
        md += "\n## Recipes against the first (`compare`, seeds grouped)\n\n" + compared
    lines = {name: report.value_line(summary, name) for name in names}
    line = lines[headline]
    result = dict(preset=args.preset, recipes=names, seeds=seeds, corpus=corpus.to_json(),
                  summary=summary, handcrafted_baseline=hand, verdicts=said,
                  pictures=pictures,
                  cpac_sheets={a["recipe"]: a["cpac_sheet"] for a in arms if a["cpac_sheet"]},
                  compare=os.path.join(out, "compare.md") if compared else None,
                  value_line=line, value_lines=lines, seconds=round(time.time() - t0, 1))
    atomic_io.write_json_atomic(os.path.join(out, "study.json"), result)
    atomic_io.write_text_atomic(os.path.join(out, "study.md"), md)
    print(md)
    print(f"[study] wrote {out}/study.json, study.md and "
          f"{', '.join(os.path.basename(p) for p in pictures.values())} in "
          f"{result['seconds'] / 60:.1f} min", flush=True)
    for name in names:  # one line per recipe, the headline recipe's last
        if name != headline:
            print(lines[name], flush=True)
    print(line, flush=True)
    return result


def compare_recipes(arms: list[dict], out: str) -> str:
    """`compare` over every arm folder, the first recipe's seeds first: one row per recipe
    (its seeds grouped), each tested against the first recipe (Welch over seeds); writes
    `<out>/compare.md` and `compare.png` and returns the table."""
    from nepa3d_jax.eval import compare

    return compare.compare([os.path.dirname(a["workdir"]) for a in arms],
                           os.path.join(out, "compare"), stems=("cpac_udf", "probe"))


def headline_recipe(args: argparse.Namespace, names: list[str]) -> str:
    """The recipe the last line speaks for: `--headline`, else the recommended recipe when it
    runs, else the first one."""
    from nepa3d_jax.study import recipes
    headline = args.headline or (recipes.RECOMMENDED if recipes.RECOMMENDED in names
                                 else names[0])
    if headline not in names:
        raise ValueError(f"--headline {headline!r} is not among --recipes {names}")
    return headline


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
