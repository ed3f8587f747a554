"""``hokusai-outbox``: inspect and replay the local registration outbox.

    hokusai-outbox status  [--path FILE] [--json]
    hokusai-outbox flush   [--path FILE] [--tracking-uri URI]
    hokusai-outbox requeue [--path FILE] [--key KEY]

``flush`` replays every pending registration against the tracking and registry URIs it was
spooled for (or only those of ``--tracking-uri``); credentials come from the environment
(``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or ``TOKEN``), the outbox never stores them.
``requeue`` puts failed rows (all, or one key's) back to pending. Exit status: 0 when nothing is
left pending or failed, 1 when some registrations are still pending (MLflow still down) or were
refused, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from hokusai.core import ModelRegistry
from hokusai.errors import HokusaiError
from hokusai.metrics import redact_uri
from hokusai.outbox import Outbox, default_outbox_path

__all__ = ["main"]


def _status(outbox: Outbox, as_json: bool) -> int:
    counts = outbox.counts()
    entries = outbox.entries(state=None)
    if as_json:
        print(
            json.dumps(
                {
                    "path": str(outbox.path),
                    "counts": counts,
                    "entries": [
                        {
                            "idempotency_key": e.idempotency_key,
                            "tracking_uri": redact_uri(e.tracking_uri),
                            "name": e.name,
                            "state": e.state,
                            "registry_uri": e.registry_uri,
                            "attempts": e.attempts,
                            "strikes": e.strikes,
                            "version": e.version,
                            "last_error": e.last_error,
                        }
                        for e in entries
                        if e.state != "done"
                    ],
                },
                indent=2,
            )
        )
    else:
        print(f"outbox: {outbox.path}")
        print(" ".join(f"{state}={n}" for state, n in sorted(counts.items())))
        for e in entries:
            if e.state == "done":
                continue
            print(
                f"{e.state:8} {e.idempotency_key} {e.name} -> {redact_uri(e.tracking_uri)} "
                f"attempts={e.attempts} strikes={e.strikes} last_error={e.last_error or '-'}"
            )
    return 0 if counts["pending"] == 0 and counts["failed"] == 0 else 1


def _flush(outbox: Outbox, tracking_uri: str | None) -> int:
    targets = sorted({(e.tracking_uri, e.registry_uri or "") for e in outbox.entries("pending")})
    if tracking_uri is not None:
        wanted = redact_uri(tracking_uri).rstrip("/")
        targets = [t for t in targets if t[0].rstrip("/") == wanted]
    rc = 0
    for uri, registry_uri in targets:
        registry = ModelRegistry(
            tracking_uri if tracking_uri is not None else uri,
            registry_uri=registry_uri or None,
            outbox_path=outbox.path,
            auto_drain=False,
        )
        report = registry.flush()
        for r in report.registered:
            dedup = " (already registered)" if r.deduplicated else ""
            print(f"registered {r.name} version {r.version} key={r.idempotency_key}{dedup}")
        for key, error in report.failed:
            print(f"failed     key={key}: {error}")
        if report.stopped_by:
            print(f"stopped: {redact_uri(uri)}: {report.stopped_by}")
        if report.failed or report.still_pending:
            rc = 1
    counts = outbox.counts()
    print(" ".join(f"{state}={n}" for state, n in sorted(counts.items())))
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hokusai-outbox", description="Inspect and replay the local registration outbox."
    )
    parser.add_argument(
        "--path", default=None, help=f"outbox file (default: {default_outbox_path()})"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and breaker")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="count and list pending/failed registrations")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    flush = sub.add_parser("flush", help="replay pending registrations exactly once")
    flush.add_argument(
        "--tracking-uri",
        default=None,
        help="only replay those for this URI (may carry credentials; they are not stored)",
    )
    requeue = sub.add_parser("requeue", help="failed rows back to pending")
    requeue.add_argument("--key", default=None, help="only the rows of this idempotency key")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        outbox = Outbox(args.path or default_outbox_path())
        if args.command == "status":
            return _status(outbox, args.json)
        if args.command == "requeue":
            n = outbox.requeue(args.key)
            print(f"requeued {n} row(s)")
            return 0
        return _flush(outbox, args.tracking_uri)
    except HokusaiError as exc:
        print(f"hokusai-outbox: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
