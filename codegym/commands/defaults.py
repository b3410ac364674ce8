"""``codegym defaults``: the embedded default policy and PRM (show them, rebuild them).

Examples::

    codegym defaults info                 # what ships: files, sizes, measured figures
    codegym defaults build                # rebuild: SFT -> label -> train-prm -> measure
    codegym defaults build --out /tmp/d --work /tmp/w --seed 1 --threads 1

``build`` runs the project's own pipeline with fixed seeds (see ``codegym.defaults.build``)
and, by default, writes into the installed package (``codegym/defaults``), replacing the
shipped files. It takes about half an hour of CPU on 2 cores (SFT alone ~14 min); every stage
resumes when the command is run again with the same settings.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("defaults", help="the embedded default policy and PRM: info, rebuild",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="defaults_action", metavar="ACTION", required=True)
    i = actions.add_parser("info", help="show the shipped files and what they measure")
    i.add_argument("--verify", action="store_true", help="also check every file's SHA-256")
    i.set_defaults(run=run)
    b = actions.add_parser("build", help="rebuild them with the project's pipeline (seeded)")
    b.add_argument("--out", default=None, help="export directory (default: the package's codegym/defaults)")
    b.add_argument("--work", default=None, help="work directory of the stages (default: runs/defaults-build)")
    b.add_argument("--seed", type=int, default=None, help="seed of every stage (default 0)")
    b.add_argument("--threads", type=int, default=None, help="torch threads (default 1: reproducible byte for byte)")
    b.add_argument("--label-responses", type=int, default=None, help="responses labelled for training")
    b.add_argument("--heldout-responses", type=int, default=None, help="responses labelled for measuring")
    b.add_argument("--k", type=int, default=None, help="completions per prefix")
    b.add_argument("--workers", type=int, default=None, help="parallel program executions")
    b.add_argument("--check-tasks", type=int, default=None, help="test tasks of the policy check set")
    b.add_argument("--main-job-episodes", type=int, default=None,
                   help="episodes of the README's main job measured into the manifest (0: skip)")
    b.add_argument("--sft-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an SFTConfig field (repeatable; changes the defaults)")
    b.add_argument("--prm-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a PRMTrainConfig field (repeatable; changes the defaults)")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.set_defaults(run=run, on_interrupt=_interrupted)


def _interrupted(args: argparse.Namespace) -> str:
    work = args.work or "runs/defaults-build"
    return (f"finished stages and partial progress are saved in {work}; run the same command "
            "again to resume (the shipped files change only at the export stage)")


def run(args: argparse.Namespace) -> int:
    from codegym.commands.common import console
    from codegym.defaults import DEFAULTS_DIR, manifest, verify
    from codegym.defaults.build import build_defaults, main_args_to_config, summary_table

    if args.defaults_action == "build":
        build_defaults(main_args_to_config(args))
        return 0
    man = manifest()
    console.print(summary_table(man))
    console.print(f"directory: {DEFAULTS_DIR}\nbuilt by: {man.get('command')} "
                  f"(torch {man['versions']['torch']}, {man.get('threads')} threads)")
    if args.verify:
        files = verify()
        console.print(f"verified {len(files)} files against the manifest's SHA-256")
    return 0
