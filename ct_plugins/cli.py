"""The ``ct`` command line. Plugins add subcommands through the ``register_commands`` hook."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ct_plugins import __version__
from ct_plugins.adapter import UnsupportedUpstreamError
from ct_plugins.adapter_commands import add_adapter_commands
from ct_plugins.elements import UnknownElementError
from ct_plugins.errors import InputError
from ct_plugins.node_features import shipped_encoders
from ct_plugins.plugins import adapters, plugin_manager
from ct_plugins.registry import TableUnavailable, import_table, load_table, table_sources
from ct_plugins.tables import TableError

EXPORTERS = {
    "cgcnn": "to_cgcnn_json",
    "json": "to_json",
    "csv": "to_csv",
    "safetensors": "save",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ct",
        description="CrystalTransformer universal atomic embeddings for ALIGNN, MatGL MEGNet "
        "and CGCNN. Run `ct COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"ct-plugins {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="adapters, upstream versions and tables found here")
    info.set_defaults(func=cmd_info)
    _add_tables_commands(commands)
    add_adapter_commands(commands, adapters())
    plugin_manager().hook.register_commands(subparsers=commands)
    parser.set_defaults(func=lambda args: print_commands(parser))
    return parser


def print_commands(parser: argparse.ArgumentParser) -> int:
    """``ct`` alone: the usage and one line per command (argparse's own listing)."""
    print(f"ct-plugins {__version__}")
    parser.print_help()
    return 0


def _add_tables_commands(commands: argparse._SubParsersAction) -> None:
    tables = commands.add_parser("tables", help="list, show, export and import embedding tables")
    sub = tables.add_subparsers(dest="tables_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="every named table with its size").set_defaults(func=cmd_list)
    show = sub.add_parser("show", help="a table's provenance, statistics and elements")
    show.add_argument("name", help="table name (see `ct tables list`) or file path")
    show.set_defaults(func=cmd_show)
    export = sub.add_parser("export", help="write a table for an upstream or another tool")
    export.add_argument("name", help="table name or file path")
    export.add_argument("--format", choices=sorted(EXPORTERS), default="cgcnn",
                        help="cgcnn: atom_init.json keyed by Z; json/csv: elementembeddings "
                        "layout keyed by symbol; safetensors: ct-plugins format (default: cgcnn)")
    export.add_argument("--out", required=True, help="output file")
    export.set_defaults(func=cmd_export)
    imp = sub.add_parser("import", help="store a table file under a name, loadable like any other")
    imp.add_argument("file", help=".safetensors, atom_init-style .json, symbol-keyed .json or .csv")
    imp.add_argument("--name", required=True, help="name to register the table under")
    imp.add_argument("--force", action="store_true", help="replace an imported table of that name")
    imp.set_defaults(func=cmd_import)


def cmd_info(args: argparse.Namespace) -> int:
    print(f"ct-plugins {__version__}\n\nAdapters:")
    found = adapters()
    for name, adapter in sorted(found.items()):
        status = adapter.available()
        mark = "supported" if status.ok else "NOT supported"
        print(f"  {name:10s} {adapter.upstream:10s} {status.version or '-':12s} {mark}: {status.reason}")
    if not found:
        print("  (none installed)")
    print("\nTables:")
    sources = table_sources()
    width = _name_width(sources)
    for name, source in sorted(sources.items()):
        print(f"  {name:{width}s} {source.group:9s} {_size_or_reason(source)}")
    print("\nEncoders (per-structure node features: --atom-features ct-encoder:NAME):")
    for name, entry in sorted(shipped_encoders().items()):
        print(f"  {name:{width}s} {'shipped':9s} {entry.get('description', '')}")
    return 0


def _name_width(sources: dict) -> int:
    return max([12, *map(len, sources)])


def _size_or_reason(source) -> str:
    try:
        table = source.load()
    except TableUnavailable as exc:
        return f"unavailable: {exc}"
    except TableError as exc:
        return f"BROKEN: {exc}"
    return f"{len(table):3d} elements x {table.dim:3d}  {source.description}"


def cmd_list(args: argparse.Namespace) -> int:
    sources = table_sources()
    width = _name_width(sources)
    print(f"{'name':{width}s} {'group':9s} size / description")
    for name, source in sorted(sources.items(), key=lambda kv: (kv[1].group, kv[0])):
        print(f"{name:{width}s} {source.group:9s} {_size_or_reason(source)}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    table = load_table(args.name)
    m = table.matrix
    print(f"name:        {table.name}\nsize:        {len(table)} elements x {table.dim} dims")
    print(f"sha256:      {table.sha256()}")
    print(f"values:      mean {m.mean():.4g}  std {m.std():.4g}  min {m.min():.4g}  max {m.max():.4g}")
    print(f"elements:    {' '.join(table.elements)}")
    for line in provenance_lines(table.metadata):
        print(line)
    for key, value in table.metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        print(f"{key + ':':12s} {text}")
    return 0


def provenance_lines(metadata: dict) -> list[str]:
    """The bytes a pretrained table came from: data files and exclusion lists (sha256), runtime."""
    data = metadata.get("source_data")
    if not isinstance(data, dict):  # peers and imports name a source, not a training run
        return []
    files = [(digest, path) for path, digest in data.get("data_files", {}).items()]
    excluded = data.get("exclude_formula_files")
    if isinstance(excluded, dict):  # older tables list the file names only
        files += [(digest, f"{path} (excluded formulas)") for path, digest in excluded.items()]
    lines = [f"{'data files:' if i == 0 else '':12s} {digest}  {path}" for i, (digest, path) in enumerate(files)]
    if not files:
        lines.append("data files:  not recorded (exported before data files were hashed)")
    if "excluded_formulas_sha256" in data:
        lines.append(f"exclusions:  {data.get('excluded_formula_count')} formulas, sha256 {data['excluded_formulas_sha256']}")
    runtime = metadata.get("runtime") or {}
    lines.append("runtime:     " + (", ".join(f"{k} {v}" for k, v in runtime.items()) or "not recorded"))
    return lines


def cmd_export(args: argparse.Namespace) -> int:
    table = load_table(args.name)
    path = getattr(table, EXPORTERS[args.format])(args.out)
    print(f"wrote {table.name} ({len(table)} x {table.dim}) as {args.format} to {path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path = import_table(args.file, args.name, force=args.force)
    print(f"imported {args.file} as table {args.name!r} ({path})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, TableError, UnknownElementError, KeyError, FileNotFoundError,
            UnsupportedUpstreamError) as exc:
        print("ct: error: " + " ".join(str(exc).split()), file=sys.stderr)  # one line, always
        return 2


if __name__ == "__main__":
    sys.exit(main())
