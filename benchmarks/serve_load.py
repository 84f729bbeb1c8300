"""Load test of `artstyle serve`: latency percentiles, throughput, errors and server memory.

    python benchmarks/serve_load.py [--requests 500] [--concurrency 16] [--server-concurrency 1] [--model M] [--image F] [--json]

Starts the real server (`artstyle serve`, the shipped model unless --model) on
127.0.0.1, waits until it answers, and sends a bounded number of POST /api/predict
requests, each with one image (a generated 800x600 JPEG unless --image), at most
`--concurrency` in flight. The server's resident memory is read from /proc before
(after a warm-up of 20 requests) and after. Targets: zero errors, RSS growth < 50 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited before answering")
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the server did not answer in time")


async def load(url: str, image: bytes, name: str, n: int, concurrency: int) -> tuple[list[float], int, float]:
    """Latencies (s) of the successful requests, the error count and the wall time."""
    latencies: list[float] = []
    errors = 0
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        async def one() -> None:
            nonlocal errors
            async with gate:
                start = time.perf_counter()
                try:
                    response = await client.post("/api/predict", files=[("files", (name, image, "image/jpeg"))])
                    ok = response.status_code == 200 and response.json()[0]["error"] is None
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return latencies, errors, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--server-concurrency", type=int, default=1, help="the server's --concurrency [default: 1]")
    parser.add_argument("--model", type=Path, help="model folder [default: the shipped model]")
    parser.add_argument("--image", type=Path, help="image to send [default: a generated 800x600 JPEG]")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    if args.image:
        image, name = args.image.read_bytes(), args.image.name
    else:
        buffer = io.BytesIO()
        Image.effect_mandelbrot((800, 600), (-2.0, -1.2, 1.0, 1.2), 100).convert("RGB").save(buffer, "JPEG", quality=90)
        image, name = buffer.getvalue(), "generated.jpg"
    port = free_port()
    command = [sys.executable, "-m", "artstyle", "-q", "serve", "--port", str(port),
               "--concurrency", str(args.server_concurrency)]
    if args.model:
        command += ["--model", str(args.model)]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(url, server)
            asyncio.run(load(url, image, name, 20, args.concurrency))  # warm-up
            before = rss_mb(server.pid)
            latencies, errors, wall = asyncio.run(load(url, image, name, args.requests, args.concurrency))
            after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "server_concurrency": args.server_concurrency,
        "errors": errors,
        "throughput_rps": args.requests / wall,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
        "p99_ms": 1000 * percentile(latencies, 99),
        "rss_before_mb": before,
        "rss_after_mb": after,
        "rss_growth_mb": after - before,
    }
    print(f"{args.requests} requests at concurrency {args.concurrency}: {errors} errors, "
          f"{result['throughput_rps']:.1f} requests/s")
    print(f"latency p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms")
    print(f"server RSS {before:.0f} MB -> {after:.0f} MB ({after - before:+.1f} MB; target < 50 MB); "
          f"errors target 0: {'met' if errors == 0 else 'MISSED'}")
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
