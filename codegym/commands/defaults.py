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
from typing import Any

NAME = "defaults"
HELP = "the embedded default policy and PRM: info, rebuild"

#: DefaultsBuildConfig fields that are no flag of ``defaults build``, and why.
NOT_EXPOSED = {"sft": "SFTConfig overrides: --sft-set KEY=VALUE (or --set sft.KEY=VALUE)",
               "prm": "PRMTrainConfig overrides: --prm-set KEY=VALUE (or --set prm.KEY=VALUE)"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from codegym.config import add_config_args
    from codegym.defaults.build import DefaultsBuildConfig

    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="defaults_action", metavar="ACTION", required=True)
    i = actions.add_parser("info", help="show the shipped files and what they measure")
    i.add_argument("--verify", action="store_true", help="also check every file's SHA-256")
    i.set_defaults(run=run)
    b = actions.add_parser("build", help="rebuild them with the project's pipeline (seeded)")
    add_config_args(b, DefaultsBuildConfig, not_exposed=NOT_EXPOSED)
    b.add_argument("--sft-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an SFTConfig field (repeatable; changes the defaults)")
    b.add_argument("--prm-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a PRMTrainConfig field (repeatable; changes the defaults)")
    b.set_defaults(run=run, on_interrupt=_interrupted)


def _interrupted(args: argparse.Namespace) -> str:
    work = getattr(args, "work", None) or "runs/defaults-build"
    return (f"finished stages and partial progress are saved in {work}; run the same command "
            "again to resume (the shipped files change only at the export stage)")


def run(args: argparse.Namespace) -> int:
    from codegym.commands.common import console
    from codegym.defaults import DEFAULTS_DIR, manifest, verify
    from codegym.defaults.build import build_defaults, summary_table

    if args.defaults_action == "build":
        build_defaults(build_config(args))
        return 0
    man = manifest()
    console.print(summary_table(man))
    console.print(f"directory: {DEFAULTS_DIR}\nbuilt by: {man.get('command')} "
                  f"(torch {man['versions']['torch']}, {man.get('threads')} threads)")
    if args.verify:
        files = verify()
        console.print(f"verified {len(files)} files against the manifest's SHA-256")
    return 0


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`DefaultsBuildConfig` of ``defaults build``'s ``--config``, ``--set``, flags,
    ``--sft-set`` and ``--prm-set``."""
    from codegym.config import config_data
    from codegym.defaults.build import DefaultsBuildConfig
    from codegym.plugins import parse_kv

    data = config_data(args)
    for section, pairs in (("sft", args.sft_set), ("prm", args.prm_set)):
        data[section] = {**data.get(section, {}), **parse_kv(pairs)}
    return DefaultsBuildConfig.from_dict(data)
