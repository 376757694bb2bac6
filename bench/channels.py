"""Channels benchmark (part of `make bench`): signed webhook deliveries accepted per second
by one web server process on one core, and replies sent per second through the outbox
against a local platform server.

For each database (a fresh SQLite file, and the PostgreSQL database `sotong_bench` dropped
and created again), a worker subprocess (SOTONG_DATABASE_URL set before Django starts)
migrates, loads the directory and sets the demo webhook secrets (not timed), then

1. webhooks: starts gunicorn with ONE worker process (4 threads), pinned to CPU 0 where the
   machine has two or more, and posts distinct Facebook Page `feed` comment deliveries,
   each signed with X-Hub-Signature-256 as Meta signs them, from client processes pinned to
   the other CPUs, each on a keep-alive connection, to `/hooks/meta/<handle>/`. Each
   accepted delivery is verified, stored and its parsing job queued (the job is not run:
   this measures what the platform waits for). Latency is per request as the client sees
   it; throughput is all requests over the wall time.
2. outbox: publishes answers to cases opened by Mastodon mentions (not timed), then sends
   each delivery through `send_delivery` — claim, commit, the real Mastodon connector
   (Mastodon.py) posting over HTTP to a local Mastodon-like server (sotong/channels/
   testing.py, run in its own process), record — one after the other in one process, as
   one worker does. Replies per second and the latency of one send.

Results go to bench/results/channels-latest.json; a summary is printed.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    DEFAULT_POSTGRES_URL,
    environment,
    free_port,
    fresh_database,
    latency_figures,
    log,
    start_server,
    stop_server,
    worker_env,
)

RESULTS_DIR = ROOT / "bench" / "results"
HOOK_HANDLE = "seoulcity"  # a Facebook Page of the demo directory
HOOK_PATH = f"/hooks/meta/{HOOK_HANDLE}/"
CLIENT_PROCESSES = 4
WARMUP = 50  # deliveries sent before the clock starts
TARGET_WEBHOOKS_PER_SECOND = 1_000
TARGET_WEBHOOK_P99_MS = 50.0


# --- Webhooks -------------------------------------------------------------------------


def pin(cpus: set[int]) -> None:
    if hasattr(os, "sched_setaffinity") and cpus:
        os.sched_setaffinity(0, cpus)


def client_process(port: int, start: int, count: int, cpus: set[int], out: Any) -> None:
    """Post `count` signed deliveries on one keep-alive connection; send back latencies."""
    pin(cpus)
    from sotong.channels.demo import meta_delivery

    deliveries = [
        meta_delivery(
            "facebook",
            HOOK_HANDLE,
            f"citizen_{n}",
            f"종로구 창신동 골목 보안등이 꺼져 있어요 ({n}번째 제보)",
            f"100000000000000_1_{n}",
        )
        for n in range(start, start + count)
    ]
    prepared = [(d.body, d.headers) for d in deliveries]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, failures = [], []
    for body, headers in prepared:
        began = time.perf_counter()
        try:
            conn.request("POST", HOOK_PATH, body=body, headers=headers)
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            began = time.perf_counter()
            conn.request("POST", HOOK_PATH, body=body, headers=headers)
            response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - began)
        if response.status != 200:
            failures.append(response.status)
    conn.close()
    out.send((latencies, failures))


def run_webhooks(database: str, deliveries: int) -> dict[str, Any]:
    from sotong.channels.models import WebhookDelivery

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpus = {cpus[0]} if len(cpus) >= 2 else set()
    client_cpus = set(cpus[1:]) if len(cpus) >= 2 else set()
    port = free_port()
    log_path = ROOT / "var" / "bench" / f"gunicorn-webhooks-{database}.log"
    # The handshake without a token answers 403 and touches no data.
    server = start_server(port, log_path, workers=1, cpus=server_cpus, probe=HOOK_PATH)
    try:
        # Warm-up: the worker imports and connects before the clock starts.
        warm = multiprocessing.Pipe(duplex=False)
        client_process(port, 10_000_000, WARMUP, client_cpus, warm[1])
        warm[0].recv()
        per_client = deliveries // CLIENT_PROCESSES
        pipes, processes = [], []
        for i in range(CLIENT_PROCESSES):
            receive, send = multiprocessing.Pipe(duplex=False)
            process = multiprocessing.Process(
                target=client_process, args=(port, i * per_client, per_client, client_cpus, send)
            )
            pipes.append(receive)
            processes.append(process)
        started = time.perf_counter()
        for process in processes:
            process.start()
        results = [pipe.recv() for pipe in pipes]
        seconds = time.perf_counter() - started
        for process in processes:
            process.join()
    finally:
        stop_server(server)
    latencies = [x for lat, _ in results for x in lat]
    failures = [f for _, fail in results for f in fail]
    stored = WebhookDelivery.objects.count() - WARMUP
    figures = latency_figures(latencies, seconds)
    figures.update(
        {
            "server": "gunicorn sotong.wsgi --workers 1 --threads 4"
            + (f", pinned to CPU {sorted(server_cpus)}" if server_cpus else ""),
            "client_processes": CLIENT_PROCESSES,
            "client_cpus": sorted(client_cpus),
            "deliveries_sent": len(latencies),
            "deliveries_stored": stored,
            "non_200": len(failures),
            "seconds": round(seconds, 3),
        }
    )
    return figures


# --- Outbox ---------------------------------------------------------------------------


def stub_process(ready: Any, stop: Any, cpus: set[int]) -> None:
    """The local platform in its own process: sends its URL, serves until told to stop,
    then sends the ids it posted and the requests it saw."""
    pin(cpus)
    from sotong.channels.testing import stub_mastodon

    with stub_mastodon() as (url, state):
        ready.send(url)
        stop.recv()
        ready.send(([p.id for p in state.posted], state.requests))


MASTODON_HANDLE = "@seoul@mastodon.example"
BENCH_ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
    "종로구청 건설관리과(☎02-2148-1234)로 연락주시면 성심껏 답변드리겠습니다."
)


def published_mastodon_deliveries(url: str, count: int) -> list[int]:
    """`count` cases opened by Mastodon mentions, answered and published through the
    services, their reply deliveries created (not timed); returns the deliveries' ids."""
    from django_q.models import OrmQ

    from sotong.cases import services
    from sotong.channels.credentials import set_account_setting
    from sotong.channels.outbox import deliver_answer
    from sotong.directory.models import Account, CaseType, Officer, Unit
    from sotong.inbox.normalize import NormalizedMessage
    from sotong.inbox.services import ingest_batch

    account = Account.objects.get(channel__code="mastodon", handle=MASTODON_HANDLE)
    set_account_setting(account, "api_base_url", url)
    set_account_setting(account, "access_token", "bench-token")
    set_account_setting(account, "acct", "seoul@mastodon.example")
    unit = Unit.objects.get(code="district-jongno")
    officer, _ = Officer.objects.get_or_create(
        username="bench-jongno", defaults={"role": Officer.Role.OFFICER, "unit": unit}
    )
    messages = ingest_batch(
        [
            NormalizedMessage(
                channel="mastodon",
                external_id=f"{111_000_000_000_000_000 + n}",
                account=MASTODON_HANDLE,
                author=f"@citizen{n}@mastodon.example",
                text=f"창신동 골목 보안등이 꺼졌어요 ({n})",
                raw={"visibility": "public"},
            )
            for n in range(count)
        ]
    )
    cases = services.open_cases(
        [
            services.CaseOpening(
                message=m,
                case_type=CaseType.objects.get(code="request"),
                category=None,
                unit=unit,
                urgent=False,
            )
            for m in messages
        ]
    )
    ids = []
    for case in cases:
        services.draft_answer(case, BENCH_ANSWER, actor=officer)
        answer = services.publish_answer(case, actor=officer)
        delivery = deliver_answer(answer.pk)
        assert delivery is not None
        ids.append(delivery.pk)
    OrmQ.objects.all().delete()  # the jobs are the benchmark's to run, one by one
    return ids


