"""A real Redis Cluster for tests: 3 masters + 3 replicas from `redis-server` binaries.

Each node is a `RedisServer` (tests/helpers.py) with cluster mode on and its own data
directory; `redis-cli --cluster create` joins them, as an operator would. A node needs two
free ports, its own and its cluster bus port (port + 10000), so ports are chosen below the
kernel's ephemeral range, where no outgoing connection takes one while the cluster starts.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from .helpers import RedisServer

BUS_OFFSET = 10000  # Redis Cluster's bus listens on port + 10000
NODE_TIMEOUT_MS = 1000  # a killed master is failed over within a few seconds
SLOTS = 16384
START_ATTEMPTS = 5  # another process may take a port between the check and the bind


class CrossSlot(RedisClusterException):
    """One command or script touched keys in more than one slot (or keys it was not given)."""


class SlotCheckingCluster(RedisCluster):
    """redis-py's RedisCluster, raising CrossSlot for a command whose keys span slots.

    redis-py finds that before sending (as a plain RedisClusterException, which it also
    raises for other misuses); the distinct type lets a test expect exactly this failure.
    """

    def determine_slot(self, *args):
        try:
            return super().determine_slot(*args)
        except RedisClusterException as exc:
            if "must map to the same key slot" in str(exc):
                raise CrossSlot(str(exc)) from exc
            raise


def check_slots(monkeypatch) -> None:
    """Make the app's cluster clients (client_from_config) SlotCheckingClusters."""
    monkeypatch.setattr("app.pending.redis_client.RedisCluster", SlotCheckingCluster)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def cluster_port() -> int:
    """A port free now whose bus port (port + 10000) is free too, both outside the range the
    kernel hands to outgoing connections when that range leaves room (Linux: 32768-60999)."""
    floor = _ephemeral_floor()
    low, high = (10000, floor - BUS_OFFSET) if floor - BUS_OFFSET > 11000 else (1024, 55535)
    for _ in range(1000):
        port = random.randrange(low, high)
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class ClusterNode(RedisServer):
    """One cluster node: a RedisServer with cluster mode on and a short node timeout."""

    def __init__(self, port: int | None = None, directory: str | None = None):
        super().__init__(port=port or cluster_port(), directory=directory, extra_args=[
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A replica may take over whatever its last contact with the master was: in a
            # test the replica is seconds old, and a refused failover would hang the test.
            "--cluster-replica-validity-factor", "0",
            # A replica's first sync starts at once instead of waiting 5 s for other replicas.
            "--repl-diskless-sync-delay", "0"])
        self._client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        """One plain client to this node, kept: the waits poll every node many times, and a
        restarted node is reconnected to by redis-py itself."""
        if self._client is None:
            self._client = super().client()
        return self._client

    @property
    def address(self) -> str:
        """host:port, as redis-cli and REDIS_CLUSTER_NODES take it."""
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    def info(self, section: str) -> dict:
        """INFO <section> of this node."""
        return self.client().info(section)

    def node_id(self) -> str:
        """This node's id in the cluster."""
        return self.client().execute_command("CLUSTER MYID").decode()


