"""The ``vsm`` verbs that work on a running tree.

``up``, ``send``, ``tree``, ``status``, ``events`` and ``down``; exit codes in :mod:`actors.cli`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import ray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors._logs import LOG_FORMATS, logging_config
from actors._runtime import RayTree, TreeExistsError, TreeStartError
from actors.sdk import Client, IntentRefused, IntentTimeout, NoSuchViableSystem, NoTreeError
from actors.specfile import SpecError, load_rules, load_spec
from vsm.kernels import arrays_as_lists
from vsm.rules import Rule

__all__ = ["_tree_commands", "run_tree_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_TREE = 0, 1, 2, 3


def _tree_commands(sub: Any) -> None:
    """Add the tree verbs to the ``vsm`` parser's subcommands."""

    def common(
        parser: argparse.ArgumentParser,
        *,
        tree: bool = True,
        formats: tuple[str, ...] = ("table", "json"),
    ) -> None:
        parser.add_argument(
            "--address", help="Ray cluster (default: the local one, 'auto'; or ray://host:10001)"
        )
        if tree:
            parser.add_argument("--tree", help="the tree's name (default: the only one running)")
        parser.add_argument("--format", choices=formats, default=formats[0], help="output")

    up = sub.add_parser(
        "up",
        help="start a tree from a spec file (TOML, YAML or JSON)",
        description=(
            "Validate SPEC and start its tree on Ray: on the local cluster (started here if "
            "none runs) or on --address. Returns once every static viable system runs."
        ),
    )
    up.add_argument("spec", help="tree spec file: .toml, .yaml/.yml or .json")
    up.add_argument("--resume", action="store_true", help="take up the last run's checkpoints")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (120)")
    up.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="the hosts' log lines: Ray's text, or one JSON object a line (docs/observability.md)",
    )
    common(up, tree=False)

    send = sub.add_parser(
        "send",
        help="send an intent and wait for its outcome",
        description=(
            "Send TEXT (classified by S1) or --capability NAME with --param k=v (values are "
            "JSON when they parse, else strings). Exits 0 if the intent completed, 1 if it "
            "was rejected, failed or timed out."
        ),
    )
    send.add_argument("text", nargs="?", help="free text for S1 to classify")
    send.add_argument("--capability", "-c", help="capability name")
    send.add_argument("--param", "-p", action="append", default=[], metavar="K=V")
    send.add_argument("--user", default="cli", help="user (cli)")
    send.add_argument("--zone", default="default", help="zone (default)")
    send.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds (30)")
    common(send)

    for name, about in (
        ("tree", "show the live tree: placement, hosts, health, load"),
        ("status", "the tree at a glance"),
    ):
        common(sub.add_parser(name, help=about, description=about))

    events = sub.add_parser("events", help="show the tree's events", description="Show events.")
    events.add_argument("--follow", action="store_true", help="keep printing new events")
    events.add_argument("--for", dest="duration", type=float, default=None, help="stop after S s")
    events.add_argument("--kind", help="only events whose kind starts with this")
    common(events)

    rules = sub.add_parser(
        "rules",
        help="show or patch the rules System 3 runs",
        description=(
            "Show the GoldRush rules S3 runs at --path (default: the root) with their "
            "counters; with --add FILE (TOML, YAML or JSON: a list of rules) or --remove NAME, "
            "patch the set while events flow (docs/rules.md). Exits 2 on a bad rule, and then "
            "changes nothing."
        ),
    )
    rules.add_argument("--path", help="the viable system (default: the root)")
    rules.add_argument("--add", metavar="FILE", help="rules to add or replace, from a file")
    rules.add_argument(
        "--remove", action="append", default=[], metavar="NAME", help="a rule to remove"
    )
    common(rules)

    metrics = sub.add_parser(
        "metrics",
        help="the tree's Prometheus metrics: print them, or serve them",
        description=(
            "Print the tree's metrics as read now (Prometheus text format, or --format json: "
            "one sample per line), or with --serve keep serving them at "
            "http://BIND:PORT/metrics for Prometheus to scrape until interrupted "
            "(docs/observability.md)."
        ),
    )
    metrics.add_argument("--serve", action="store_true", help="serve /metrics until Ctrl-C")
    metrics.add_argument("--port", type=_port, default=9464, help="port to serve on (9464)")
    metrics.add_argument("--bind", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    common(metrics, formats=("prometheus", "json"))

    down = sub.add_parser("down", help="stop a tree", description="Stop the tree's actors.")
    down.add_argument("--ray", action="store_true", help="also stop the local Ray cluster")
    common(down)


def run_tree_command(args: argparse.Namespace, console: Console) -> int:
    """Run one tree verb; return its exit code."""
    try:
        if args.command == "up":
            return _up(args, console)
        with Client(args.tree, address=args.address) as client:
            if args.command == "send":
                return _send(args, client, console)
            if args.command == "tree":
                return _show_tree(args, client, console)
            if args.command == "status":
                return _emit(args, client.status(), console, "status")
            if args.command == "events":
                return _events(args, client, console)
            if args.command == "rules":
                return _rules(args, client, console)
            if args.command == "metrics":
                return _metrics(args, client, console)
            if args.command == "down":
                client.stop()
                if args.format == "json":
                    print(json.dumps({"stopped": client.name}))
                else:
                    console.print(f"tree {client.name!r} stopped")
                if args.ray:
                    _ray_stop()
                return EXIT_OK
    except NoTreeError as exc:
        console.print(f"[red]{exc}[/]")
        return EXIT_NO_TREE
    raise AssertionError(f"unhandled command {args.command!r}")


def _up(args: argparse.Namespace, console: Console) -> int:
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        console.print(f"[red]{exc}[/]")
        return EXIT_USAGE
    connected = _connect_or_start(args.address, console, args.log_format)
    try:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=args.format == "json",
        ) as bar:
            task = bar.add_task(f"starting {spec.name!r}: viable systems up", total=None)
            started = time.monotonic()
            tree = RayTree.start(
                spec,
                timeout=args.timeout,
                resume=args.resume,
                on_progress=lambda up, wanted: bar.update(task, completed=up, total=wanted),
            )
        parts = tree.describe()
        actors = tree.actor_names()
        data = {
            "tree": spec.name,
            "namespace": tree.namespace,
            "viable_systems": len(parts),
            "actors": actors,
            "seconds": round(time.monotonic() - started, 2),
        }
        if args.format == "json":
            print(json.dumps(data))
        else:
            console.print(
                f"tree {spec.name!r} is up: {len(parts)} viable systems, "
                f"{len(actors)} actors in namespace {tree.namespace!r} "
                f"({data['seconds']} s)"
            )
            _tree_table(parts, console)
        return EXIT_OK
    except TreeExistsError as exc:
        console.print(f"[red]{exc}[/]")
        return EXIT_FAILED
    except TreeStartError as exc:
        console.print(f"[red]{exc}[/]")
        return EXIT_FAILED
    finally:
        if connected:
            ray.shutdown()