def run_outbox(replies: int) -> dict[str, Any]:
    from sotong.channels.models import ReplyDelivery, ReplyState
    from sotong.channels.outbox import send_delivery

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    stub_cpus = set(cpus[1:]) if len(cpus) >= 2 else set()
    ready_receive, ready_send = multiprocessing.Pipe(duplex=False)
    stop_receive, stop_send = multiprocessing.Pipe(duplex=False)
    stub = multiprocessing.Process(target=stub_process, args=(ready_send, stop_receive, stub_cpus))
    stub.start()
    try:
        url = ready_receive.recv()
        ids = published_mastodon_deliveries(url, replies + 1)
        if cpus:
            pin({cpus[0]})
        send_delivery(ids[0])  # warm-up: the client library and the connection
        latencies = []
        started = time.perf_counter()
        for pk in ids[1:]:
            began = time.perf_counter()
            state = send_delivery(pk)
            latencies.append(time.perf_counter() - began)
            if state != ReplyState.SENT:
                raise SystemExit(f"bench: delivery {pk} ended {state}")
        seconds = time.perf_counter() - started
        stop_send.send(True)
        posted, requests = ready_receive.recv()
    finally:
        stub.join(timeout=10)
        if stub.is_alive():
            stub.kill()
    sent = ReplyDelivery.objects.filter(state=ReplyState.SENT).count()
    figures = latency_figures(latencies, seconds)
    figures.update(
        {
            "replies_sent": sent,
            "platform_statuses": len(posted),
            "platform_distinct_statuses": len(set(posted)),
            "platform_requests": requests,
            "seconds": round(seconds, 3),
            "platform": "local Mastodon-like server over HTTP (sotong/channels/testing.py)",
        }
    )
    return figures


