"""Sotong's benchmark (`make bench`): batch ingest throughput and single-call API latency,
measured on SQLite and on PostgreSQL.

Each database is measured in a subprocess of this script (`--worker`), so that
SOTONG_DATABASE_URL is set before Django starts and every run begins with a fresh database:
a new SQLite file under var/bench/, or the PostgreSQL database `sotong_bench` dropped and
created again. The worker migrates and loads the directory (not timed), then

1. pushes generated messages through the whole ingest path in one single-threaded process
   (one core at a time): normalize_message -> ingest_batch (dedupe, mask, store, queue the
   triage job) -> triage_messages (decide, open and route cases), batch by batch;
2. starts the real web server (gunicorn) on the same database and times
   `POST /api/v1/messages` over HTTP, sequentially and from 8 client threads.

Then the batch run again (fewer messages) with the trained triage models active: on a fresh
database, `sotong migrate`, `load-directory` and `triage bootstrap` run as `make run` runs
them (the relevance and routing models learn from the project's seed examples; not timed),
and a worker loads the models (timed apart) and pushes the messages through the same path.

Results go to bench/results/<database>-<UTC timestamp>.json and latest-<database>.json;
a summary is printed. bench/README.md explains the figures.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import os
import platform
import random
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
SQLITE_FILE = ROOT / "var" / "bench" / "sotong-bench.sqlite3"
DEMO_FILE = ROOT / "sotong" / "inbox" / "data" / "demo_messages.yaml"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/sotong_bench"
DATABASES = ("sqlite", "postgres")

MODEL_DIR = ROOT / "var" / "bench" / "models"
TARGET_BATCH_PER_SECOND = 2_000  # on SQLite, one core
TARGET_P99_MS = 50.0  # one API call
SEED = 20_240_917
RELEVANT_SHARE = 0.10  # messages about city business
UNCLEAR_SHARE = 0.02  # request-like messages the rules cannot place (a person decides)
DUPLICATE_SHARE = 0.10
MODEL_MESSAGES = 10_000  # the run with trained models: each text is analysed, so fewer
FIRST_DECISION_TEXT = "정류장 버스 안내판이 고장났어요"
WARMUP_CALLS = 200
CLIENT_THREADS = 8
API_PATH = "/api/v1/messages"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- Generated input -----------------------------------------------------------------------

CITY_SUFFIXES = (
    "",
    " ㅠㅠ",
    " 확인 부탁드립니다",
    " 빨리 좀 해주세요",
    " (제보 {n})",
    " 벌써 {d}일째예요",
    " 사진 첨부합니다 #{n}",
    " 🙏",
)
CHATTER_SUFFIXES = ("", " ㅋㅋ", " #{n}", " ({n})", "!!", " 😊", " …", " ㅎㅎ {n}")


@dataclass(frozen=True)
class Templates:
    """Demo messages sorted by what the rules make of them, and the district names."""

    city: list[dict[str, str]]
    unclear: list[dict[str, str]]
    chatter: list[dict[str, str]]
    districts: list[str]


def load_templates() -> Templates:
    """The project's demo messages, split by the rule triage's verdict (needs Django)."""
    import yaml

    from sotong.directory.models import Unit
    from sotong.triage.rules import triage_text
    from sotong.triage.services import current_rules

    demo = yaml.safe_load(DEMO_FILE.read_text(encoding="utf-8"))["messages"]
    rules = current_rules().rules
    groups: dict[bool | None, list[dict[str, str]]] = {True: [], None: [], False: []}
    for item in demo:
        groups[triage_text(item["text"], rules).relevant].append(item)
    districts = sorted(
        Unit.objects.filter(kind=Unit.Kind.DISTRICT)
        .exclude(district_name="")
        .values_list("district_name", flat=True)
    )
    if not groups[True] or not groups[False] or not districts:
        raise SystemExit("bench: the demo messages or the directory give nothing to generate from")
    return Templates(groups[True], groups[None], groups[False], districts)


class MessageGenerator:
    """Deterministic API-shaped message dicts: demo texts varied with other districts,
    suffixes and numbers; RELEVANT_SHARE of them about city business."""

    def __init__(self, templates: Templates, seed: int, prefix: str) -> None:
        self.templates = templates
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
        self.district_re = re.compile(
            "|".join(re.escape(d) for d in sorted(templates.districts, key=len, reverse=True))
        )
        self.count = 0

    def _vary(self, text: str, suffixes: Sequence[str]) -> str:
        rng = self.rng
        if rng.random() < 0.7:
            text = self.district_re.sub(lambda _: rng.choice(self.templates.districts), text)
        suffix = rng.choice(suffixes).format(n=rng.randint(1, 99_999), d=rng.randint(2, 30))
        return text + suffix

    def next(self) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        if roll < RELEVANT_SHARE:
            template, suffixes = rng.choice(self.templates.city), CITY_SUFFIXES
        elif roll < RELEVANT_SHARE + UNCLEAR_SHARE and self.templates.unclear:
            template, suffixes = rng.choice(self.templates.unclear), CITY_SUFFIXES
        else:
            template, suffixes = rng.choice(self.templates.chatter), CHATTER_SUFFIXES
        self.count += 1
        external_id = f"{self.prefix}-{self.count:07d}"
        sent_at = self.start + timedelta(seconds=self.count * 3)
        return {
            "channel": template["channel"],
            "account": template["account"],
            "external_id": external_id,
            "author": f"{template['author']}_{rng.randint(1, 5_000)}",
            "text": self._vary(template["text"], suffixes),
            "sent_at": sent_at.isoformat().replace("+00:00", "Z"),
            "raw": {"id": external_id, "source": "bench"},
        }


def batch_input(templates: Templates, count: int, seed: int) -> tuple[list[dict[str, Any]], int]:
    """`count` messages of which DUPLICATE_SHARE repeat an earlier one (same channel and
    external id: a redelivery), some in the same batch, most in a later one."""
    duplicates = int(count * DUPLICATE_SHARE)
    generator = MessageGenerator(templates, seed, "bench")
    unique = [generator.next() for _ in range(count - duplicates)]
    rng = random.Random(seed + 1)
    keyed: list[tuple[float, dict[str, Any]]] = [(float(i), m) for i, m in enumerate(unique)]
    for _ in range(duplicates):
        source = rng.randrange(len(unique))
        keyed.append((source + rng.randint(1, 5_000) + 0.5, unique[source]))
    keyed.sort(key=lambda pair: pair[0])
    return [m for _, m in keyed], len(unique)


# --- Measurements (worker side, Django set up) --------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def rss_mb() -> float | None:
    """Resident memory of this process now (Linux /proc; None elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def machine_busy_seconds() -> float | None:
    """CPU-seconds all CPUs of the machine have been busy since boot (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine lowers every figure."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


class Stopwatch:
    """Accumulated time spent in a wrapped function."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed


class StageClock:
    """Wall-clock and CPU time (this process) spent in each stage."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._mark = (time.perf_counter(), time.process_time())

    def restart(self) -> None:
        self._mark = (time.perf_counter(), time.process_time())

    def lap(self, stage: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[stage] = self.wall.get(stage, 0.0) + now[0] - self._mark[0]
        self.cpu[stage] = self.cpu.get(stage, 0.0) + now[1] - self._mark[1]
        self._mark = now

    def figures(self, stage: str, count: int) -> dict[str, Any]:
        return {
            "seconds": round(self.wall[stage], 3),
            "cpu_seconds": round(self.cpu[stage], 3),
            "messages_per_second": rate(count, self.wall[stage]),
        }


def run_batch(raw: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    """Normalize, ingest and triage `raw` in batches; the figures of each stage."""
    from django.conf import settings

    from sotong.inbox import services as inbox_services
    from sotong.inbox.normalize import normalize_message
    from sotong.triage.services import forget_rules, triage_messages

    max_text = settings.SOTONG_MAX_TEXT_CHARS
    masking = Stopwatch()
    original_mask = inbox_services.mask_personal_data
    inbox_services.mask_personal_data = masking.wrap(original_mask)
    forget_rules()  # the first batch pays for compiling the rules, as a fresh worker would
    clock = StageClock()
    stored = triaged = 0
    try:
        busy_before = machine_busy_seconds()
        started = (time.perf_counter(), time.process_time())
        clock.restart()
        for start in range(0, len(raw), batch_size):
            chunk = raw[start : start + batch_size]
            items = [normalize_message(d, max_text=max_text) for d in chunk]
            clock.lap("normalize")
            new = inbox_services.ingest_batch(items)
            clock.lap("ingest")
            triaged += triage_messages([m.pk for m in new])
            clock.lap("triage")
            stored += len(new)
        total_s = time.perf_counter() - started[0]
        total_cpu_s = time.process_time() - started[1]
        busy_after = machine_busy_seconds()
    finally:
        inbox_services.mask_personal_data = original_mask
    count = len(raw)
    return {
        "messages": count,
        "batch_size": batch_size,
        "processes": 1,
        "threads": 1,
        "seconds": round(total_s, 3),
        "cpu_seconds": round(total_cpu_s, 3),
        "messages_per_second": rate(count, total_s),
        "messages_per_cpu_second": rate(count, total_cpu_s),
        # CPU time the rest of the machine used meanwhile: the database server (PostgreSQL)
        # and whatever else ran. Much of it means the figures suffered from other load.
        "other_cpu_seconds": (
            round(busy_after - busy_before - total_cpu_s, 2)
            if busy_before is not None and busy_after is not None
            else None
        ),
        "stages": {
            "normalize": clock.figures("normalize", count),
            "ingest": {
                "what": "dedupe, mask, store, queue triage job",
                **clock.figures("ingest", count),
                "masking_seconds": round(masking.seconds, 3),
                "masking_calls": masking.calls,
            },
            "triage": {
                "what": "decide, record decision, open and route cases",
                **clock.figures("triage", triaged),
                "messages": triaged,
            },
        },
        "stored": stored,
        "duplicates_skipped": count - stored,
        "peak_rss_mb": peak_rss_mb(),
    }


def batch_outcome() -> dict[str, Any]:
    """What the batch left in the database: decisions, cases, queued jobs."""
    from django.db.models import Count
    from django_q.models import OrmQ

    from sotong.cases.models import Case
    from sotong.inbox.models import Message
    from sotong.triage.models import TriageDecision

    relevance = dict(
        TriageDecision.objects.values_list("relevant")
        .annotate(n=Count("pk"))
        .values_list("relevant", "n")
    )
    return {
        "messages_stored": Message.objects.count(),
        "decisions": {
            "relevant": relevance.get(True, 0),
            "not_relevant": relevance.get(False, 0),
            "unclear": relevance.get(None, 0),
        },
        "cases_opened": Case.objects.count(),
        "cases_routed_to_unit": Case.objects.exclude(unit=None).count(),
        "cases_urgent": Case.objects.filter(urgent=True).count(),
        "triage_jobs_queued": OrmQ.objects.count(),
    }


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = max(0, math.ceil(q / 100 * len(sorted_ms)) - 1)
    return round(sorted_ms[index], 2)


def latency_figures(latencies_s: list[float], seconds: float) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies_s)
    if not ms:
        return {"calls": 0}
    return {
        "calls": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": round(ms[-1], 2),
        "mean_ms": round(sum(ms) / len(ms), 2),
        "requests_per_second": rate(len(ms), seconds),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiClient:
    """One keep-alive HTTP connection posting messages; counts non-201 answers."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.failures: list[str] = []
        self.reconnects = 0

    def post(self, message: dict[str, Any]) -> float:
        body = json.dumps(message).encode()
        start = time.perf_counter()
        try:
            self.conn.request("POST", API_PATH, body=body, headers=self.headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed an idle keep-alive connection: reconnect and send again.
            self.conn.close()
            self.reconnects += 1
            start = time.perf_counter()
            self.conn.request("POST", API_PATH, body=body, headers=self.headers)
            response = self.conn.getresponse()
        answer = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 201:
            self.failures.append(f"{response.status}: {answer[:200].decode(errors='replace')}")
        return elapsed

    def close(self) -> None:
        self.conn.close()


def start_server(
    port: int,
    log_path: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    cpus: set[int] | None = None,
    probe: str = API_PATH,
) -> subprocess.Popen[bytes]:
    """gunicorn on the bench database, pinned to `cpus` where given; returns once `probe`
    answers (any status: a GET there must touch no data)."""
    env = dict(os.environ, SOTONG_ALLOWED_HOSTS="127.0.0.1", PYTHONPATH=str(ROOT))
    command = [
        sys.executable, "-m", "gunicorn", "sotong.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
        "--log-level", "info",  # signals and worker restarts show in the log
    ]  # fmt: skip
    if cpus and hasattr(os, "sched_setaffinity"):
        command = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"bench: gunicorn exited with {server.returncode}; see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", probe)
            conn.getresponse().read()
            conn.close()
            return server
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit(f"bench: gunicorn did not answer within 60 s; see {log_path}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@dataclass
class ApiRun:
    sequential: list[float]
    sequential_s: float
    concurrent: list[float]
    concurrent_s: float
    sent: int
    failures: list[str]
    reconnects: int


def time_calls(port: int, token: str, generator: MessageGenerator, calls: int) -> ApiRun:
    """Warm up, then `calls` sequential calls on one connection, then `calls` more spread
    over CLIENT_THREADS threads with a connection each."""
    client = ApiClient(port, token)
    for _ in range(WARMUP_CALLS):
        client.post(generator.next())
    started = time.perf_counter()
    sequential = [client.post(generator.next()) for _ in range(calls)]
    sequential_s = time.perf_counter() - started
    client.close()

    shares = [calls // CLIENT_THREADS + (i < calls % CLIENT_THREADS) for i in range(CLIENT_THREADS)]
    work = [[generator.next() for _ in range(n)] for n in shares]
    clients = [ApiClient(port, token) for _ in range(CLIENT_THREADS)]
    results: list[list[float]] = [[] for _ in range(CLIENT_THREADS)]
    barrier = threading.Barrier(CLIENT_THREADS + 1)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = [clients[index].post(m) for m in work[index]]
        except Exception as exc:  # counted as a failure, not a crash of the whole run
            clients[index].failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    concurrent_s = time.perf_counter() - started
    for c in clients:
        c.close()
    everyone = [client, *clients]
    return ApiRun(
        sequential=sequential,
        sequential_s=sequential_s,
        concurrent=[x for r in results for x in r],
        concurrent_s=concurrent_s,
        sent=WARMUP_CALLS + calls + sum(shares),
        failures=[f for c in everyone for f in c.failures],
        reconnects=sum(c.reconnects for c in everyone),
    )


def run_api(templates: Templates, calls: int, seed: int, log_path: Path) -> dict[str, Any]:
    """Time POST /api/v1/messages against gunicorn: sequential, then from 8 threads."""
    from django.db import connections

    from sotong.inbox.models import Message
    from sotong.inbox.services import create_connector_token

    _, token = create_connector_token(f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
    connections.close_all()
    port = free_port()
    server = start_server(port, log_path)
    try:
        measured = time_calls(port, token, MessageGenerator(templates, seed, "api"), calls)
    except (OSError, http.client.HTTPException) as exc:
        code = server.poll()
        state = "is still running" if code is None else f"exited with {code}"
        raise SystemExit(
            f"bench: the server stopped answering ({type(exc).__name__}: {exc}); "
            f"gunicorn {state}; see {log_path}"
        ) from None
    finally:
        stop_server(server)
    stored = Message.objects.filter(external_id__startswith="api-").count()
    return {
        "server": "gunicorn sotong.wsgi --workers 2 --threads 4",
        "warmup_calls": WARMUP_CALLS,
        "sequential": latency_figures(measured.sequential, measured.sequential_s),
        "concurrent": {
            "threads": CLIENT_THREADS,
            **latency_figures(measured.concurrent, measured.concurrent_s),
        },
        "calls_sent": measured.sent,
        "messages_stored": stored,
        "non_201": len(measured.failures),
        "non_201_examples": measured.failures[:5],
        "reconnects": measured.reconnects,
        "all_201": not measured.failures and stored == measured.sent,
    }


def database_description() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("select sqlite_version()")
            return f"SQLite {cursor.fetchone()[0]}"
        cursor.execute("show server_version")
        return f"PostgreSQL {cursor.fetchone()[0]}"


def worker(database: str, messages: int, calls: int, batch_size: int, output: Path) -> None:
    """Measure one database (SOTONG_DATABASE_URL is set by the parent) and write JSON."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sotong.settings")
    import django

    django.setup()
    from django.core.management import call_command

    log(f"[{database}] migrate, load-directory")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("load_directory", stdout=io.StringIO())
    templates = load_templates()
    raw, unique = batch_input(templates, messages, SEED)
    log(
        f"[{database}] input: {len(raw):,} messages ({len(raw) - unique:,} duplicates); "
        f"templates: {len(templates.city)} city, {len(templates.unclear)} unclear, "
        f"{len(templates.chatter)} chatter"
    )
    load = {"before_batch": load_average()}
    rss_before = peak_rss_mb()
    log(f"[{database}] batch ingest of {len(raw):,} messages in batches of {batch_size:,}")
    batch = run_batch(raw, batch_size)
    batch["peak_rss_mb_before_batch"] = rss_before
    batch["unique_in_input"] = unique
    batch["outcome"] = batch_outcome()
    load["after_batch"] = load_average()
    del raw
    log(f"[{database}] {batch['messages_per_second']:,.0f} msg/s; API calls")
    log_path = ROOT / "var" / "bench" / f"gunicorn-{database}.log"
    api = run_api(templates, calls, SEED + 7, log_path)
    load["after_api"] = load_average()
    result = {
        "database_version": database_description(),
        "batch": batch,
        "api": api,
        "load_average_1min": load,
    }
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False))


def load_models() -> dict[str, Any]:
    """Load the active models as a fresh worker does and make a first decision with each:
    reading the files (importing scikit-learn the first time), then starting the
    morphological analyser (on first use)."""
    from sotong.triage.models import TrainedModel
    from sotong.triage.registry import active_models

    records = {m.kind: m for m in TrainedModel.objects.filter(active=True)}
    rss_before = rss_mb()
    started = time.perf_counter()
    models = active_models()
    read = time.perf_counter()
    if models.relevance is None or models.routing is None:
        raise SystemExit("bench: `sotong triage bootstrap` left no active relevance and routing")
    models.relevance.rank([FIRST_DECISION_TEXT], 2)
    models.routing.rank([FIRST_DECISION_TEXT], 3)
    ready = time.perf_counter()
    from sotong.triage import text_features

    # The batch starts with the analyser up but nothing of this text in the feature caches.
    text_features.word_morphemes.cache_clear()
    text_features.normalize.cache_clear()
    return {
        "seconds": round(ready - started, 3),
        "files_seconds": round(read - started, 3),
        "first_decision_seconds": round(ready - read, 3),
        "rss_mb_before": rss_before,
        "rss_mb_after": rss_mb(),
        "models": {
            kind: {
                "version": record.version,
                "n_examples": record.n_examples,
                "file_mb": round(Path(record.path).stat().st_size / 2**20, 2),
            }
            for kind, record in sorted(records.items())
        },
    }


def worker_with_models(database: str, messages: int, batch_size: int, output: Path) -> None:
    """The batch run on a database where the parent ran `sotong triage bootstrap`: load the
    models (timed apart), then the same path, now deciding with the models too."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sotong.settings")
    import django

    django.setup()
    from sotong.triage.models import TriageDecision

    rss_before = peak_rss_mb()
    # First: generating the input compiles the rule set, which loads the models too.
    log(f"[{database}] with models: loading them")
    model_load = load_models()
    templates = load_templates()
    raw, unique = batch_input(templates, messages, SEED)
    log(
        f"[{database}] with models: batch ingest of {len(raw):,} messages in batches of "
        f"{batch_size:,}"
    )
    load = {"before_batch": load_average()}
    batch = run_batch(raw, batch_size)
    load["after_batch"] = load_average()
    with_models = TriageDecision.objects.filter(engine__contains="+relevance:").count()
    if not with_models:
        raise SystemExit("bench: no triage decision names the trained models")
    result = {
        **batch,
        "peak_rss_mb_before_batch": rss_before,
        "unique_in_input": unique,
        "model_load": model_load,
        "outcome": {**batch_outcome(), "decided_with_models": with_models},
        "load_average_1min": load,
    }
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False))


# --- Orchestration (parent side, no Django) -------------------------------------------------


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def postgres_admin(url: str) -> tuple[dict[str, Any], str]:
    """Connection parameters for the `postgres` maintenance database, and the bench db name."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    name = str(params.pop("dbname", "") or "sotong_bench")
    return {**params, "dbname": "postgres", "connect_timeout": 5}, name


def check_postgres(url: str) -> None:
    import psycopg

    params, _ = postgres_admin(url)
    try:
        psycopg.connect(**params).close()
    except psycopg.Error as exc:
        raise SystemExit(
            f"bench: cannot reach PostgreSQL at {url} ({str(exc).strip()}).\n"
            "Start it, set SOTONG_BENCH_POSTGRES_URL, or run with --only sqlite."
        ) from None


def fresh_database(database: str, postgres_url: str) -> str:
    """Drop and create the bench database; returns its SOTONG_DATABASE_URL."""
    if database == "sqlite":
        SQLITE_FILE.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_FILE}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{SQLITE_FILE}"
    import psycopg
    from psycopg import sql

    params, name = postgres_admin(postgres_url)
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return postgres_url


def git_revision() -> str:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    import django

    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "git": git_revision(),
    }


def targets(database: str, result: dict[str, Any]) -> dict[str, Any]:
    batch_rate = result["batch"]["messages_per_second"]
    p99 = result["api"]["sequential"]["p99_ms"]
    return {
        "batch": {
            "target": f"at least {TARGET_BATCH_PER_SECOND:,} messages/s batch on SQLite, one core",
            "value": batch_rate,
            "met": batch_rate >= TARGET_BATCH_PER_SECOND if database == "sqlite" else None,
        },
        "single_call_p99": {
            "target": f"p99 under {TARGET_P99_MS:g} ms single call",
            "value": p99,
            "met": p99 < TARGET_P99_MS,
        },
    }


def worker_env(url: str) -> dict[str, str]:
    return dict(
        os.environ,
        SOTONG_DATABASE_URL=url,
        SOTONG_DEBUG="0",  # DEBUG would keep every query in memory
        SOTONG_QUEUE="database",
        SOTONG_JOBS_SYNC="0",
        SOTONG_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )


def sotong_command(args: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    """Run `sotong <args>` as `make run` does; its wall time and output."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sotong.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: `sotong {' '.join(args)}` failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started, done.stdout


def measure_with_models(database: str, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    """The batch run with the models `make run` trains: a fresh database, the product's
    setup commands (training not timed), then a worker process measures."""
    url = fresh_database(database, args.postgres_url)
    model_dir = MODEL_DIR / database
    for old in model_dir.glob("*.joblib"):
        old.unlink()
    env = {**worker_env(url), "SOTONG_MODEL_DIR": str(model_dir)}
    log(f"[{database}] with models: migrate, load-directory, triage bootstrap")
    sotong_command(["migrate", "--noinput"], env)
    sotong_command(["load-directory"], env)
    training_seconds, trained = sotong_command(["triage", "bootstrap"], env)
    # One core, like the rest of the figures (numpy would otherwise start a thread pool).
    env.update({var: "1" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    command = [
        sys.executable, __file__, "--worker", database, "--with-models",
        "--worker-output", str(output), "--messages", str(args.model_messages),
        "--batch-size", str(args.batch_size),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env)
    if done.returncode != 0 or not output.exists():
        raise SystemExit(f"bench: the {database} run with models failed (exit {done.returncode})")
    measured: dict[str, Any] = json.loads(output.read_text())
    output.unlink()
    measured["training"] = {
        "command": "sotong triage bootstrap",
        "seconds": round(training_seconds, 1),
        "report": trained.strip().splitlines(),
    }
    return measured


def measure(database: str, args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC)
    url = fresh_database(database, args.postgres_url)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = RESULTS_DIR / f"{database}-{started:%Y%m%dT%H%M%SZ}.json.tmp"
    env = worker_env(url)
    command = [
        sys.executable, __file__, "--worker", database, "--worker-output", str(output),
        "--messages", str(args.messages), "--calls", str(args.calls),
        "--batch-size", str(args.batch_size),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env)
    if done.returncode != 0 or not output.exists():
        raise SystemExit(f"bench: the {database} measurement failed (exit {done.returncode})")
    measured = json.loads(output.read_text())
    output.unlink()
    if args.model_messages:
        measured["batch_with_models"] = measure_with_models(database, args, output)
    result: dict[str, Any] = {
        "database": database,
        **measured,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
    }
    result["targets"] = targets(database, result)
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    (RESULTS_DIR / f"{database}-{started:%Y%m%dT%H%M%SZ}.json").write_text(text)
    (RESULTS_DIR / f"latest-{database}.json").write_text(text)
    return result


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "n/a"}[met]


def stage_lines(stages: dict[str, Any]) -> Iterator[str]:
    labels = {
        "normalize": "normalize_message",
        "ingest": f"dedupe, mask ({stages['ingest']['masking_seconds']:.2f} s), store, queue",
        "triage": f"{stages['triage']['messages']:,} triaged, cases opened and routed",
    }
    for name, label in labels.items():
        stage = stages[name]
        yield (
            f"  {name:<9} {stage['messages_per_second']:>9,.0f} msg/s {stage['seconds']:7.2f} s  "
            f"({label})"
        )


def outcome_lines(outcome: dict[str, Any]) -> Iterator[str]:
    decisions = outcome["decisions"]
    yield (
        f"  outcome   {decisions['relevant']:,} relevant, {decisions['unclear']:,} unclear, "
        f"{decisions['not_relevant']:,} not; {outcome['cases_opened']:,} cases opened"
    )
    yield (
        f"            ({outcome['cases_routed_to_unit']:,} routed to a unit, "
        f"{outcome['cases_urgent']:,} urgent); {outcome['triage_jobs_queued']:,} jobs queued"
    )


def summary_with_models(rules: dict[str, Any], run: dict[str, Any]) -> Iterator[str]:
    """The run with trained models, next to the rules-only figures."""
    load, training = run["model_load"], run["training"]
    examples = ", ".join(f"{kind} {m['n_examples']:,}" for kind, m in load["models"].items())
    yield (
        f"models  {run['messages']:,} messages ({run['duplicates_skipped']:,} duplicates), "
        f"relevance and routing models active"
    )
    yield (
        f"        (`{training['command']}` trained them from the seed examples: {examples}; "
        f"{training['seconds']:.0f} s, not timed)"
    )
    share = run["messages_per_second"] / rules["messages_per_second"]
    yield (
        f"  overall   {run['messages_per_second']:>9,.0f} msg/s {run['seconds']:7.2f} s  "
        f"({share:.0%} of the rules-only {rules['messages_per_second']:,.0f} msg/s)"
    )
    yield (
        f"            {run['messages_per_cpu_second']:>9,.0f} msg per CPU-second "
        f"({run['cpu_seconds']:.2f} s CPU of this process)"
    )
    yield from stage_lines(run["stages"])
    yield (
        f"  load      {load['seconds']:.2f} s before the first decision (not in the rates): "
        f"files {load['files_seconds']:.2f} s, analyser and first decision "
        f"{load['first_decision_seconds']:.2f} s"
    )
    yield from outcome_lines(run["outcome"])
    yield f"            {run['outcome']['decided_with_models']:,} decisions made with the models"
    after = f"{load['rss_mb_after']:,.0f} MB after loading, " if load["rss_mb_after"] else ""
    yield (
        f"  memory    peak RSS {run['peak_rss_mb']:,.0f} MB ({after}"
        f"{run['peak_rss_mb_before_batch']:,.0f} MB before; rules only "
        f"{rules['peak_rss_mb']:,.0f} MB)"
    )


def summary(result: dict[str, Any]) -> Iterator[str]:
    """The result as a few readable lines."""
    batch, api, goals = result["batch"], result["api"], result["targets"]
    stages, outcome = batch["stages"], batch["outcome"]
    env = result["environment"]
    yield (
        f"== {result['database']} ({result['database_version']}), {env['cpu_count']} CPUs, "
        f"Python {env['python']}, Django {env['django']}"
    )
    yield (
        f"batch   {batch['messages']:,} messages ({batch['duplicates_skipped']:,} duplicates) "
        f"in batches of {batch['batch_size']:,}, one process on one core"
    )
    yield (
        f"  overall   {batch['messages_per_second']:>9,.0f} msg/s {batch['seconds']:7.2f} s  "
        f"[target >= {TARGET_BATCH_PER_SECOND:,} on SQLite: {verdict(goals['batch']['met'])}]"
    )
    sqlite = result["database"] == "sqlite"
    yield (
        f"            {batch['messages_per_cpu_second']:>9,.0f} msg per CPU-second "
        f"({batch['cpu_seconds']:.2f} s CPU of this process, "
        f"{'SQLite included' if sqlite else 'PostgreSQL not included'})"
    )
    if batch["other_cpu_seconds"] is not None:
        others = "other processes" if sqlite else "PostgreSQL and other processes"
        yield (
            f"            meanwhile {others} used {batch['other_cpu_seconds']:.1f} CPU-seconds "
            f"({batch['other_cpu_seconds'] / batch['seconds']:.2f} cores on average)"
        )
    yield from stage_lines(stages)
    yield from outcome_lines(outcome)
    yield (
        f"  memory    peak RSS {batch['peak_rss_mb']:,.0f} MB "
        f"({batch['peak_rss_mb_before_batch']:,.0f} MB before the batch)"
    )
    if "batch_with_models" in result:
        yield from summary_with_models(batch, result["batch_with_models"])
    seq, conc = api["sequential"], api["concurrent"]
    yield (
        f"api     sequential, {seq['calls']:,} calls: p50 {seq['p50_ms']:.1f}  "
        f"p90 {seq['p90_ms']:.1f}  p99 {seq['p99_ms']:.1f}  max {seq['max_ms']:.1f} ms, "
        f"{seq['requests_per_second']:,.0f} req/s"
    )
    yield f"        [target p99 < {TARGET_P99_MS:g} ms: {verdict(goals['single_call_p99']['met'])}]"
    if conc["calls"]:
        yield (
            f"        {conc['threads']} threads, {conc['calls']:,} calls: "
            f"p50 {conc['p50_ms']:.1f}  p99 {conc['p99_ms']:.1f}  max {conc['max_ms']:.1f} ms, "
            f"{conc['requests_per_second']:,.0f} req/s"
        )
    status = "all 201" if api["all_201"] else f"{api['non_201']} NOT 201: {api['non_201_examples']}"
    yield f"        {api['calls_sent']:,} calls sent, {api['messages_stored']:,} stored, {status}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", choices=DATABASES, help="measure one database only")
    parser.add_argument(
        "--messages", type=int, default=50_000, help="messages in the batch run (50,000)"
    )
    parser.add_argument(
        "--model-messages",
        type=int,
        default=MODEL_MESSAGES,
        help=f"messages in the run with trained models ({MODEL_MESSAGES:,}; 0: no such run)",
    )
    parser.add_argument("--calls", type=int, default=2_000, help="measured API calls (2,000)")
    parser.add_argument(
        "--batch-size", type=int, default=1_000, help="messages per ingest_batch call"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SOTONG_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="the bench database; it is DROPPED and created again (SOTONG_BENCH_POSTGRES_URL)",
    )
    parser.add_argument("--worker", choices=DATABASES, help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--with-models", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.messages < 10 or args.calls < CLIENT_THREADS or args.batch_size < 1:
        parser.error("--messages must be at least 10, --calls at least 8, --batch-size at least 1")
    if args.model_messages and args.model_messages < 10:
        parser.error("--model-messages must be 0 (no run with models) or at least 10")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker and args.with_models:
        worker_with_models(args.worker, args.messages, args.batch_size, args.worker_output)
        return 0
    if args.worker:
        worker(args.worker, args.messages, args.calls, args.batch_size, args.worker_output)
        return 0
    databases = [args.only] if args.only else list(DATABASES)
    if "postgres" in databases:
        check_postgres(args.postgres_url)
    results = [measure(database, args) for database in databases]
    print()
    for result in results:
        print("\n".join(summary(result)))
        print()
    print(f"JSON in {RESULTS_DIR.relative_to(ROOT)}/ (latest-<database>.json)")
    return 0 if all(r["api"]["all_201"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