def _connect_or_start(address: str | None, console: Console, log_format: str = "text") -> bool:
    """Connect to Ray (starting a local head node if none runs); return whether we connected.

    The job's actors (the tree's hosts) log in ``log_format`` (:mod:`actors._logs`).
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if log_format != "text":
        options["logging_config"] = logging_config(log_format)
    try:
        ray.init(address=address or "auto", **options)
        return True
    except ConnectionError:
        if address not in (None, "auto"):
            raise
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    with console.status("starting a local Ray cluster …"):
        subprocess.run(
            [
                ray_cli,
                "start",
                "--head",
                f"--num-cpus={os.cpu_count() or 1}",
                "--dashboard-host=127.0.0.1",
                "--disable-usage-stats",
            ],
            check=True,
            capture_output=True,
        )
    ray.init(address="auto", **options)
    return True


def _ray_stop() -> None:
    if ray.is_initialized():
        ray.shutdown()
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    subprocess.run([ray_cli, "stop"], check=False, capture_output=True)


def _params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param wants K=V, got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def _send(args: argparse.Namespace, client: Client, console: Console) -> int:
    if (args.text is None) == (args.capability is None):
        console.print("[red]give TEXT or --capability NAME (not both)[/]")
        return EXIT_USAGE
    try:
        params = _params(args.param)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        return EXIT_USAGE
    handle = client.submit(
        args.capability,
        text=args.text,
        params=params,
        user=args.user,
        zone=args.zone,
        timeout=args.timeout,
    )
    try:
        outcome = handle.outcome(timeout=args.timeout + 15)
    except IntentTimeout as exc:
        console.print(f"[red]{exc}[/]")
        if args.format == "json":
            print(json.dumps({"intent": handle.id, "status": "timeout"}))
        return EXIT_FAILED
    data = {
        "intent": outcome.intent_id,
        "status": outcome.status.value,
        "result": arrays_as_lists(outcome.result),
        "reason": None if outcome.reason is None else outcome.reason.value,
        "by": None if outcome.by is None else outcome.by.name,
        "path": outcome.path,
        "detail": outcome.detail,
    }
    if args.format == "json":
        print(json.dumps(data, default=str))
    else:
        try:
            result = handle.result()
            shown = arrays_as_lists(result, summary=True)
            console.print(f"[green]completed[/] at {outcome.path}: {shown!r}")
        except IntentRefused as exc:
            console.print(f"[magenta]{exc}[/]")
    return EXIT_OK if outcome.status.value == "completed" else EXIT_FAILED


def _tree_table(parts: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="the tree")
    columns = (
        "path",
        "placement",
        "health",
        "hosts",
        "incarnation",
        "units",
        "in flight",
        "adverts",
    )
    for column in columns:
        table.add_column(column)
    for part in parts:
        registry = part.get("registry") or {}
        table.add_row(
            part["path"],
            part["placement"],
            part.get("status", "healthy"),
            ", ".join(sorted(part["hosts"])),
            str(part["incarnation"]),
            ", ".join(part.get("units") or []),
            str(part.get("in_flight") or 0),
            str(registry.get("adverts", "")),
        )
    console.print(table)


def _show_tree(args: argparse.Namespace, client: Client, console: Console) -> int:
    parts = client.tree()
    if args.format == "json":
        print(json.dumps(parts, default=str))
    else:
        _tree_table(parts, console)
    return EXIT_OK


def _emit(args: argparse.Namespace, data: dict[str, Any], console: Console, title: str) -> int:
    if args.format == "json":
        print(json.dumps(data, default=str))
    else:
        table = Table(title=title, show_header=False)
        for key, value in data.items():
            if isinstance(value, dict):  # the federation: counters, not the signed heads
                shown = {k: v for k, v in value.items() if k != "peer_checkpoints"}
                table.add_row(key, ", ".join(f"{k}={v}" for k, v in shown.items()))
                continue
            table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
        console.print(table)
    return EXIT_OK


def _rules(args: argparse.Namespace, client: Client, console: Console) -> int:
    try:
        if args.add is None and not args.remove:
            found = client.rules(args.path)
        else:
            add = load_rules(args.add) if args.add is not None else []
            found = client.patch_rules(add, args.remove, args.path)
    except (SpecError, ValueError) as exc:  # NoSuchViableSystem is a LookupError
        console.print(f"[red]{exc}[/]")
        return EXIT_USAGE
    except NoSuchViableSystem as exc:
        console.print(f"[red]{exc}[/]")
        return EXIT_FAILED
    if args.format == "json":
        print(json.dumps(found, default=str))
        return EXIT_OK
    table = Table(title=f"rules of {found['path']} (version {found['version']})")
    for column in ("rule", "condition", "response", "input", "matched"):
        table.add_column(column)
    for rule in found["rules"]:
        stats = found["stats"].get(rule["name"], {})
        table.add_row(
            rule["name"] + ("" if rule.get("enabled", True) else " (off)"),
            Rule.from_data(rule).text,
            json.dumps(rule["response"]),
            str(stats.get("input", 0)),
            str(stats.get("matched", 0)),
        )
    console.print(table)
    return EXIT_OK


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


def _metrics(args: argparse.Namespace, client: Client, console: Console) -> int:
    if not args.serve:
        if args.format == "json":
            for sample in client.metrics():
                print(json.dumps(sample))
        else:
            sys.stdout.write(client.metrics_text())
        return EXIT_OK
    try:
        server = client.serve_metrics(args.port, args.bind)
    except OSError as exc:
        console.print(f"[red]cannot serve on {args.bind}:{args.port}: {exc}[/]")
        return EXIT_USAGE
    console.print(f"serving the metrics of {client.name!r} at {server.url} (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        server.close()


def _events(args: argparse.Namespace, client: Client, console: Console) -> int:
    since = 0.0
    stop = None if args.duration is None else time.monotonic() + args.duration
    while True:
        for event in client.events(since):
            since = max(since, event.at)
            if args.kind and not event.kind.startswith(args.kind):
                continue
            row = {"at": event.at, "kind": event.kind, "path": event.path, "data": event.data}
            if args.format == "json":
                print(json.dumps(row, default=str), flush=True)
            else:
                console.print(f"{event.at:.3f} {event.path:<20} {event.kind:<20} {event.data}")
        if not args.follow or (stop is not None and time.monotonic() > stop):
            return EXIT_OK
        time.sleep(1.0)
