"""Verify the 4-node x 2-drive MinIO cluster, then take nodes away for real.

Layout under test: 8 drives form one erasure set with MinIO's default parity
EC:4, so data = parity = 4: read quorum = 4 drives, write quorum = 4 + 1 = 5.
One node down leaves 6 drives (reads and writes go on); two nodes down leave 4
(reads go on, writes are refused).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
from labtools import container_stopped, containers_stopped, docker, inventory_host, wait_for

NODES = ("minio-1", "minio-2", "minio-3", "minio-4")
DRIVES = ("/srv/minio/drive1", "/srv/minio/drive2")
BUCKET = "mlflow-artifacts"
MLFLOW_USER = "mlflow"
CA = "/etc/minio/certs/CAs/ca.crt"
SECRETS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets"
# What MinIO's rules give for one set of 8 drives (see the module docstring).
EXPECTED = {"set_size": 8, "parity": 4, "data": 4, "read_quorum": 4, "write_quorum": 5}
RUN = uuid.uuid4().hex[:8]  # object names unique to this verify run
NETWORK = "molecule-minio"
# Longest single S3 operation allowed while a node vanishes (issue 21's goal:
# 3 s). The unpatched MinIO held one for ~30 s in many runs (30.2, 30.3, 30.4,
# 30.6 s, on a quiet machine too): Go's 15 s + 15 s TCP keepalive on internode
# streams waiting for a reply. With our patched build (internode keepalive
# 2 s idle + 1 s probes, tests/lab/minio-patches) the slowest operation was
# 4.04 s (a GET) and 5.36 s (a PUT) in two runs (2026-12-01, load 2-5; only
# two runs, the old hold did not come in every run either). 12 s fails every
# one of those holds and leaves room for a loaded machine; without
# minio_conn_user_timeout writes hang 22-60 s.
LOSS_BOUND_S = 12.0
# The local S3 endpoint (role s3_endpoint) on minio-1 over all four nodes.
ENDPOINT_PORT, ENDPOINT_STATS = 9010, "http://127.0.0.1:7010/;csv"


def _layout_filter():
    path = Path(__file__).resolve().parents[3] / "roles/minio/filter_plugins/minio_layout.py"
    spec = importlib.util.spec_from_file_location("minio_layout", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.minio_erasure_layout


@pytest.fixture(scope="module")
def nodes():
    return {name: inventory_host(name) for name in NODES}


def minio_env(host) -> dict[str, str]:
    env = {}
    for line in host.file("/etc/default/minio").content_string.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value.strip('"')
    return env


def mlflow_secret() -> str:
    return (SECRETS / "minio_mlflow_secret_key").read_text().split()[0]


def mc(host, args: str, check: bool = True):
    """mc on HOST as root, alias `local` pointing at that node."""
    cmd = (
        "set -a; . /etc/default/minio; set +a; "
        "MC_CONFIG_DIR=/etc/minio/mc "
        'MC_HOST_local="https://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@$(hostname):9000" '
        f"mc {args}"
    )
    result = host.run(cmd)
    if check:
        assert result.rc == 0, f"mc {args}: {result.stdout} {result.stderr}"
    return result


def s3(host, method: str, node: str, path: str, user: str, secret: str, upload: str | None = None):
    """One signed S3 request (curl --aws-sigv4, no retries) from HOST to NODE: (status, body file)."""
    out = f"/root/s3-{uuid.uuid4().hex}"
    up = f"-T {shlex.quote(upload)} " if upload else ""
    cmd = (
        f"curl -sS -o {out} -w '%{{http_code}}' --max-time 60 --cacert {CA} "
        f"--aws-sigv4 aws:amz:us-east-1:s3 --user {shlex.quote(user + ':' + secret)} -X {method} {up}"
        f"https://{node if ':' in node else node + ':9000'}{path}"
    )
    status = int(host.check_output(cmd) or 0)
    return status, out


def as_root(host, method: str, node: str, path: str, upload: str | None = None):
    env = minio_env(host)
    return s3(host, method, node, path, env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"], upload)


def health(host, node: str, path: str) -> tuple[int, dict[str, str]]:
    """Status and x-minio-* headers of a health endpoint of NODE, asked from HOST."""
    out = host.run(
        f"curl -sS -o /dev/null -D - --max-time 15 --cacert {CA} https://{node}:9000/minio/health/{path}"
    ).stdout
    lines = out.splitlines()
    if not lines:
        return 0, {}
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    return int(lines[0].split()[1]), {k: v for k, v in headers.items() if k.startswith("x-minio")}


def random_file(host, size_kib: int = 1024) -> tuple[str, str]:
    path = f"/root/obj-{uuid.uuid4().hex}"
    host.check_output(f"head -c {size_kib * 1024} /dev/urandom > {path}")
    return path, host.check_output(f"sha256sum {path}").split()[0]


def sha256(host, path: str) -> str:
    return host.check_output(f"sha256sum {path}").split()[0]


def backend(host) -> dict:
    return json.loads(mc(host, "admin info --json local").stdout)["info"]["backend"]


def wait_cluster_healthy(nodes, timeout: float = 180) -> None:
    """Every node answers /minio/health/cluster with 200 and all 8 drives are online."""
    for name in NODES:
        wait_for(
            lambda name=name: health(nodes["minio-1"], name, "cluster")[0] == 200,
            timeout=timeout,
            interval=3,
            what=f"{name} answering /minio/health/cluster with 200",
        )
    wait_for(
        lambda: backend(nodes["minio-1"])["offlineDisks"] == 0,
        timeout=timeout,
        interval=3,
        what="all 8 drives online",
    )


def rolling_restart(limit: str) -> subprocess.CompletedProcess:
    """playbooks/minio_rolling_restart.yml on this scenario's inventory, short maintenance wait."""
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(root / "roles"), "ANSIBLE_NOCOLOR": "1"}
    inventory = str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
    cmd = ["ansible-playbook", "-i", inventory, "--limit", limit, "-e", "minio_rolling_restart_timeout=10"]
    return subprocess.run(
        [*cmd, str(root / "playbooks/minio_rolling_restart.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def endpoint_states(host) -> dict[str, str]:
    """Node -> status ("UP", "DOWN", "UP 1/2", ...) as the endpoint's health checks see them."""
    csv = host.check_output(f"curl -sS --max-time 5 '{ENDPOINT_STATS}'")
    rows = [line.split(",") for line in csv.splitlines() if line.startswith("s3,")]
    return {r[1]: r[17] for r in rows if r[1] not in ("FRONTEND", "BACKEND")}


def heal(host) -> list[dict]:
    """`mc admin heal -r` of the artifact bucket: one JSON record per item."""
    out = mc(host, f"admin heal -r --json local/{BUCKET}").stdout
    return [json.loads(line) for line in out.splitlines() if line]


# --- per node -------------------------------------------------------------------


def test_service_runs_as_the_service_user(host):
    service = host.service("minio")
    assert service.is_running
    assert service.is_enabled
    assert host.check_output("ps -o user= -C minio").split() == ["minio"]


def test_environment_file_is_private(host):
    env = host.file("/etc/default/minio")
    assert (env.user, env.group, env.mode) == ("root", "minio", 0o640)
    key = host.file("/etc/minio/certs/private.key")
    assert (key.group, key.mode) == ("minio", 0o640)


def test_unit_is_hardened(host):
    wanted = ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "CapabilityBoundingSet", "Type")
    shown = host.check_output("systemctl show minio " + " ".join(f"-p {p}" for p in wanted))
    props = dict(line.split("=", 1) for line in shown.splitlines())
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["PrivateTmp"] == "yes"
    assert props["CapabilityBoundingSet"] == ""
    assert props["Type"] == "notify"


def test_heal_watcher_runs_hardened_with_no_secret_on_its_command_line(host):
    service = host.service("hokusai-minio-heal")
    assert service.is_running
    assert service.is_enabled
    shown = host.check_output(
        "systemctl show hokusai-minio-heal -p ProtectSystem -p NoNewPrivileges -p ExecStart"
    )
    assert "ProtectSystem=strict" in shown and "NoNewPrivileges=yes" in shown
    password = host.check_output('. /etc/default/minio && printf %s "$MINIO_ROOT_PASSWORD"')
    assert password and password not in shown
    assert password not in host.check_output("ps -eo args")


def test_drives_are_formatted_and_owned_by_minio(host):
    for drive in DRIVES:
        d = host.file(drive)
        assert (d.user, d.mode) == ("minio", 0o750)
        assert host.file(f"{drive}/.minio.sys/format.json").exists


def test_plain_http_is_not_served(host):
    result = host.run(
        "curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:9000/minio/health/live"
    )
    assert result.rc != 0 or result.stdout.strip() in ("400", "000"), result.stdout


# --- the cluster ----------------------------------------------------------------------


def test_minio_volumes_uses_the_expansion_notation(nodes):
    volumes = {minio_env(h)["MINIO_VOLUMES"] for h in nodes.values()}
    assert volumes == {"https://minio-{1...4}:9000/srv/minio/drive{1...2}"}


def test_all_nodes_and_drives_online(nodes):
    info = json.loads(mc(nodes["minio-1"], "admin info --json local").stdout)["info"]
    servers = {s["endpoint"].split(":")[0]: s for s in info["servers"]}
    assert sorted(servers) == sorted(NODES)
    for name, server in servers.items():
        assert server["state"] == "online", name
        assert sorted((d["path"], d["state"]) for d in server["drives"]) == [(p, "ok") for p in DRIVES], name
    assert info["backend"]["onlineDisks"] == 8
    assert info["backend"]["offlineDisks"] == 0


def test_erasure_layout_and_quorums_match_minio_rules(nodes):
    info = json.loads(mc(nodes["minio-1"], "admin info --json local").stdout)["info"]
    assert info["backend"]["totalSets"] == [1]
    assert info["backend"]["totalDrivesPerSet"] == [EXPECTED["set_size"]]
    assert info["backend"]["standardSCParity"] == EXPECTED["parity"]
    status, headers = health(nodes["minio-2"], "minio-2", "cluster")
    assert status == 200
    assert int(headers["x-minio-write-quorum"]) == EXPECTED["write_quorum"]
    status, headers = health(nodes["minio-2"], "minio-2", "cluster/read")
    assert status == 200
    assert int(headers["x-minio-read-quorum"]) == EXPECTED["read_quorum"]
    # The role's preflight computes the same layout from the inventory.
    layout = _layout_filter()(4, 2)
    assert {k: layout[k] for k in EXPECTED} == EXPECTED
    assert (layout["nodes_lost_read_ok"], layout["nodes_lost_write_ok"]) == (2, 1)


def test_artifact_bucket_is_versioned(nodes):
    info = json.loads(mc(nodes["minio-1"], f"version info --json local/{BUCKET}").stdout)
    assert info["versioning"]["status"] == "Enabled"


def test_object_written_through_one_node_is_read_through_another(nodes):
    client = nodes["minio-1"]
    src, digest = random_file(client)
    status, _ = s3(client, "PUT", "minio-1", f"/{BUCKET}/{RUN}/cross-node", MLFLOW_USER, mlflow_secret(), src)
    assert status == 200
    status, out = s3(client, "GET", "minio-3", f"/{BUCKET}/{RUN}/cross-node", MLFLOW_USER, mlflow_secret())
    assert status == 200
    assert sha256(client, out) == digest


def test_mlflow_user_is_confined_to_its_bucket(nodes):
    client = nodes["minio-2"]
    secret = mlflow_secret()
    mc(client, "mb --ignore-existing local/not-mlflow")
    src, _ = random_file(client, 4)
    # Its own bucket: write, list, read, delete.
    assert s3(client, "PUT", "minio-2", f"/{BUCKET}/{RUN}/own", MLFLOW_USER, secret, src)[0] == 200
    assert s3(client, "GET", "minio-2", f"/{BUCKET}?list-type=2&prefix={RUN}/", MLFLOW_USER, secret)[0] == 200
    assert s3(client, "GET", "minio-2", f"/{BUCKET}/{RUN}/own", MLFLOW_USER, secret)[0] == 200
    assert s3(client, "DELETE", "minio-2", f"/{BUCKET}/{RUN}/own", MLFLOW_USER, secret)[0] == 204
    # Anything else: refused.
    assert s3(client, "PUT", "minio-2", f"/not-mlflow/{RUN}", MLFLOW_USER, secret, src)[0] == 403
    assert s3(client, "GET", "minio-2", "/not-mlflow?list-type=2", MLFLOW_USER, secret)[0] == 403
    assert s3(client, "PUT", "minio-2", f"/mlflow-new-{RUN}", MLFLOW_USER, secret)[0] == 403
    assert s3(client, "DELETE", "minio-2", f"/{BUCKET}", MLFLOW_USER, secret)[0] == 403
    # Listing buckets is answered, but shows only the buckets the user may use.
    status, out = s3(client, "GET", "minio-2", "/", MLFLOW_USER, secret)
    listing = client.file(out).content_string
    assert status == 200
    assert f"<Name>{BUCKET}</Name>" in listing
    assert "not-mlflow" not in listing
    alias = shlex.quote(f"https://{MLFLOW_USER}:{secret}@minio-2:9000")
    admin = client.run(f"MC_CONFIG_DIR=/etc/minio/mc MC_HOST_m={alias} mc admin user list --json m")
    assert admin.rc != 0
    assert "AccessDenied" in admin.stdout, admin.stdout


def test_metrics_need_the_bearer_token(nodes):
    client = nodes["minio-1"]
    token = (SECRETS / "minio_prometheus_token").read_text().strip()
    for path in ("cluster", "node"):
        url = f"https://minio-1:9000/minio/v2/metrics/{path}"
        curl = f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {CA}"
        with_token = client.check_output(f"{curl} -H {shlex.quote('Authorization: Bearer ' + token)} {url}")
        without = client.check_output(f"{curl} {url}")
        assert (with_token, without) == ("200", "403"), path


# --- the local S3 endpoint (role s3_endpoint) on minio-1 ----------------------------------


def test_s3_endpoint_runs_its_own_hardened_unit_and_config(nodes):
    host = nodes["minio-1"]
    unit = host.service("hokusai-s3-endpoint")
    assert unit.is_running and unit.is_enabled
    # Its own configuration; Debian's haproxy.service (pg_endpoint's where it
    # runs) is neither used nor left to fail at boot.
    assert host.file("/etc/hokusai-s3-endpoint/haproxy.cfg").contains("on-marked-down shutdown-sessions")
    assert not host.service("haproxy").is_running and not host.service("haproxy").is_enabled
    wanted = ("User", "NoNewPrivileges", "ProtectSystem", "CapabilityBoundingSet", "Type")
    shown = host.check_output("systemctl show hokusai-s3-endpoint " + " ".join(f"-p {p}" for p in wanted))
    props = dict(line.split("=", 1) for line in shown.splitlines())
    assert props == {"User": "haproxy", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                     "CapabilityBoundingSet": "", "Type": "notify"}  # fmt: skip
    assert host.socket(f"tcp://127.0.0.1:{ENDPOINT_PORT}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{ENDPOINT_PORT}").is_listening


def test_s3_endpoint_checks_every_node_over_verified_tls(nodes):
    host = nodes["minio-1"]
    wait_for(
        lambda: set(endpoint_states(host).values()) == {"UP"} and len(endpoint_states(host)) == len(NODES),
        timeout=30,
        interval=1,
        what="the endpoint's checks seeing all four nodes UP",
    )
    # Clients verify MinIO's certificate against the address they use.
    status = host.check_output(
        f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {CA} https://127.0.0.1:{ENDPOINT_PORT}/minio/health/live"
    )
    assert status == "200"
    src, digest = random_file(host, 256)
    # MinIO may still answer 503 for a moment after the previous tests' restarts
    # (measured once in CI): the endpoint is what is tested, so wait for a 200.
    wait_for(
        lambda: s3(host, "PUT", f"127.0.0.1:{ENDPOINT_PORT}", f"/{BUCKET}/{RUN}/via-endpoint", MLFLOW_USER,
                   mlflow_secret(), src)[0] == 200,
        timeout=60,
        interval=2,
        what="a PUT through the endpoint answered 200",
    )  # fmt: skip
    status, out = s3(host, "GET", "minio-3", f"/{BUCKET}/{RUN}/via-endpoint", MLFLOW_USER, mlflow_secret())
    assert status == 200 and sha256(host, out) == digest


# --- failures: containers really stopped ------------------------------------------------

WRITTEN: dict[str, str] = {}  # object -> sha256, written during the failure tests


def test_node_lost_without_reset_stalls_no_operation(nodes):
    """minio-4 partitioned (nothing answers at its address, no RST) under a stream of PUTs/GETs to minio-1.

    Every operation succeeds on its first attempt within LOSS_BOUND_S, and every
    acknowledged object reads back with its checksum. Without
    MINIO_CONN_USER_TIMEOUT the writes that had a shard on minio-4 hang 22-60 s.
    One stream only: a second one through the local S3 endpoint on the same
    two shared cores made the unpatched MinIO stall operations ~30 s in 3 of 4
    runs (TCP keepalive, issue 21); the endpoint's node loss is tested in the lab
    (tests/e2e/test_minio_node_loss.py: WAL archiving through it).
    """
    here = Path(__file__).resolve().parent
    docker("cp", str(here.parents[2] / "tests/bench/minio_bench.py"), "minio-1:/root/minio_bench.py")
    docker("cp", str(here / "s3_stream.py"), "minio-1:/root/s3_stream.py")
    client = nodes["minio-1"]
    client.run("rm -f /root/stream.started /root/stream.json")
    args = ["20", "4", "4", "/root/stream.json", BUCKET, f"{RUN}/stream"]
    docker("exec", "-d", "minio-1", "python3", "/root/s3_stream.py", *args)
    wait_for(
        lambda: client.file("/root/stream.started").exists, timeout=30, interval=0.5, what="the S3 stream"
    )
    lost_at = float(client.check_output("date +%s.%N"))
    docker("network", "disconnect", NETWORK, "minio-4")
    try:
        wait_for(
            lambda: client.file("/root/stream.json").exists,
            timeout=180,
            interval=1,
            what="the S3 stream's end",
        )
    finally:
        docker("network", "connect", "--alias", "minio-4", NETWORK, "minio-4")
    result = json.loads(client.file("/root/stream.json").content_string)
    after = [op for op in result["ops"] if op["start"] + op["seconds"] > lost_at]
    assert len(after) > 10, f"too few operations after the loss to judge: {len(after)}"
    failed = [op for op in after if op["status"] != 200 or op["error"]]
    assert failed == [], failed[:5]
    slowest = max(after, key=lambda op: op["seconds"])
    assert slowest["seconds"] <= LOSS_BOUND_S, slowest
    assert (result["lost"], result["corrupt"]) == ([], [])
    print(f"node lost: {len(after)} operations, slowest {slowest['op']} {slowest['seconds']:.2f} s")
    wait_cluster_healthy(nodes)


# When the outage tests began (epoch seconds on minio-1): the heal watcher's
# journal is read from then on.
OUTAGES_FROM: list[str] = []


def test_one_node_down_reads_and_writes_go_on(nodes):
    client = nodes["minio-1"]
    OUTAGES_FROM.append(client.check_output("date +%s"))
    before, before_digest = random_file(client)
    assert as_root(client, "PUT", "minio-1", f"/{BUCKET}/{RUN}/before-outage", before)[0] == 200
    WRITTEN["before-outage"] = before_digest
    with container_stopped("minio-4"):
        wait_for(
            lambda: backend(client)["offlineDisks"] == 2,
            timeout=60,
            interval=2,
            what="MinIO seeing minio-4's two drives offline",
        )
        for i, node in enumerate(("minio-1", "minio-2", "minio-3")):
            src, digest = random_file(client)
            assert as_root(client, "PUT", node, f"/{BUCKET}/{RUN}/one-down-{i}", src)[0] == 200, node
            WRITTEN[f"one-down-{i}"] = digest
            status, out = as_root(client, "GET", node, f"/{BUCKET}/{RUN}/before-outage")
            assert status == 200, node
            assert sha256(client, out) == before_digest, node
        assert health(client, "minio-1", "cluster")[0] == 200
        # The rolling restart's guard: with minio-4 gone, no other node may go down.
        assert health(client, "minio-1", "cluster?maintenance=true")[0] == 412
        main_pid = "systemctl show -p MainPID --value minio"
        pid_before = client.check_output(main_pid)
        refused = rolling_restart("minio-1")
        said = " ".join((refused.stdout + refused.stderr).split())  # wrapped, on stdout or stderr
        assert refused.returncode != 0, said[-2000:]
        assert "answered 412 to /minio/health/cluster?maintenance=true" in said, said[-2000:]
        assert client.check_output(main_pid) == pid_before, "the playbook restarted minio-1 anyway"
    wait_cluster_healthy(nodes)


def test_two_nodes_down_reads_only(nodes):
    client = nodes["minio-1"]
    src, _ = random_file(client)
    with containers_stopped("minio-3", "minio-4"):
        wait_for(
            lambda: health(client, "minio-1", "cluster")[0] == 503,
            timeout=60,
            interval=2,
            what="/minio/health/cluster reporting the loss of write quorum",
        )
        status, headers = health(client, "minio-1", "cluster")
        assert int(headers["x-minio-write-quorum"]) == EXPECTED["write_quorum"]
        status, headers = health(client, "minio-2", "cluster/read")
        assert status == 200, "4 drives left = read quorum: reads must still be served"
        # Reads: objects written healthy and with one node down, through both survivors.
        for name, digest in WRITTEN.items():
            for node in ("minio-1", "minio-2"):
                status, out = as_root(client, "GET", node, f"/{BUCKET}/{RUN}/{name}")
                assert status == 200, (name, node)
                assert sha256(client, out) == digest, (name, node)
        # Writes: 4 drives < write quorum 5, MinIO refuses (503 SlowDownWrite).
        for node in ("minio-1", "minio-2"):
            status, out = as_root(client, "PUT", node, f"/{BUCKET}/{RUN}/two-down", src)
            assert status == 503, (node, client.file(out).content_string)
            assert "SlowDownWrite" in client.file(out).content_string
    wait_cluster_healthy(nodes)


def test_after_restart_the_watcher_heals_without_a_manual_step(nodes):
    client = nodes["minio-1"]
    wait_cluster_healthy(nodes)
    # Objects written while minio-4 was down miss their shards there. MinIO
    # itself does not heal them when it comes back (its immediate attempt
    # failed while the node was out; the scanner looks once in 1024 cycles):
    # the role's heal watcher does, minio_heal_settle (15 s here) after every drive
    # is back. Nothing here asks for a heal.
    stray = nodes["minio-4"]

    def on_minio4() -> list[str]:
        return [
            f"{drive}:{name}"
            for drive in DRIVES
            for name in WRITTEN
            if not stray.file(f"{drive}/{BUCKET}/{RUN}/{name}/xl.meta").exists
        ]

    wait_for(
        lambda: not on_minio4(),
        timeout=150,
        interval=5,
        what="the heal watcher putting every object on minio-4",
    )
    # ... and it was the watcher on the first node (the leader) that healed them.
    # The objects can reach minio-4 before the heal has finished and logged.
    since = f"@{OUTAGES_FROM[0]}" if OUTAGES_FROM else "-15min"

    def healed_by_the_watcher() -> bool:
        said = client.check_output(f"journalctl -u hokusai-minio-heal --no-pager -o cat --since {since}")
        return any(int(n) for n in re.findall(r"heal done.*?: \d+ objects scanned, (\d+) healed", said))

    wait_for(
        healed_by_the_watcher,
        timeout=120,
        interval=3,
        what="the heal watcher's journal: a heal since the outages that healed objects",
    )
    before = {r["name"]: r["before"] for r in heal(client) if r.get("type") == "object"}
    leftover = [
        n
        for n in WRITTEN
        if (before[f"{BUCKET}/{RUN}/{n}"]["color"], before[f"{BUCKET}/{RUN}/{n}"]["online"]) != ("green", 8)
    ]
    assert leftover == [], "a second heal still found work"
    assert (backend(client)["onlineDisks"], backend(client)["offlineDisks"]) == (8, 0)
    # Healthy with margin again: any single node may now be taken down.
    for name in NODES:
        assert health(nodes[name], name, "cluster?maintenance=true")[0] == 200, name
