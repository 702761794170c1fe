"""The service's caches are bounded: generators/embedders LRU by model version (pinned while active or
a rollback target), table handles LRU by commit; a rollback swaps back to the warm runtime at once."""

from agent_fixtures import agent_home, deploy  # noqa: F401 (fixture)
from conftest import write
from llmfti.pipelines.feature import ingest as run_ingest
from llmfti.pipelines.inference.retrieval import PinnedTables
from llmfti.pipelines.inference.runtime import RuntimeCache
from llmfti.registry.deployments import DeploymentStore


class Closable:
    def __init__(self, name):
        self.name, self.closed = name, False

    def close(self):
        self.closed = True


def test_runtime_cache_evicts_the_least_recently_used_unpinned_item_and_closes_it():
    cache = RuntimeCache(max_items=2)
    a, b, c = (cache.get((n,), lambda n=n: Closable(n)) for n in "abc")
    assert cache.keys() == [("b",), ("c",)] and a.closed and not b.closed
    assert cache.get(("b",), lambda: Closable("b2")) is b  # a hit refreshes b
    cache.pin({("b",)})
    cache.get(("d",), lambda: Closable("d"))
    assert cache.keys() == [("b",), ("d",)] and c.closed and not b.closed  # c went, not the pinned b
    cache.pin({("b",), ("d",)})
    cache.get(("e",), lambda: Closable("e"))
    assert len(cache.keys()) == 3  # everything else pinned: over the bound, never unloading what serves


def test_pinned_tables_keep_a_bounded_number_of_commits(store, tmp_path, hash_config):
    fg = store.feature_group("docs", must_exist=False)
    for i in range(5):
        write(tmp_path / "c" / "a.md", f"# A\n\nversion {i}\n")
        run_ingest(fg, [str(tmp_path / "c")], config=hash_config)
    tables = PinnedTables(fg, max_commits=2)
    versions = [v["commit"] for v in fg.versions_log()]
    for commit in versions:
        assert tables.at(commit).version == commit
    assert tables.commits() == versions[-2:]


def test_manager_keeps_the_rollback_target_warm_and_swaps_back_without_loading(agent_home, tmp_path, monkeypatch):
    import llmfti.agents.manager as manager_module
    from llmfti.testing.scripted_generator import ScriptedGenerator

    builds = []
    real_build = manager_module.build_runtime

    def counting_build(home, record, cache, override=None):
        builds.append(int(record["version"]))
        return real_build(home, record, cache, override)

    monkeypatch.setattr(manager_module, "build_runtime", counting_build)
    deploy(agent_home, tmp_path, name="warm")
    manager = manager_module.DeploymentManager(agent_home, generator_override=ScriptedGenerator(["ok"]))
    manager.refresh()
    v1 = manager.get("warm")
    deploy(agent_home, tmp_path, name="warm", retrieval={"k": 1})
    manager.refresh()
    assert manager.get("warm").version == 2 and manager.warm_versions() == {"warm": 1}
    DeploymentStore(agent_home).rollback("warm")
    manager.refresh()
    assert manager.get("warm") is v1 and builds == [1, 2]  # swapped back to the very runtime, nothing loaded
    assert manager.warm_versions() == {}  # version 1 has nothing earlier to roll back to
    # A fresh manager on v3 (rolled back from, so target = 2): it loads the target ahead of need.
    deploy(agent_home, tmp_path, name="warm", retrieval={"k": 3})
    fresh = manager_module.DeploymentManager(agent_home, generator_override=ScriptedGenerator(["ok"]))
    fresh.refresh()
    assert fresh.get("warm").version == 3 and fresh.warm_versions() == {"warm": 2}


def test_manager_pins_the_models_of_active_and_warm_runtimes(agent_home, tmp_path):
    from llmfti.agents.manager import DeploymentManager

    deploy(agent_home, tmp_path, name="pins")
    deploy(agent_home, tmp_path, name="pins", retrieval={"k": 1})
    manager = DeploymentManager(agent_home)
    manager.cache.max_items = 1  # tighter than what serving needs
    manager.refresh()
    keys = set(manager.cache.keys())
    assert manager.get("pins").cache_keys and set(manager.get("pins").cache_keys) <= keys
    assert not manager.cache.evicted or not set(manager.cache.evicted) & keys