# --- Driver ---------------------------------------------------------------------------


def worker(database: str, deliveries: int, replies: int, output: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sotong.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from sotong.channels.demo import configure_demo_accounts

    log(f"[{database}] migrate, load-directory, demo secrets")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("load_directory", stdout=io.StringIO())
    configure_demo_accounts()
    log(f"[{database}] webhooks: {deliveries:,} signed deliveries")
    webhooks = run_webhooks(database, deliveries)
    log(f"[{database}] outbox: {replies:,} replies")
    outbox = run_outbox(replies)
    output.write_text(json.dumps({"webhooks": webhooks, "outbox": outbox}, indent=2))


def summary(database: str, result: dict[str, Any]) -> list[str]:
    hooks, out = result["webhooks"], result["outbox"]
    met = (
        hooks["requests_per_second"] >= TARGET_WEBHOOKS_PER_SECOND
        and hooks["p99_ms"] < TARGET_WEBHOOK_P99_MS
    )
    return [
        f"== channels on {database}",
        f"webhooks  {hooks['deliveries_sent']:,} signed Meta deliveries from "
        f"{hooks['client_processes']} clients to {hooks['server']}",
        f"          {hooks['requests_per_second']:,.0f} accepted/s  p50 {hooks['p50_ms']:.1f}  "
        f"p90 {hooks['p90_ms']:.1f}  p99 {hooks['p99_ms']:.1f}  max {hooks['max_ms']:.1f} ms; "
        f"{hooks['deliveries_stored']:,} stored, {hooks['non_200']} not 200 "
        f"[aim >= {TARGET_WEBHOOKS_PER_SECOND:,}/s, p99 < {TARGET_WEBHOOK_P99_MS:g} ms: "
        f"{'met' if met else 'NOT met'}]",
        f"outbox    {out['calls']:,} replies, one worker, to {out['platform']}",
        f"          {out['requests_per_second']:,.0f} replies/s  p50 {out['p50_ms']:.1f}  "
        f"p99 {out['p99_ms']:.1f} ms per send; platform has {out['platform_distinct_statuses']:,} "
        f"distinct statuses for {out['replies_sent']:,} sent deliveries",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--replies", type=int, default=1_000)
    parser.add_argument("--only", choices=("sqlite", "postgres"), default=None)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("SOTONG_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    )
    parser.add_argument("--worker", choices=("sqlite", "postgres"), help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.deliveries, args.replies, args.output)
        return
    results: dict[str, Any] = {}
    for database in [args.only] if args.only else ["sqlite", "postgres"]:
        url = fresh_database(database, args.postgres_url)
        output = ROOT / "var" / "bench" / f"channels-{database}.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, str(Path(__file__).resolve()), "--worker", database,
            "--deliveries", str(args.deliveries), "--replies", str(args.replies),
            "--output", str(output),
        ]  # fmt: skip
        subprocess.run(command, cwd=ROOT, env=worker_env(url), check=True)
        results[database] = json.loads(output.read_text())
        for line in summary(database, results[database]):
            print(line)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = {"measured_at": stamp, "environment": environment(), "results": results}
    (RESULTS_DIR / "channels-latest.json").write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
