"""Continue a run from its latest checkpoint with some ``guided`` settings changed, into a new run folder.

Paired comparisons: run the warm-up once (``gpsx train peg2d --recipe --seed S --iterations 25 --out warm``;
25 is the peg2d recipe's warm-up, 45 before session 18), then branch it once per setting, so that every branch
shares the same first iterations and differs only in the setting. ``gpsx train --resume`` refuses changed
settings on purpose; this script is for experiments. docs/results.md (issue 6, session 8, §2 and §3, on the
60-iteration recipe of then) was made this way, e.g.

    PYTHONPATH=build/dev:python python benchmarks/branch_run.py warm bound16 40 '{"max_action_variance": 16}'
    PYTHONPATH=build/dev:python python benchmarks/branch_run.py warm nobound 40 '{"max_action_variance": null}'

Then ``gpsx eval bound16`` etc. A branch whose settings equal the source's continues it bit for bit. The
tables of session 8 were made at commit 510088a, before the fix of session 8 §7; on later code the same
commands give the uninterrupted runs' numbers, which can differ from those tables.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from gpsx.runs import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the run folder to branch from (left unchanged)")
    parser.add_argument("out", type=Path, help="the new run folder (must not exist)")
    parser.add_argument("iterations", type=int, help="total iterations of the branch")
    parser.add_argument("guided", type=json.loads, help="JSON object of GuidedConfig settings to change")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists")
    shutil.copytree(args.source, args.out)
    run = RunDir(args.out)
    algo = run.resume()
    settings = algo.config.to_dict()
    settings["guided"].update(args.guided)
    settings["iterations"] = args.iterations
    algo.config = algo.config.replace(**settings)
    if algo.guide is not None:
        algo.guide.config = algo.config.guided
    recorded = run.settings()
    recorded["config"] = algo.config.to_dict()       # config.json names the branch's settings, not the source's
    (args.out / RunDir.CONFIG).write_text(json.dumps(recorded, indent=2) + "\n")
    print(f"{args.out}: from iteration {algo.iteration} to {args.iterations} with guided settings {args.guided}")
    for report in algo.run(args.iterations):
        run.record(algo, report)


if __name__ == "__main__":
    main()
