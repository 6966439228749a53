"""The Redis stores on a real three-node Redis Cluster (`tests.servers.redis_cluster`).

A cluster refuses (CROSSSLOT) any multi-key command or transaction whose keys lie in different
slots, and redirects (MOVED) a key sent to the wrong node: so these tests fail if a store's keys
are laid out wrong or a command is sent where a cluster client cannot route it. They also check
that the data did spread: the customer docs over all three nodes, the index's sets on one, the
outbox's shards (and so the incidents' messages) over all three.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
from redis.cluster import RedisCluster

from forewarn.connectors.health import check_redis, connect_cluster
from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.redis_contact_log import RedisContactLog
from forewarn.connectors.redis_incidents import RedisIncidentStore
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.demo.scenario import generate
from forewarn.envelopes import Envelope
from forewarn.flows.offline import load_customers, redis_index
from forewarn.flows.startup import redis_client
from forewarn.geo import Area
from forewarn.interfaces import CustomerIndex
from forewarn.records import Customer, Incident, Message, MessageKey, SendResult, Trait
from forewarn.settings import ConfigError, DeliverySettings, RedisSettings, Secrets, Settings
from tests.integration import test_end_to_end as e2e
from tests.integration.helpers import make_settings, produce, read_topic, topic_names
from tests.servers.kafka_broker import create_topics
from tests.servers.ports import free_port
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin
from tests.unit import test_customer_index_contract as contract

pytestmark = pytest.mark.integration

# Around Dallas and Los Angeles, where some of the demo scenario's customers live (lat, lon).
AREA = Area([[(32.3, -97.5), (33.3, -97.5), (33.3, -96.5), (32.3, -96.5)]], [(34.0, -118.1, 40.0)])


@pytest.fixture
def cluster(redis_cluster_url: str) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster_url)
    yield client
    client.close()


def keys_per_node(client: RedisCluster, match: str) -> dict[str, int]:
    """How many keys matching `match` each primary holds."""
    return {node.name: sum(1 for _ in client.scan_iter(match=match, count=1000, target_nodes=node))
            for node in client.get_primaries()}


def ids(customers: Iterator[Customer]) -> set[str]:
    return {c.id for c in customers}


# -- the index and outbox contracts, run on the cluster -----------------------------------------


@pytest.fixture
def index(cluster: RedisCluster) -> CustomerIndex:
    """The contract tests' `index`, on the cluster; small batches, so a segment is read in many MGETs."""
    return RedisCustomerIndex(cluster, prefix="t", batch_size=3)


@pytest.fixture
def traits_index(cluster: RedisCluster) -> CustomerIndex:
    return RedisCustomerIndex(cluster, prefix="t", batch_size=3, extra_traits=("tier", "battery_backup"))


@pytest.fixture
def outbox(cluster: RedisCluster) -> RedisOutbox:
    """The contract tests' `outbox`, on the cluster, its shards spread over the nodes."""
    return RedisOutbox(cluster, prefix="t", shards=8)


clock = contract.clock
test_contract_upsert_then_get_many = contract.test_upsert_then_get_many
test_contract_attribute_change_moves_customer_between_sets = contract.test_attribute_change_moves_customer_between_sets
test_contract_segment_is_and_of_values = contract.test_segment_is_and_of_values
test_contract_segment_of_many_customers_yields_each_once = contract.test_segment_of_many_customers_yields_each_once
test_contract_value_counts_and_size = contract.test_value_counts_and_size
test_contract_attribute_counts = contract.test_attribute_counts_list_every_value_and_follow_changes
test_contract_model_and_firmware_on_one_product = contract.test_model_and_firmware_together_match_on_one_product
test_contract_count_agrees_with_segment = contract.test_count_agrees_with_segment
test_contract_contacts = contract.test_contacts_are_the_segment_read_lighter
test_contract_in_area = contract.test_in_area_finds_the_located_customers_inside_each_once
test_contract_extra_traits = contract.test_extra_traits_are_indexed_from_customer_and_product_fields
test_contract_record_opt_out = contract.test_record_opt_out_rewrites_only_that_channel
test_contract_outbox_protocols = contract.test_outbox_satisfies_both_protocols
test_contract_empty_take = contract.test_taking_from_an_empty_queue_without_a_wait_returns_at_once
test_contract_decided_once = contract.test_a_key_is_decided_only_once
test_contract_settled_never_again = contract.test_a_settled_message_is_never_decided_or_sent_again
test_contract_failed_is_final = contract.test_a_failed_message_is_final_and_not_accepted
test_contract_decided_and_accepted = contract.test_decided_and_accepted_are_by_incident_and_kind
test_contract_reclaim = contract.test_a_message_a_crashed_worker_left_is_reclaimed_and_reconciled_before_a_resend
test_contract_deferred = contract.test_a_deferred_message_waits_for_its_time
test_contract_retry = contract.test_a_retry_waits_for_its_due_time_and_an_uncertain_one_is_reconciled
test_contract_release = contract.test_a_released_message_goes_back_untried
test_contract_fallback = contract.test_an_undelivered_sms_falls_back_to_its_email_once
test_contract_all_clear = contract.test_an_all_clear_skips_a_warning_never_sent_and_supersedes_a_waiting_one


