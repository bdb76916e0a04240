"""The ``vsm`` command line: a thin shell over the SDK and the runtime.

Exit codes, for scripts: 0 success; 1 the command ran and the answer is a failure (an intent
rejected, failed or timed out; a tree that did not start; replicas that did not converge);
2 usage error or an invalid spec; 3 no Ray cluster or no tree to talk to.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from actors._model_demo import ModelReport, run_model_demo
from actors._ray_demo import run_ray_demo
from actors._registry_demo import DemoReport, run_registry_demo
from actors._tree_cli import _tree_commands, run_tree_command
from protocol import Identity, KeyFileError
from vsm.kernels import arrays_as_lists

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_TREE = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsm",
        description="vsm-ray: Stafford Beer's Viable System Model as a distributed actor system.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model = sub.add_parser(
        "demo",
        help="run the main job: a tree of viable systems on Ray answering a mix of intents",
        description=(
            "Start a local Ray cluster and the demo tree (depth 2, a template spawned on "
            "demand) as Ray actors; send intents routed to every level, free text, a composite "
            "plan, demand that spawns a child, and intents that policy, the rate limit or a "
            "missing capability refuse; show the outcomes and the tree; stop everything. "
            "With --sim, run the same in the deterministic simulator on a lossy network "
            "instead. Exits 1 if any intent lacks exactly one terminal outcome."
        ),
    )
    model.add_argument("--sim", action="store_true", help="run in the simulator, not on Ray")
    model.add_argument("--address", help="Ray cluster to use (default: start a local one)")
    model.add_argument("--loss", type=_probability, default=0.05, help="--sim loss rate (0.05)")
    model.add_argument("--seed", type=int, default=7, help="--sim random seed (7)")
    model.add_argument("--format", choices=("table", "json"), default="table", help="output")
    _tree_commands(sub)
    demo = sub.add_parser(
        "gossip",
        help="registry replicas gossiping adverts over a lossy network until they agree",
        description=(
            "Start a tree of capability-registry replicas, let every replica advertise "
            "concurrently, exchange deltas over a shuffled, lossy, duplicating network, repair "
            "losses by digest anti-entropy, and check that every replica ends equal. Exits 1 "
            "if they do not."
        ),
    )
    demo.add_argument("--fanout", type=_positive, default=3, help="children per node (3)")
    demo.add_argument("--depth", type=_positive, default=2, help="depth of the tree (2)")
    demo.add_argument("--writes", type=_positive, default=60, help="adverts written (60)")
    demo.add_argument("--loss", type=_probability, default=0.2, help="message loss rate (0.2)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (7)")
    demo.add_argument("--format", choices=("table", "json"), default="table", help="output")
    keygen = sub.add_parser(
        "keygen",
        help="make an Ed25519 key for a cluster (federation) or a client",
        description=(
            "Write a new Ed25519 private key to PATH (PEM, mode 0600; an existing file is "
            "refused) and print its key id and public key: a peer puts them in its "
            "federation.peers (docs/federation.md), a tree in clients.keys."
        ),
    )
    keygen.add_argument("key_id", help="the key's id (what envelopes name)")
    keygen.add_argument("path", help="where to write the private key")
    keygen.add_argument("--format", choices=("table", "json"), default="table", help="output")
    return parser


def _keygen(args: argparse.Namespace, console: Console) -> int:
    try:
        identity = Identity.generate(args.key_id)
        identity.save(args.path)
    except (ValueError, KeyFileError) as exc:
        console.print(f"[red]{exc}[/]")
        return 2
    public = identity.public_key_bytes().hex()
    if args.format == "json":
        print(json.dumps({"key_id": identity.key_id, "public_key": public, "path": args.path}))
    else:
        console.print(f"wrote {args.path} (private: keep it to this cluster)")
        console.print(f'key_id = "{identity.key_id}"\npublic_key = "{public}"')
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _model(args: argparse.Namespace, console: Console) -> int:
    if args.sim:
        report = run_model_demo(seed=args.seed, loss=args.loss)
    else:
        report = run_ray_demo(address=args.address)
    if args.format == "json":
        print(json.dumps(_model_data(report), sort_keys=True, default=str))
    else:
        _print_model(report, console)
    return EXIT_OK if report.contract_holds else EXIT_FAILED


def _model_data(report: ModelReport) -> dict[str, object]:
    return {
        "contract_holds": report.contract_holds,
        "messages": report.messages,
        "virtual_seconds": round(report.virtual_seconds, 3),
        "by_status": dict(report.by_status()),
        "outcomes": {
            i: {
                "status": str(o.status),
                "reason": None if o.reason is None else str(o.reason),
                "by": None if o.by is None else str(o.by),
                "path": o.path,
                "result": arrays_as_lists(o.result),
                "detail": o.detail,
            }
            for i, o in sorted(report.outcomes.items())
        },
        "tree": report.tree,
        "variety": report.variety,
    }


def _print_model(report: ModelReport, console: Console) -> None:
    table = Table(title="intents and their outcomes (flood-* collapsed)")
    for column in ("intent", "status", "by", "where", "result / reason"):
        table.add_column(column)
    for intent in report.intents:
        if intent.id.startswith("flood-"):
            continue
        o = report.outcomes.get(intent.id)
        if o is None:
            table.add_row(intent.id, "[red]NONE[/]", "", "", "")
            continue
        result = arrays_as_lists(o.result, summary=True)
        shown = repr(result) if o.reason is None else f"{o.reason}: {o.detail}"
        colour = {"completed": "green", "failed": "yellow", "rejected": "magenta"}[o.status]
        table.add_row(intent.id, f"[{colour}]{o.status}[/]", str(o.by or ""), o.path, shown)
    console.print(table)
    flood = Counter(
        str(report.outcomes[i.id].status) for i in report.intents if i.id.startswith("flood-")
    )
    console.print(
        f"flood-*: {sum(flood.values())} intents from one user in one burst: {dict(flood)}"
    )
    tree = Table(title="the tree")
    for column in ("path", "depth", "alive", "units"):
        tree.add_column(column)
    for path, row in report.tree.items():
        tree.add_row(path, str(row["depth"]), str(row["alive"]), ", ".join(row["units"]))
    console.print(tree)
    v = report.variety
    console.print(
        f"variety at root: {v['arriving_kinds']:.0f} kinds arriving "
        f"({v['arriving_entropy_bits']:.2f} bits) against {v['answerable_kinds']:.0f} answerable"
    )
    verdict = "[green]holds[/]" if report.contract_holds else "[red]BROKEN[/]"
    console.print(
        f"{len(report.intents)} intents, {report.messages} messages, "
        f"{report.virtual_seconds:.1f} seconds; the intent contract {verdict}"
    )


def _demo(args: argparse.Namespace, console: Console) -> int:
    report = run_registry_demo(
        fanout=args.fanout, depth=args.depth, writes=args.writes, seed=args.seed, loss=args.loss
    )
    if args.format == "json":
        print(json.dumps(_report_data(report), sort_keys=True))
    else:
        _print_report(report, console)
    return EXIT_OK if report.converged else EXIT_FAILED


def _report_data(report: DemoReport) -> dict[str, object]:
    return {
        "replicas": len(report.replicas),
        "writes": report.writes,
        "delivered": report.delivered,
        "duplicated": report.duplicated,
        "dropped": report.dropped,
        "repaired_buckets": report.repaired_buckets,
        "gossip_rounds": report.rounds,
        "converged": report.converged,
        "adverts": report.adverts,
        "cheapest": {
            name: {"provider": a.provider, "cost": a.cost, "zone": a.zone}
            for name, a in report.cheapest.items()
        },
    }


def _print_report(report: DemoReport, console: Console) -> None:
    summary = Table(title="registry gossip", show_header=False)
    for name, value in _report_data(report).items():
        if name != "cheapest":
            summary.add_row(name, str(value))
    console.print(summary)
    table = Table(title="cheapest live provider per capability (as root sees it)")
    for column in ("capability", "provider", "cost", "zone"):
        table.add_column(column)
    for name, advert in sorted(report.cheapest.items()):
        table.add_row(name, advert.provider, f"{advert.cost:.2f}", advert.zone)
    console.print(table)
    verdict = "[green]converged[/]" if report.converged else "[red]DID NOT CONVERGE[/]"
    console.print(f"{len(report.replicas)} replicas: {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = _parser().parse_args(argv)
    console = Console()
    if args.command == "demo":
        return _model(args, console)
    if args.command == "gossip":
        return _demo(args, console)
    if args.command == "keygen":
        return _keygen(args, console)
    if args.command in ("up", "send", "tree", "status", "events", "rules", "metrics", "down"):
        return run_tree_command(args, console)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guarantees a command


if __name__ == "__main__":
    sys.exit(main())
