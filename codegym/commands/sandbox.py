"""``codegym sandbox``: build the Docker sandbox image, clean up leftover sandbox containers."""

from __future__ import annotations

import argparse

from codegym.commands.common import console

NAME = "sandbox"
HELP = "Docker sandbox: build the image, clean up containers"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=HELP,
                       description=__doc__)
    actions = p.add_subparsers(dest="sandbox_action", metavar="ACTION", required=True)
    b = actions.add_parser(
        "build", help="build the sandbox image offline (debootstrap + docker import + Dockerfile)",
        description="Build the base image with debootstrap + docker import if it is missing "
                    "(root, a Debian mirror), then the sandbox image from "
                    "sandboxes/images/python/. Quick when both exist.")
    b.add_argument("--force", action="store_true",
                   help="rebuild the sandbox image even if its tag exists (the base is kept)")
    b.set_defaults(run=run)
    c = actions.add_parser(
        "cleanup", help="remove sandbox containers left by crashed processes",
        description="Remove containers labelled codegym.sandbox=1 whose owner process is gone "
                    "(or every one with --all).")
    c.add_argument("--all", action="store_true",
                   help="also remove containers of running sandboxes")
    c.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandboxes import SandboxUnavailable
    from sandboxes.docker import build_image, cleanup_containers

    try:
        if args.sandbox_action == "build":
            with console.status("building the sandbox image ..."):
                ref = build_image(force=args.force)
            console.print(f"sandbox image ready: [bold]{ref}[/]")
            return 0
        removed = cleanup_containers(all_owners=args.all)
    except SandboxUnavailable as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False)
        return 1
    console.print(f"removed {len(removed)} sandbox container(s)"
                  + (": " + ", ".join(c[:12] for c in removed) if removed else ""))
    return 0