# -- many customers: spread, and the same answers as the in-process index ---------------------------


def test_the_index_spreads_its_docs_keeps_its_sets_together_and_answers_as_in_memory(cluster: RedisCluster) -> None:
    customers = generate(seed=3, customers=3_000, regions=10).customers
    index = RedisCustomerIndex(cluster, batch_size=500)
    memory = InMemoryCustomerIndex()
    assert index.upsert(customers) == memory.upsert(customers) == 3_000

    docs = keys_per_node(cluster, "fw:cust:*")
    assert len(docs) == 3 and sum(docs.values()) == 3_000
    assert min(docs.values()) > 600, f"the docs did not spread over the three nodes: {docs}"
    sets = keys_per_node(cluster, "{fw:idx}:*")
    assert sorted(sets.values())[:2] == [0, 0], f"the index's sets are not on one node: {sets}"
    assert sum(sets.values()) > 20  # regions, models, firmwares, lots, quarters, pairs, all, geo

    region = customers[0].region
    product = customers[0].products[0]
    for segment in ({}, {"region": region}, {"model": product.model},
                    {"model": product.model, "firmware": product.firmware, "region": region},
                    {"region": region, "lot": product.lot or ""}):
        assert index.count(segment) == memory.count(segment), segment
        assert ids(index.segment(segment)) == ids(memory.segment(segment)), segment
        assert {c.id for c in index.contacts(segment)} == {c.id for c in memory.contacts(segment)}
    assert index.count({"region": region, "model": product.model}) > 0  # a real SINTERCARD, not 0 = 0
    assert index.attribute_counts("region") == memory.attribute_counts("region")
    assert index.value_counts("model", [product.model, "none"]) == memory.value_counts("model", [product.model, "none"])
    inside = ids(index.in_area(AREA))
    assert inside == ids(memory.in_area(AREA)) and 0 < len(inside) < 3_000
    assert ids(index.in_area(AREA, {"region": region})) == ids(memory.in_area(AREA, {"region": region}))
    sample = [c.id for c in customers[::97]] + ["CU-nobody"]
    assert index.get_many(sample) == memory.get_many(sample)

    moved = customers[0].model_copy(update={"region": "R-moved"})
    index.upsert([moved])
    assert customers[0].id not in ids(index.segment({"region": region}))
    assert ids(index.segment({"region": "R-moved"})) == {customers[0].id}


# -- the outbox: never a message twice, on many incidents ------------------------------------------


