"""Load simulator: N lightweight agents over real gRPC against one gateway.

Each simulated agent holds its own mutual-TLS channel and ``Connect`` stream
(its own device certificate, from a bundle written by
``tests/load/provision.py``), says Hello, sends heartbeats at a chosen
interval with jitter, and acknowledges every ApplyPolicy it receives,
exactly like the real daemon does. It never runs backups.

    python -m tests.load.sim --bundle var/load/bundle.jsonl --address 127.0.0.1:7443 \\
        --agents 1000 --heartbeat 5 --duration 120 [--report FILE]

Bounded by design: only the addresses you give (use 127.0.0.1), at most
``--agents`` streams, stops after ``--duration`` seconds. It prints (and
writes to ``--report``) JSON figures: streams connected and the time to
connect them, heartbeats sent, and for each policy revision received, when
the first and the last agent acknowledged it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time

import grpc

from agent.rpc import agent_pb2 as pb
from agent.rpc import agent_pb2_grpc as pb_grpc

OPTIONS = [
    ("grpc.keepalive_time_ms", 120_000),
    ("grpc.enable_retries", 0),
    ("grpc.use_local_subchannel_pool", 1),  # one TCP/TLS connection per agent
]


class Stats:
    def __init__(self):
        self.connected = 0
        self.connect_times: list[float] = []
        self.failed = 0
        self.errors: dict[str, int] = {}
        self.heartbeats = 0
        self.acks: dict[str, list[float]] = {}  # revision -> ack times
        self.started = time.monotonic()

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def sim_agent(i, device, ca_pem, address, hb_interval, stats, stop, connect_sem, revision=""):
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=device["key"].encode(),
        certificate_chain=device["cert"].encode(),
    )
    me = {"revision": revision}
    while not stop.is_set():
        try:
            async with grpc.aio.secure_channel(address, creds, options=OPTIONS) as ch:
                stub = pb_grpc.AgentGatewayStub(ch)
                out: asyncio.Queue = asyncio.Queue()
                out.put_nowait(
                    pb.AgentMessage(
                        hello=pb.Hello(
                            host=pb.HostFacts(hostname=f"sim-{i}", os="linux", agent_version="sim"),
                            policy_revision=me["revision"],
                            protocol=pb.PROTOCOL_VERSION_1,
                        )
                    )
                )

                async def requests(out=out):
                    while True:
                        m = await out.get()
                        if m is None:
                            return
                        yield m

                async with connect_sem:
                    t0 = time.monotonic()
                    call = stub.Connect(requests())
                    first = await asyncio.wait_for(call.read(), 60)
                    if first is grpc.aio.EOF or first.WhichOneof("body") != "welcome":
                        raise ConnectionError("no welcome")
                stats.connected += 1
                stats.connect_times.append(time.monotonic() - t0)

                async def beat(out=out):
                    await asyncio.sleep(random.uniform(0, hb_interval))
                    while True:
                        out.put_nowait(
                            pb.AgentMessage(
                                heartbeat=pb.Heartbeat(policy_revision=me["revision"], state="idle")
                            )
                        )
                        stats.heartbeats += 1
                        await asyncio.sleep(hb_interval * random.uniform(0.9, 1.1))

                hb = asyncio.create_task(beat())
                try:
                    reader = asyncio.ensure_future(call.read())
                    stopper = asyncio.ensure_future(stop.wait())
                    while True:
                        done, _ = await asyncio.wait(
                            {reader, stopper}, return_when=asyncio.FIRST_COMPLETED
                        )
                        if stopper in done:
                            reader.cancel()
                            call.cancel()
                            return
                        msg = reader.result()
                        if msg is grpc.aio.EOF:
                            break
                        if msg.WhichOneof("body") == "apply_policy":
                            revision = me["revision"] = msg.apply_policy.revision
                            out.put_nowait(
                                pb.AgentMessage(
                                    ack=pb.CommandAck(command_id=msg.command_id, accepted=True)
                                )
                            )
                            stats.acks.setdefault(revision, []).append(time.monotonic())
                        reader = asyncio.ensure_future(call.read())
                finally:
                    hb.cancel()
                    out.put_nowait(None)
                    stats.connected -= 1
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as exc:
            stats.error(exc.code().name)
        except Exception as exc:
            stats.error(type(exc).__name__)
        if not stop.is_set():
            await asyncio.sleep(random.uniform(1, 5))


async def main_async(args) -> dict:
    devices = []
    with open(args.bundle) as f:
        header = json.loads(f.readline())
        for line in f:
            devices.append(json.loads(line))
            if len(devices) >= args.offset + args.agents:
                break
    devices = devices[args.offset : args.offset + args.agents]
    ca_pem = header["ca"].encode()
    stats = Stats()
    stop = asyncio.Event()
    sem = asyncio.Semaphore(args.connect_concurrency)
    tasks = [
        asyncio.create_task(
            sim_agent(
                i,
                d,
                ca_pem,
                args.address,
                args.heartbeat,
                stats,
                stop,
                sem,
                header.get("revision", ""),
            )
        )
        for i, d in enumerate(devices)
    ]
    t_start = time.monotonic()
    all_connected_at = None
    samples = []
    deadline = t_start + args.duration
    import signal

    finish = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, finish.set)
    while time.monotonic() < deadline and not finish.is_set():
        await asyncio.sleep(1)
        now = time.monotonic()
        if all_connected_at is None and stats.connected >= len(devices):
            all_connected_at = now - t_start
        samples.append((round(now - t_start, 1), stats.connected, stats.heartbeats))
        if args.progress:
            print(
                json.dumps(
                    {
                        "t": round(now - t_start, 1),
                        "connected": stats.connected,
                        "heartbeats": stats.heartbeats,
                        "revisions": {r[:12]: len(v) for r, v in stats.acks.items()},
                    }
                ),
                flush=True,
            )
    stop.set()
    await asyncio.wait(tasks, timeout=30)
    for t in tasks:
        t.cancel()
    revisions = {
        rev: {
            "acked_by": len(times),
            "first_s": round(min(times) - t_start, 2),
            "p50_s": round(sorted(times)[len(times) // 2] - t_start, 2),
            "last_s": round(max(times) - t_start, 2),
        }
        for rev, times in stats.acks.items()
    }
    ct = sorted(stats.connect_times)
    return {
        "started_at": round(time.time() - (time.monotonic() - t_start), 2),
        "agents": len(devices),
        "max_connected": max((s[1] for s in samples), default=0),
        "all_connected_after_s": round(all_connected_at, 2) if all_connected_at else None,
        "connect_p50_ms": round(1000 * ct[len(ct) // 2], 1) if ct else None,
        "connect_p99_ms": round(1000 * ct[int(len(ct) * 0.99)], 1) if ct else None,
        "heartbeats_sent": stats.heartbeats,
        "errors": stats.errors,
        "revisions": revisions,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.load.sim", description=__doc__.splitlines()[0]
    )
    p.add_argument("--bundle", required=True, help="device bundle (tests/load/provision.py)")
    p.add_argument("--address", default="127.0.0.1:7443", help="gateway mTLS address")
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--offset", type=int, default=0, help="first device of the bundle to use")
    p.add_argument("--heartbeat", type=float, default=30.0, help="seconds between heartbeats")
    p.add_argument("--duration", type=float, default=60.0, help="seconds, then stop")
    p.add_argument("--connect-concurrency", type=int, default=200)
    p.add_argument("--progress", action="store_true", help="print a line per second")
    p.add_argument("--report", help="write the JSON figures here too")
    args = p.parse_args(argv)
    host = args.address.rpartition(":")[0]
    if host not in ("127.0.0.1", "localhost", "[::1]") and not args.address.startswith("127."):
        print("refusing a non-loopback address (load tests stay on this machine)", file=sys.stderr)
        return 2
    if not 1 <= args.agents <= 20000:
        print("--agents must be between 1 and 20000", file=sys.stderr)
        return 2
    if args.duration > 1800:
        print("--duration is capped at 1800 s", file=sys.stderr)
        return 2
    result = asyncio.run(main_async(args))
    text = json.dumps(result, indent=1)
    print(text)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