class RedisClusterServers:
    """Six nodes, joined into a cluster; kill a master and its replica takes over."""

    def __init__(self, masters: int = 3, replicas: int = 1):
        self.masters_wanted = masters
        self.replicas = replicas
        self.nodes: list[ClusterNode] = []

    # -- addresses ------------------------------------------------------------------------
    @property
    def addresses(self) -> str:
        """host:port,host:port of every node (REDIS_CLUSTER_NODES)."""
        return ",".join(node.address for node in self.nodes)

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """[(host, port)] of every node, as the config holds REDIS_CLUSTER_NODES."""
        return [("127.0.0.1", node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        """The redis+cluster:// URL naming every node."""
        return f"redis+cluster://{self.addresses}"

    # -- start and stop -------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "RedisClusterServers":
        """Start every node, join them with `redis-cli --cluster create`, wait until healthy."""
        for _ in range(self.masters_wanted * (1 + self.replicas)):
            self.nodes.append(self._start_node())
        command = ["redis-cli", "--cluster", "create", *(n.address for n in self.nodes),
                   "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        self.wait_healthy(timeout)
        return self

    def _start_node(self, port: int | None = None, directory: str | None = None) -> ClusterNode:
        last = None
        for _ in range(START_ATTEMPTS if port is None else 1):
            node = ClusterNode(port, directory)
            try:
                return node.start()
            except RuntimeError as exc:  # the port was taken meanwhile: another pair
                last = exc
                node.destroy()
        raise RuntimeError(f"could not start a cluster node: {last}")

    def cleanup(self) -> None:
        """SIGKILL every node (nothing to save) and remove the data directories."""
        for node in self.nodes:
            node.destroy()

    # -- state ----------------------------------------------------------------------------
    def live(self) -> list[ClusterNode]:
        """The nodes whose process runs."""
        return [node for node in self.nodes if node.running()]

    def masters(self) -> list[ClusterNode]:
        """Running nodes that serve slots as masters now."""
        return [node for node in self.live() if node.info("replication")["role"] == "master"]

    def replicas_of(self, master: ClusterNode) -> list[ClusterNode]:
        """Running replicas whose master is `master`."""
        found = []
        for node in self.live():
            info = node.info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == master.port:
                found.append(node)
        return found

    def master_for(self, key: str) -> ClusterNode:
        """The master serving `key`'s slot now."""
        for node in self.masters():
            try:
                node.client().exists(key)  # any other master answers MOVED
            except redis.exceptions.ResponseError:
                continue
            return node
        raise AssertionError(f"no master serves {key!r}")

    def _healthy(self) -> bool:
        masters = 0
        for node in self.live():
            try:
                info = node.client().cluster("info")
                replication = node.info("replication")
            except redis.exceptions.RedisError:
                return False
            if (info.get("cluster_state") != "ok"
                    or int(info.get("cluster_slots_ok", 0)) != SLOTS
                    or int(info.get("cluster_known_nodes", 0)) != len(self.nodes)):
                return False
            if replication["role"] == "master":
                masters += 1
                if int(replication["connected_slaves"]) < self.replicas:
                    return False
            elif replication.get("master_link_status") != "up":
                return False
        return masters == self.masters_wanted

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every running node says cluster_state:ok with all 16384 slots served,
        knows every node, `masters_wanted` masters serve, and every replica is in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._healthy():
                return
            time.sleep(0.05)
        raise RuntimeError(f"the cluster on {self.addresses} was not healthy within {timeout}s")

    # -- faults ---------------------------------------------------------------------------
    def kill_master(self, master: ClusterNode, timeout: float = 30.0) -> ClusterNode:
        """SIGKILL `master` and wait until the cluster promoted its replica and serves every
        slot again (automatic failover after the node timeout). Returns the new master."""
        replicas = self.replicas_of(master)
        assert replicas, f"{master.address} has no replica to promote"
        master.kill()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for replica in replicas:
                try:
                    promoted = replica.info("replication")["role"] == "master"
                    state = replica.client().cluster("info")["cluster_state"]
                except redis.exceptions.RedisError:
                    continue
                if promoted and state == "ok" and self._agreed(master, replica):
                    return replica
            time.sleep(0.05)
        raise RuntimeError(f"no replica of {master.address} took over within {timeout}s")

    def _agreed(self, dead: ClusterNode, promoted: ClusterNode) -> bool:
        """Every running node's view (CLUSTER NODES) has `dead` failed and `promoted` a master:
        a client that asks any of them for the slot map then finds the new master (gossip
        reaches the nodes one by one, so the promoted replica knows before the others)."""
        for node in self.live():
            try:
                table = node.client().cluster("nodes")  # {"host:port": {"flags": ...}, ...}
            except redis.exceptions.RedisError:
                return False
            if ("fail" not in table.get(dead.address, {}).get("flags", "").split(",")
                    or "master" not in table.get(promoted.address, {}).get("flags", "")):
                return False
        return True

    def restart(self, node: ClusterNode, timeout: float = 30.0) -> ClusterNode:
        """Start a stopped node again (same port, same data dir and nodes.conf): it rejoins,
        as a replica of whichever node took over its slots. Waits until the cluster is
        healthy again."""
        assert not node.running(), f"{node.address} still runs"
        node.start()
        self.wait_healthy(timeout)
        return node

    def heal(self, timeout: float = 30.0) -> None:
        """Restart every node a test left stopped, and wait until the cluster is healthy."""
        for node in self.nodes:
            if not node.running():
                node.start()
        self.wait_healthy(timeout)

    def flushall(self) -> None:
        """Empty every master (the replicas follow)."""
        for node in self.masters():
            node.client().flushall()