def test_the_outbox_decides_each_message_once_across_threads_and_spreads_by_incident(cluster: RedisCluster) -> None:
    outbox = RedisOutbox(cluster, shards=12)
    t = datetime(2026, 11, 17, 14, tzinfo=UTC)
    envelopes = [Envelope(Message(MessageKey(f"INC-{i}", f"CU-{j}", "warning"), "sms", f"+1512555{j:04d}", "Outage"),
                          t, t + timedelta(hours=6)) for i in range(60) for j in range(10)]
    won: Counter[str] = Counter()
    lock = threading.Lock()

    def decide_all() -> None:  # four flow workers replaying the same epoch at once
        mine = outbox.enqueue(envelopes, t)
        with lock:
            won.update(mine)

    workers = [threading.Thread(target=decide_all) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert set(won) == {e.id for e in envelopes} and set(won.values()) == {1}, "a message was decided twice (or never)"
    assert outbox.backlog("sms") == 600

    # Two delivery workers drain the streams of every shard; each message is handed out once.
    taken: Counter[str] = Counter()
    for consumer in ("w1", "w2") * 10:
        for lease in outbox.take("sms", consumer, 50, 0.01):
            taken[lease.message_id] += 1
            outbox.begin(lease, t)
            ok = not lease.message_id.startswith("INC-59|")
            outbox.settle(lease, "sent" if ok else "failed", t,
                          SendResult(ok=ok, provider_id="SM1" if ok else None, reason="" if ok else "21211"))
    assert set(taken) == {e.id for e in envelopes} and set(taken.values()) == {1}
    assert outbox.backlog("sms") == 0 and outbox.reclaim("sms", "w3", 0, 10) == []
    assert outbox.accepted("INC-0", "warning") == {f"CU-{j}" for j in range(10)}
    assert outbox.accepted("INC-59", "warning") == set() and len(outbox.decided("INC-59", "warning")) == 10
    assert outbox.enqueue(envelopes, t) == []  # decided: never again
    assert outbox.state(envelopes[0].id)["state"] == "sent" and outbox.state(envelopes[-1].id)["state"] == "failed"
    entries = keys_per_node(cluster, "{fw:out:*")
    assert min(entries.values()) > 0, f"the outbox did not spread its incidents over the nodes: {entries}"


def test_incidents_and_the_contact_log_on_the_cluster(cluster: RedisCluster) -> None:
    t = datetime(2026, 11, 17, 14, tzinfo=UTC)
    store = RedisIncidentStore(cluster)
    incidents = [Incident(f"INC-{i}", "no_internet", "TX-453", "opened", t, t, t, 30, 2.0, 1, 30,
                          frozenset({"CU-1"}), segment=(Trait("region", "TX-453", 3, 1.0, 0.1, 10.0, 1e-9),))
                 for i in range(30)]
    for incident in incidents:
        store.save(incident)
    assert [store.load(i.id) for i in incidents] == incidents
    assert store.load("INC-nope") is None

    log = RedisContactLog(cluster)
    customers = [f"CU-{i}" for i in range(500)]
    for n, customer in enumerate(customers):
        for k in range(n % 3):
            log.add(customer, t - timedelta(hours=k), f"INC-{k}|{customer}|warning")
    assert log.counts_since(customers, t - timedelta(days=1), batch=128) == [n % 3 for n in range(500)]
    assert log.count_since("CU-2", t - timedelta(minutes=30)) == 1
    logs = keys_per_node(cluster, "fw:contacts:*")
    assert min(logs.values()) > 50, f"the contact logs did not spread: {logs}"


# -- configuration and start-up checks ------------------------------------------------------------


def test_redis_client_makes_a_cluster_client_and_the_start_up_check_passes(redis_cluster_url: str) -> None:
    settings = Settings(redis=RedisSettings(url=redis_cluster_url, cluster=True))
    client = redis_client(settings, Secrets(), timeout=2.0)
    assert isinstance(client, RedisCluster)
    check_redis(client, "redis.url", "here")
    RedisCustomerIndex(client).upsert(generate(seed=3, customers=50, regions=2).customers)
    assert RedisCustomerIndex(client).size() == 50
    client.close()


def test_a_client_of_the_wrong_kind_is_named_before_the_flow_starts(redis_cluster_url: str, redis_url: str) -> None:
    plain = redis.Redis.from_url(redis_cluster_url, socket_timeout=2.0)
    with pytest.raises(ConfigError, match=r"is a node of a Redis Cluster, .*: set redis\.cluster: true"):
        check_redis(plain, "redis.url", "here")
    plain.close()
    with pytest.raises(ConfigError, match=r"is not a cluster node: set redis\.cluster: false"):
        connect_cluster(redis_url, "redis.url", socket_connect_timeout=2.0)
    with pytest.raises(ConfigError, match=r"did not answer .*fix FOREWARN_REDIS_URL"):
        connect_cluster(f"redis://127.0.0.1:{free_port()}/0", "FOREWARN_REDIS_URL", socket_connect_timeout=0.5)
    settings = Settings(redis=RedisSettings(url="redis://127.0.0.1:1/0", cluster=True))
    secret = redis_cluster_url.replace("redis://", "redis://u:s3cret@").replace("/0", "/3")
    with pytest.raises(ConfigError, match=r"^FOREWARN_REDIS_URL: a Redis Cluster has only database 0") as caught:
        redis_client(settings, Secrets(forewarn_redis_url=secret))
    assert "s3cret" not in str(caught.value)


# -- the whole flow --------------------------------------------------------------------------------


def test_the_flow_on_a_cluster_warns_exactly_the_customers_at_risk_once(
    kafka_broker: str, redis_cluster_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer
) -> None:
    """The production flow with `redis.cluster: true`: the end-to-end test's expectation, from the truth."""
    scenario = e2e.default_scenario()
    topics = topic_names("cluster")
    create_topics(kafka_broker, topics.values())
    settings = make_settings(topics, kafka_broker, redis_cluster_url, twilio_standin, smtp_server)
    settings = settings.model_copy(update={"redis": RedisSettings(url=redis_cluster_url, cluster=True),
                                           "delivery": DeliverySettings(shards=8)})
    loader = RedisCluster.from_url(redis_cluster_url)
    assert RedisCustomerIndex(loader).upsert(scenario.customers) == len(scenario.customers)
    produce(kafka_broker, topics["cases"], (orjson.dumps(e) for e in scenario.events if e["type"] == "case"))

    e2e.run_flow(settings, twilio_standin)

    reports = [r.json() for r in read_topic(kafka_broker, topics["incidents"])]
    opened = e2e.opened_incidents(reports)
    truths = {t.name: t for t in scenario.truths}
    assert {e2e.TRUTH_OF_TOPIC[i.topic] for i in opened} == {"regional_outage", "firmware_defect"}
    expected: Counter[tuple[str, str]] = Counter()
    for incident in opened:
        expected.update(e2e.expected_audience(scenario, truths[e2e.TRUTH_OF_TOPIC[incident.topic]], incident).items())
    received = e2e.received_messages(scenario.customers, twilio_standin, smtp_server)
    warned = Counter((m.customer_id, m.address) for m in received if m.kind == "warning")
    assert warned == expected, "warned the wrong customers, or some twice"
    outbox = RedisOutbox(loader, shards=8)
    for incident in opened:  # the outbox's sets (written by scripts on the incident's shard) hold the audience
        audience = e2e.expected_audience(scenario, truths[e2e.TRUTH_OF_TOPIC[incident.topic]], incident)
        assert outbox.decided(incident.id, "warning") == outbox.accepted(incident.id, "warning") == set(audience)
    assert RedisIncidentStore(loader).load(opened[0].id) is not None
    assert min(keys_per_node(loader, "{fw:out:*").values()) > 0, "the outbox's shards did not spread"

    sent = len(twilio_standin.messages), len(smtp_server.messages)
    e2e.run_flow(settings, twilio_standin)
    assert (len(twilio_standin.messages), len(smtp_server.messages)) == sent, "the rerun sent again"
    loader.close()


def test_forewarn_customers_load_and_the_audience_commands_reach_the_cluster(
        redis_cluster_url: str, cluster: RedisCluster, tmp_path: Path) -> None:
    """The offline commands (customers load, audience) build their client from the same setting as the flow."""
    customers = generate(seed=5, customers=300, regions=4).customers
    path = tmp_path / "customers.jsonl"
    path.write_bytes(b"".join(c.model_dump_json().encode() + b"\n" for c in customers))
    settings = Settings(redis=RedisSettings(url=redis_cluster_url, cluster=True))
    loaded, rejected, _ = load_customers(settings, path, None)
    assert (loaded, rejected) == (len(customers), 0)
    index = redis_index(settings, None)
    regions = Counter(c.region for c in customers)
    assert index.attribute_counts("region") == dict(regions)
    assert RedisCustomerIndex(cluster, "fw").attribute_counts("region") == dict(regions)
