"""The device's command line: ``python -m edge_agent`` = ``vigil agent``.

``run --config FILE`` (what systemd starts) and ``check-config FILE``. Plain
argparse, no typer: typer and what it pulls in (click, rich, pydantic) cost the
device about 20 MB on disk and 8 MB of resident memory for parsing one option,
so the device needs only numpy, an interpreter and paho-mqtt. Every problem is
one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from edge_agent.errors import VigilInputError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints usage plus the message; one line is the project's contract.
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="The on-device agent: sensor -> scoring -> alerts.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = commands.add_parser("run", help="run the agent until SIGTERM/SIGINT (or the end of a replay)")
    run.add_argument("--config", "-c", required=True, help="agent TOML file (see firmware_configs/README.md)")
    check = commands.add_parser(
        "check-config", help="validate a config against the bundle, source and interpreter; print it with defaults"
    )
    check.add_argument("config", help="agent TOML file")
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m edge_agent") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "run":
        return run_agent(args.config, prog=f"{prog} run")
    return check_config(args.config, prog=f"{prog} check-config")


def run_agent(config: str, prog: str = "vigil agent run") -> int:
    """Load the config and run the service; a config problem is one line and exit 2."""
    from edge_agent import lean_imports

    lean_imports.install()  # before the first import of paho, numpy.random or hashlib (6 MB of RSS)
    from edge_agent.config import load_config
    from edge_agent.service import AgentService, configure_logging

    try:
        cfg = load_config(config)
        configure_logging(cfg.log.level)
        return AgentService(cfg).run()
    except VigilInputError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def check_config(config: str, prog: str = "vigil agent check-config") -> int:
    """Everything ``run`` will meet before the first sample: keys, secrets, files, bundle, source
    features and rate, and the model loaded in this machine's interpreter; then the effective config."""
    from edge_agent.config import load_config, render_config
    from edge_agent.config_runtime import check_runtime

    try:
        cfg = load_config(config)
        assert cfg.bundle is not None  # load_config checked it
        backend = check_runtime(cfg.bundle, cfg.bundle_section.num_threads, config_file=str(cfg.path))
    except VigilInputError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.write(render_config(cfg))
    sys.stdout.write(f"# the model loads in {backend} with {cfg.bundle_section.num_threads} thread(s)\n")
    return 0
